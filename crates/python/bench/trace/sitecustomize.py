"""Scheduling probes inside the ComfyUI server, for finding what stalls it (not run by
``cargo xtask test comfyui`` unless asked; see docs/comfyui.md):

    PYTHONPATH=$PWD/crates/python/bench/trace FACESYNC_TRACE_DIR=/tmp/trace cargo xtask test comfyui

(an absolute path: the server runs in ComfyUI's folder). Python imports this module at
start-up in every process that has the folder on its path; it does something only in the
server (``main.py``). Two daemon threads write to
``$FACESYNC_TRACE_DIR/server.log``, one line per event, times from ``time.perf_counter()``
(the same clock as the bench's, so lines can be put next to its timeline):

- ``gil <end> <ms>``: a thread that sleeps 1 ms got the GIL back more than 15 ms later (the GIL
  held by another thread, or the process starved of CPU);
- ``loop <end> <ms>``: a callback posted to the server's event loop every 5 ms ran more than
  15 ms later (the loop busy, or waiting for the GIL or the CPU).

- ``late <t> <ms> main=<state> <syscall> <wchan> at <file:line> | <thread>: <file:line> ...``:
  while a callback posted to the loop has waited more than 30 ms, every 5 ms, what the loop's
  thread is doing: its kernel state (``R`` running, ``S`` sleeping, ``D``), the system call it
  is in (``/proc/…/syscall``'s number: 202 ``futex``, a lock; 232 ``epoll_wait``, the loop
  idle; 1 ``write``; ``running`` when in user space), the kernel function it waits in, and its
  innermost Python line, then every other thread's innermost Python line (the node's thread
  included). This thread needs the GIL to look: if the loop's thread holds it, the ``gil``
  line says so instead.

``cpumeter.py`` run as a separate process tells CPU starvation from the GIL: its own sleep
gaps, in ``cpu <end> <ms>`` lines.
"""

import os
import sys
import threading
import time


def _start():
    directory = os.environ.get("FACESYNC_TRACE_DIR", "/tmp")
    os.makedirs(directory, exist_ok=True)
    out = open(os.path.join(directory, "server.log"), "a", buffering=1)
    out.write(f"start {time.perf_counter():.3f} pid {os.getpid()}\n")

    def gil():
        last = time.perf_counter()
        while True:
            time.sleep(0.001)
            now = time.perf_counter()
            if now - last > 0.015:
                out.write(f"gil {now:.3f} {1000 * (now - last):.0f}\n")
            last = now

    def loop_lag():
        while True:
            try:
                import server

                loop = server.PromptServer.instance.loop
                break
            except (ImportError, AttributeError):
                time.sleep(0.5)

        pending = {}
        loop_thread = [None]

        def ran(posted):
            pending.pop(posted, None)
            loop_thread[0] = threading.current_thread()
            now = time.perf_counter()
            if now - posted > 0.015:
                out.write(f"loop {now:.3f} {1000 * (now - posted):.0f}\n")

        while True:
            posted = time.perf_counter()
            pending[posted] = True
            loop.call_soon_threadsafe(ran, posted)
            time.sleep(0.005)
            oldest = min(pending, default=None)
            if oldest is not None and time.perf_counter() - oldest > 0.03:
                _late(out, oldest, loop_thread[0])

    threading.Thread(target=gil, daemon=True, name="facesync-trace-gil").start()
    threading.Thread(target=loop_lag, daemon=True, name="facesync-trace-loop").start()


def _proc(tid, name):
    try:
        with open(f"/proc/self/task/{tid}/{name}") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _where(frame, depth=1):
    """The innermost `depth` Python lines of a thread's stack, innermost first."""
    lines = []
    while frame is not None and len(lines) < depth:
        code = frame.f_code
        lines.append(f"{os.path.basename(code.co_filename)}:{frame.f_lineno}({code.co_name})")
        frame = frame.f_back
    return " < ".join(lines) or "-"


def _late(out, posted, main):
    """One ``late`` line: what the loop's thread and the others are doing now."""
    if main is None:
        return
    now = time.perf_counter()
    tid = main.native_id
    state = _proc(tid, "stat").rpartition(")")[2].split()[:1] or ["?"]
    syscall = _proc(tid, "syscall").split()[0]
    frames = sys._current_frames()
    others = " | ".join(
        f"{t.name}: {_where(frames.get(t.ident))}"
        for t in threading.enumerate() if t is not main and t.ident in frames
        and t.name not in ("facesync-trace-gil", "facesync-trace-loop"))
    out.write(f"late {now:.3f} {1000 * (now - posted):.0f} main={state[0]} {syscall} "
              f"{_proc(tid, 'wchan')} at {_where(frames.get(main.ident), 4)} | {others}\n")



if any(arg.endswith("main.py") for arg in sys.argv):
    _start()
