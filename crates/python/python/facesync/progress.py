"""A tqdm-compatible progress bar backed by facesync's progress system.

Swap tqdm for it in one import::

    from facesync.progress import tqdm          # instead of: from tqdm import tqdm

    for frame in tqdm(frames, desc="Processing faces"):
        ...

What differs from tqdm, and why:

- ``update(n)`` is one relaxed atomic add in Rust, and iterating a bar runs in Rust: the work
  never formats, measures time or writes anything. A dispatcher thread samples the count at
  10 Hz (``tick=0.1``) and feeds the sinks, each on its own thread: the console (bars on a
  terminal, plain lines in logs; ``FACESYNC_PROGRESS=bars|plain|off``) and ``on_event`` (a
  callable receiving each event as a dict, JSON schema v1; the ``comfyui/`` node turns such
  events into ComfyUI's own progress bar).
- tqdm's display options (``leave``, ``file``, ``ncols``, ``mininterval``, ``bar_format``, ...)
  are accepted and have no effect: the sinks decide how progress looks.
- ``set_description`` changes the text shown with the bar; the bar's name (``desc`` at
  creation) stays, as names identify phases in events.
- Nested bars: pass ``parent=outer_bar`` and the inner bar becomes a child phase drawn by the
  outer bar's sinks (tqdm's ``position=`` is accepted and ignored).
- An exception raised by ``on_event`` is reported through ``sys.unraisablehook`` and the bar
  goes on (a bar has no caller to re-raise it to; ``facesync.run`` cancels instead).
"""

import atexit
import sys
import weakref

from . import _native

__all__ = ["Progress", "tqdm", "trange"]

# Live bars, newest last: `write` prints through one with a console, and bars still open at
# exit are closed before the interpreter goes (their sink threads need it to finish).
_live = weakref.WeakValueDictionary()
_next_id = 0


class Progress(_native.Progress):
    """``Progress(iterable=None, desc=None, total=None, *, unit="it", initial=0, disable=False,
    console=True, on_event=None, parent=None, tick=0.1, postfix=None, **tqdm_options)``
    """

    def __init__(self, *args, **kwargs):
        global _next_id
        _next_id += 1
        _live[_next_id] = self

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        """Shows ``key=value`` pairs after the bar, as tqdm does (numbers formatted shortly)."""
        items = dict(ordered_dict or {})
        items.update(kwargs)
        self.set_postfix_str(", ".join(f"{k}={_short(v)}" for k, v in items.items()), refresh)

    @classmethod
    def write(cls, s, file=None, end="\n", nolock=False):
        """Prints ``s`` without breaking the bars: through the newest open bar that has a
        console (which prints it above its bars), else to ``file`` (default ``sys.stdout``)."""
        if file is None:
            for bar in reversed(list(_live.values())):
                if bar.has_console and not bar.closed:
                    bar.message(str(s))
                    return
        (file or sys.stdout).write(f"{s}{end}")


def _short(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def trange(*args, **kwargs):
    """``Progress(range(*args), **kwargs)``, like ``tqdm.trange``."""
    return Progress(range(*args), **kwargs)


tqdm = Progress


@atexit.register
def _close_live_bars():
    for bar in list(_live.values()):
        bar.close()
