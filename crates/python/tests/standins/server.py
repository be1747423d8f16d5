"""Stand-in of ComfyUI's ``server`` module (0.12.1): ``PromptServer.instance`` with
``send_sync`` and ``send_progress_text`` (the node's text progress: 4-byte big-endian node id
length, the node id, the UTF-8 text, as binary event 3), recording what a client would get."""

import struct
import threading
import time


class BinaryEventTypes:
    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


class PromptServer:
    instance = None

    def __init__(self):
        PromptServer.instance = self
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        # (perf_counter time, event, data, sid), in order.
        self.messages = []
        self._lock = threading.Lock()

    def send_sync(self, event, data, sid=None):
        with self._lock:
            self.messages.append((time.perf_counter(), event, data, sid))

    def send_progress_text(self, text, node_id, sid=None):
        if isinstance(text, str):
            text = text.encode("utf-8")
        node_id_bytes = str(node_id).encode("utf-8")
        message = struct.pack(">I", len(node_id_bytes)) + node_id_bytes + text
        self.send_sync(BinaryEventTypes.TEXT, message, sid)

    def texts(self):
        """The progress texts sent so far, decoded."""
        out = []
        for _, event, data, _ in self.messages:
            if event == BinaryEventTypes.TEXT:
                (n,) = struct.unpack(">I", data[:4])
                out.append(data[4 + n:].decode("utf-8"))
        return out
