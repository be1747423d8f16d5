"""What the facesync nodes do, whichever ComfyUI node API declares them (V3 or V1).

The work runs in Rust (``facesync.run_frames`` / ``facesync.run``) with the GIL released;
this thread only wakes every few milliseconds to look at ComfyUI's interrupt flag and to hand
facesync's progress events to :class:`ComfyProgress`, which speaks ComfyUI's progress protocol:

- the node's bar through ``comfy.utils.ProgressBar`` (so ``progress`` and ``progress_state``
  reach the UI), each value once: the first (0.1 %) as the node starts, before anything that
  takes time, so the UI shows the node running at once (ComfyUI always sends a bar's first
  update, then drops changes under 0.5 % or 0.1 s apart; a 0 would only push the first
  movement back to 0.5 %), then the frames counted, the maximum only when the node is about
  to return;
- one preview per distinct image, downscaled and sent as JPEG (ComfyUI encodes it; a small
  image keeps that cheap);
- the current phase, its count, rate and ETA as the node's text progress
  (``PromptServer.instance.send_progress_text``), the first line at once; warnings (no face
  anywhere, a software GPU) stay there and go to the log.

The server stays responsive while the node runs: no copy or conversion of frames happens with
the GIL held (the batch is borrowed by Rust, the result is filled by Rust). When the system's
available memory would not hold the node's output, the node first hands back to the system
the heap pages that earlier nodes freed but glibc kept (``GetVideoComponents`` frees a float
tensor per frame, as much as the whole batch); with memory to spare it keeps them (see
:func:`release_freed_memory` for why).
"""

import base64
import logging
import math
import time
import zlib

logger = logging.getLogger("facesync")

#: The bar's maximum: tenths of a percent, so that it moves every few frames.
BAR_MAX = 1000
#: ComfyUI's throttle (``comfy.utils``): an update closer than this, or smaller than
#: ``MIN_STEP`` of the bar, would be dropped there; we do not send it at all.
MIN_INTERVAL = 0.1
MIN_STEP = 5
#: Text progress at most this often (phase changes and warnings go at once).
TEXT_INTERVAL = 0.25
#: Frames per chunk: the unit of streaming (the stages look at the cancel token before each
#: frame or step inside a chunk too; smaller than facesync's default 16 so that an interrupt is
#: honoured sooner). Measured in the
#: real server (300 frames of 720p, nothing else running): at 8 the slowest of four interrupts
#: took 0.18-0.50 s (three runs), at 4 0.10 s, and the node took 10.7 s instead of 12.5-13.9 s.
CHUNK = 4
#: Longest side of a preview sent to the UI.
PREVIEW_SIZE = 256
#: How much lower than the server's threads facesync's run threads are scheduled (Linux nice
#: increment, ``facesync.run``'s ``nice=``; the ffmpeg processes the VIDEO node starts inherit
#: it). Measured in the real server (``cargo xtask test comfyui``, nothing else running): the
#: run and the server share 2 cores, and at 0 the VIDEO node's stage threads and ffmpeg
#: processes delayed the server's answers by up to 40-51 ms (three runs; a separate process was
#: starved at the same moments: the CPU, not the GIL); at 5, 13-40 ms (four runs), and the
#: IMAGE node was no slower. Not higher: where other work runs at nice 5 (the other builds on
#: our shared 2-core machine), 10 starved the run itself (3x slower, interrupts 1.1-1.6 s late).
NICE = 5

#: What facesync's phases mean to a ComfyUI user.
PHASE_LABELS = {
    "Decoding": "Reading frames",
    "Processing faces": "Finding faces",
    "Doing inference": "Lip sync",
    "Restoring faces": "Restoring faces",
    "Encoding": "Writing frames",
}


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ComfyProgress:
    """facesync events to ComfyUI's bar, previews and text progress (see the module docs).

    Called on the node's own thread (facesync delivers events between its waits), so every
    ComfyUI call happens where ComfyUI expects it, in the node's execution context.
    """

    def __init__(self, node_id, progress_bar, server=None):
        self.node_id = "" if node_id is None else str(node_id)
        self.bar = progress_bar(BAR_MAX, node_id=node_id)
        self.server = server
        self.sent = None  # (time, value) of the last bar update
        self.fraction = 0.0
        self.failed = False
        self.preview = None  # pending preview tuple
        self.preview_keys = set()
        self.phases = {}  # id -> {"name", "pos", "total", "rate", "eta", "done"}
        self.current = None  # id of the phase the text shows
        self.run_eta = None
        self.text_sent = (0.0, None)
        self.warnings = []
        self.faces_seen = False
        self.started = time.perf_counter()

    # -- the bar -------------------------------------------------------------------------

    def start(self):
        """The node started: the bar's first value (1 of :data:`BAR_MAX`) and a first line of
        text, at once, before the node does anything that takes time."""
        self._bar(1, force=True)
        self._text("Starting", force=True)

    def finish(self):
        """The node is about to return: the bar's maximum (ComfyUI checks its interrupt flag
        here and raises if it was set)."""
        self._bar(BAR_MAX, force=True)
        done = f"Done in {_duration(time.perf_counter() - self.started)}"
        self._text("\n".join([done, *self.warnings]), force=True)

    def _bar(self, value, force=False):
        now = time.perf_counter()
        if value <= 0:
            return  # the bar starts moving with the first frame counted
        if self.sent is not None:
            last_t, last_v = self.sent
            if value <= last_v:
                return  # never back, never twice
            due = (force or self.preview is not None
                   or (now - last_t >= MIN_INTERVAL and value - last_v >= MIN_STEP))
            if not due:
                return
        preview, self.preview = self.preview, None
        self.sent = (now, value)
        self.bar.update_absolute(value, BAR_MAX, preview)

    # -- events --------------------------------------------------------------------------

    def __call__(self, event):
        kind = event["type"]
        if kind == "run_progress":
            if not self.failed:
                self.fraction = max(self.fraction, event["fraction"])
                self.run_eta = event.get("eta")
                # The first frame counted moves the bar (1 at least); the maximum is the
                # node's return, not the pipeline's end.
                value = int(self.fraction * BAR_MAX)
                if self.fraction > 0:
                    value = max(1, value)
                self._bar(min(value, BAR_MAX - 1))
                self._text(self._status())
        elif kind == "phase_started":
            self.phases[event["id"]] = {"name": event["name"], "pos": 0,
                                        "total": event["total"], "rate": None, "eta": None,
                                        "done": False}
        elif kind == "progress":
            phase = self.phases.get(event["id"])
            if phase is not None:
                phase.update(pos=event["pos"], total=event["total"], rate=event["rate"],
                             eta=event["eta"])
                if event["id"] != self.current and phase["name"] in PHASE_LABELS:
                    self.current = event["id"]
        elif kind == "phase_finished":
            phase = self.phases.get(event["id"])
            if phase is not None:
                phase["done"] = True
            if event["outcome"] in ("failed", "cancelled"):
                # Nothing moves past the phase that failed.
                self.failed = True
        elif kind == "preview":
            self._preview(event)
        elif kind == "face_status":
            self.faces_seen = self.faces_seen or event["faces"] > 0
        elif kind == "message" and event["level"] in ("warn", "error"):
            self.warn(event["text"])

    def warn(self, text):
        if text in self.warnings:
            return
        self.warnings.append(text)
        logger.warning("facesync: %s", text)
        self._text(self._status(), force=True)

    def _preview(self, event):
        if event.get("format") != "rgb8":
            return
        data = base64.b64decode(event["data"])
        key = zlib.crc32(data)
        if key in self.preview_keys:
            return  # one preview per distinct image
        self.preview_keys.add(key)
        try:
            from PIL import Image
        except ImportError:
            return
        image = Image.frombytes("RGB", (event["width"], event["height"]), data)
        if max(image.size) > PREVIEW_SIZE:
            image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
        # ComfyUI's preview tuple: format, PIL image, max size (None: as it is).
        self.preview = ("JPEG", image, None)

    # -- text ----------------------------------------------------------------------------

    def _status(self):
        lines = []
        phase = self.phases.get(self.current)
        if phase is not None:
            label = PHASE_LABELS.get(phase["name"], phase["name"])
            line = f"{label}: {phase['pos']}"
            if phase["total"]:
                line += f"/{phase['total']}"
            line += " frames"
            if phase["rate"]:
                line += f", {phase['rate']:.1f} frames/s"
            lines.append(line)
        total = f"{int(self.fraction * 100)}%"
        if self.run_eta is not None and math.isfinite(self.run_eta):
            total += f", {_duration(self.run_eta)} left"
        lines.append(total)
        lines.extend(self.warnings)
        return "\n".join(lines)

    def _text(self, text, force=False):
        if self.server is None:
            return
        now = time.perf_counter()
        last_t, last_text = self.text_sent
        if text == last_text or (not force and now - last_t < TEXT_INTERVAL):
            return
        self.text_sent = (now, text)
        self.server.send_progress_text(text, self.node_id)


def comfy_modules():
    """ComfyUI's progress bar class, interrupt functions and server instance (None outside a
    server)."""
    import comfy.model_management as model_management
    import comfy.utils

    try:
        from server import PromptServer

        server = PromptServer.instance
    except ImportError:
        server = None
    return comfy.utils.ProgressBar, model_management, server


_malloc_trim = None
#: Memory that must stay available besides the node's output for the node to leave glibc's
#: freed pages where they are.
TRIM_MARGIN = 1 << 30


def available_memory():
    """The system's available memory in bytes (``MemAvailable`` of ``/proc/meminfo``), or
    None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _trim():
    """glibc's ``malloc_trim(0)`` through ctypes (which releases the GIL for the call);
    nothing where the C library is not glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        try:
            import ctypes

            trim = ctypes.CDLL("libc.so.6").malloc_trim
            trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
            _malloc_trim = trim
        except (OSError, AttributeError):
            pass
    if _malloc_trim:
        _malloc_trim(0)


def release_freed_memory(needed=0):
    """Hands the C heap's free pages back to the system (:func:`_trim`) when the available
    memory is less than ``needed`` bytes (the node's output) plus :data:`TRIM_MARGIN`, or
    cannot be read; returns whether it did.

    Why: ComfyUI's ``GetVideoComponents`` builds the IMAGE batch from one float tensor per
    frame, then frees them; glibc may keep those pages (up to the whole batch: 3.4 GB for 300
    frames of 720p) and this node would add its output on top of them. Why not always: the
    trim takes 0.2 s there, and on a virtual machine whose kernel reports free pages to its
    host (virtio-balloon free page reporting, every 2 s) handing gigabytes back is one of the
    things after which the host took the whole machine, the server with it, away for 100-260 ms
    (``cargo xtask test comfyui`` over a day: runs with a server stall over 50 ms, 7 of 12 with
    the trim, 4 of 19 without; the node's peak memory 7.7 GB either way in 18 of those 19,
    14.2 GB once; see docs/comfyui.md). With memory to spare, keeping the pages risks
    nothing."""
    available = available_memory()
    if available is not None and available >= needed + TRIM_MARGIN:
        return False
    _trim()
    return True


def _takes(name):
    """Whether this facesync build's ``run_frames`` takes the keyword ``name``."""
    import inspect

    import facesync

    try:
        return name in inspect.signature(facesync.run_frames).parameters
    except (TypeError, ValueError):
        return False


def _run(node_id, call, needed=0):
    """Runs ``call(on_event, interrupted)`` under ComfyUI's progress and interrupt; returns
    its result only if no interrupt came before the node returns. ``needed``: the bytes the
    result will take (see :func:`release_freed_memory`)."""
    import facesync

    progress_bar, model_management, server = comfy_modules()
    progress = ComfyProgress(node_id, progress_bar, server)
    progress.start()
    release_freed_memory(needed)
    try:
        result = call(progress, model_management.processing_interrupted)
    except facesync.Cancelled:
        # ComfyUI's interrupt: raise ComfyUI's own exception (which clears the flag).
        model_management.throw_exception_if_processing_interrupted()
        raise
    except facesync.FacesyncError as e:
        # The phases by the names the UI shows them under ("Finding faces", not "Processing
        # faces").
        message = str(e).strip()
        for name, label in PHASE_LABELS.items():
            message = message.replace(name, label)
        if message != str(e):
            raise type(e)(message) from None
        raise
    if getattr(call, "no_face", "") in ("", "pass", "interpolate") and not progress.faces_seen:
        progress.warn("no face found in any frame: the frames pass through unchanged")
    model_management.throw_exception_if_processing_interrupted()
    progress.finish()
    return result


def as_array(tensor):
    """A torch tensor (or anything numpy takes) as a numpy array, without a copy when it is a
    contiguous float32 CPU tensor (what ComfyUI's IMAGE and AUDIO are)."""
    import numpy as np

    if hasattr(tensor, "detach"):
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        tensor = tensor.numpy()
    return np.ascontiguousarray(tensor, dtype=np.float32)


def as_tensor(array, like):
    """A numpy array as a torch tensor sharing its memory when ``like`` (the input) is one,
    else the array itself (torch is never imported here: in ComfyUI it already is)."""
    if type(like).__module__.startswith("torch"):
        import torch

        return torch.from_numpy(array)
    return array


def waveform(audio):
    """AUDIO (``{"waveform": [B, C, T], "sample_rate": int}``) as its first item, [C, T]
    float32, and its rate."""
    if audio is None or (isinstance(audio, dict) and audio.get("waveform") is None):
        raise ValueError(
            "audio: the input is empty (a video without a sound track gives no audio): "
            "connect an audio source, or the video's own sound through its audio output")
    try:
        wave, rate = audio["waveform"], int(audio["sample_rate"])
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"audio: expected {{'waveform': [B, C, T], 'sample_rate': int}}, missing {e}"
        ) from None
    array = as_array(wave)
    if array.ndim == 3:
        array = array[0]
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"audio: expected a waveform [B, C, T], got shape {tuple(array.shape)}")
    return array, rate


def lipsync_images(node_id, images, audio, fps, options):
    """IMAGE batch + AUDIO -> IMAGE batch (as long as the audio), streamed chunk by chunk."""
    import facesync

    frames = as_array(images)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.shape[0] == 0:
        raise ValueError(
            f"images: expected an IMAGE batch [B, H, W, C], got shape {tuple(frames.shape)}")
    samples, rate = waveform(audio)

    extra = {"nice": NICE} if NICE and _takes("nice") else {}

    def call(on_event, interrupted):
        return facesync.run_frames(frames, float(fps), samples, rate, on_event=on_event,
                                   interrupted=interrupted, chunk=CHUNK, **extra, **options)

    call.no_face = options.get("no_face", "")
    # The output: float32 frames of the batch's size, as many as the audio lasts.
    out_frames = math.ceil(samples.shape[1] / rate * float(fps))
    needed = out_frames * frames.shape[1] * frames.shape[2] * 3 * 4
    return as_tensor(_run(node_id, call, needed), images)


def lipsync_video(node_id, video, audio, options, out_dir):
    """VIDEO (+ AUDIO) -> VIDEO: decoded from its file by facesync, written to a file in
    ``out_dir``; no frame of it is ever in ComfyUI's memory."""
    import os
    import shutil
    import tempfile
    import uuid

    import facesync

    source = video.get_stream_source()
    work = tempfile.mkdtemp(prefix="facesync-", dir=out_dir)
    try:
        if not isinstance(source, str):
            path = os.path.join(work, "input.mp4")
            with open(path, "wb") as f:
                shutil.copyfileobj(source, f)
            source = path
        if audio is not None:
            samples, rate = waveform(audio)
            audio_path = os.path.join(work, "audio.wav")
            facesync.write_wav(audio_path, samples, rate)
        else:
            audio_path = source  # the video's own sound track
        out = os.path.join(out_dir, f"facesync-{uuid.uuid4().hex[:12]}.mp4")

        extra = {"nice": NICE} if NICE and _takes("nice") else {}

        def call(on_event, interrupted):
            return facesync.run(source, audio_path, out, on_event=on_event,
                                interrupted=interrupted, chunk=CHUNK, **extra, **options)

        call.no_face = options.get("no_face", "")
        _run(node_id, call)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
