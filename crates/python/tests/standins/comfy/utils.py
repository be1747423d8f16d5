"""Stand-in of ``comfy.utils``: the progress bar, recording its calls."""

import threading

from . import model_management

# Every update_absolute call of every bar: (value, total, preview), in order.
calls = []
# Called (with value, total) after recording each call; tests set it to act like a user.
on_update = None
_lock = threading.Lock()


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None):
        # As ComfyUI's progress hook does first: every update is a cancellation point.
        model_management.throw_exception_if_processing_interrupted()
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        with _lock:
            calls.append((value, self.total, preview))
        if on_update is not None:
            on_update(value, self.total)

    def update(self, value):
        self.update_absolute(self.current + value, self.total)
