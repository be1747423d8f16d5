"""Scheduling probes inside the ComfyUI server, for finding what stalls it (not run by
``cargo xtask test comfyui`` unless asked; see the README's ComfyUI section):

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

        def ran(posted):
            now = time.perf_counter()
            if now - posted > 0.015:
                out.write(f"loop {now:.3f} {1000 * (now - posted):.0f}\n")

        while True:
            loop.call_soon_threadsafe(ran, time.perf_counter())
            time.sleep(0.005)

    threading.Thread(target=gil, daemon=True).start()
    threading.Thread(target=loop_lag, daemon=True).start()


if any(arg.endswith("main.py") for arg in sys.argv):
    _start()
