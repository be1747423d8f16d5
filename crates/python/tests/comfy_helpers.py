"""Helpers of the ComfyUI node tests: the node loaded as ComfyUI loads a custom node, a
recording progress hook like ComfyUI's, and frames with and without faces."""

import importlib.util
import os
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, os.pardir, "comfyui")
STANDINS = os.path.join(HERE, "standins")
COMFY_MODULES = ["comfy", "comfy.utils", "comfy.model_management", "server", "folder_paths",
                 "comfy_api", "comfy_api.latest", "comfy_api.latest._io",
                 "comfy_api.latest._input_impl"]


def forget_comfy_modules():
    for name in COMFY_MODULES + ["facesync_comfyui", "facesync_comfyui.lipsync"]:
        sys.modules.pop(name, None)


def load_node():
    """The custom node package, imported fresh (as ComfyUI's ``load_custom_node`` does)."""
    sys.modules.pop("facesync_comfyui", None)
    sys.modules.pop("facesync_comfyui.lipsync", None)
    spec = importlib.util.spec_from_file_location(
        "facesync_comfyui", os.path.join(NODE_DIR, "__init__.py"),
        submodule_search_locations=[NODE_DIR])
    module = importlib.util.module_from_spec(spec)
    sys.modules["facesync_comfyui"] = module
    spec.loader.exec_module(module)
    return module


class Hook:
    """What ComfyUI's ``main.py`` hook does first (raise if processing was interrupted), then a
    record of the call: (perf_counter time, value, total, preview, node_id, thread name)."""

    def __init__(self, model_management):
        self.mm = model_management
        self.calls = []
        self.on_call = None

    def __call__(self, value, total, preview, prompt_id=None, node_id=None):
        self.mm.throw_exception_if_processing_interrupted()
        self.calls.append((time.perf_counter(), value, total, preview, node_id,
                           threading.current_thread().name))
        if self.on_call is not None:
            self.on_call(value, total)

    @property
    def values(self):
        return [c[1] for c in self.calls]

    @property
    def previews(self):
        return [c[3] for c in self.calls if c[3] is not None]


def execute(node_module, name, unique_id="7", **inputs):
    """Runs a node as ComfyUI's executor does: V3 via a class clone with the hidden inputs and
    ``EXECUTE_NORMALIZED``, V1 via ``FUNCTION``; returns the outputs tuple."""
    cls = getattr(node_module, name)
    if hasattr(cls, "define_schema"):
        clone = cls.PREPARE_CLASS_CLONE({"hidden_inputs": {"UNIQUE_ID": unique_id}})
        return clone.EXECUTE_NORMALIZED(**inputs).args
    return getattr(cls(), cls.FUNCTION)(unique_id=unique_id, **inputs)


def pattern_frames(frames, height, width, channels=3):
    """Frames with no face: moving gradients, float32 in 0..1, built without a float64 copy
    of the batch."""
    out = np.empty((frames, height, width, channels), np.float32)
    x = (np.arange(width, dtype=np.float32) / max(width - 1, 1))[None, :]
    y = (np.arange(height, dtype=np.float32) / max(height - 1, 1))[:, None]
    for i in range(frames):
        shift = (i % 50) / 50.0
        out[i, :, :, 0] = (x + shift) % 1.0
        if channels > 1:
            out[i, :, :, 1] = y
        if channels > 2:
            out[i, :, :, 2] = (x + y) * 0.5
        if channels > 3:
            out[i, :, :, 3] = 1.0
    return out


def tone(seconds, rate=16000, channels=2):
    """AUDIO as ComfyUI has it: {"waveform": [1, C, T] float32, "sample_rate"}."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return {"waveform": np.stack([wave] * channels)[None], "sample_rate": rate}


def read_y4m_rgb(path):
    """The frames of a 4:2:0 full-range Y4M (what ``facesync.write_sample`` writes) as
    float32 RGB [N, H, W, 3] in 0..1."""
    with open(path, "rb") as f:
        data = f.read()
    header, rest = data.split(b"\n", 1)
    params = {p[:1]: p[1:] for p in header.split()[1:]}
    width, height = int(params[b"W"]), int(params[b"H"])
    cw, ch = (width + 1) // 2, (height + 1) // 2
    frame_len = width * height + 2 * cw * ch
    frames = []
    pos = 0
    while pos < len(rest):
        pos = rest.index(b"\n", pos) + 1  # "FRAME...\n"
        raw = np.frombuffer(rest, np.uint8, frame_len, pos).astype(np.float32)
        pos += frame_len
        y = raw[:width * height].reshape(height, width)
        u = raw[width * height:width * height + cw * ch].reshape(ch, cw)
        v = raw[width * height + cw * ch:].reshape(ch, cw)
        u = u.repeat(2, 0).repeat(2, 1)[:height, :width] - 128
        v = v.repeat(2, 0).repeat(2, 1)[:height, :width] - 128
        rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], -1)
        frames.append(np.clip(rgb / 255.0, 0, 1).astype(np.float32))
    return np.stack(frames)


def read_wav_audio(path):
    """A 16-bit PCM WAV as ComfyUI's AUDIO."""
    import wave

    with wave.open(path) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    wave_ = samples.reshape(-1, channels).T.astype(np.float32) / 32768.0
    return {"waveform": np.ascontiguousarray(wave_)[None], "sample_rate": rate}


def slowness(runs=21):
    """How much the machine is slowed down right now: the median over the fastest time of a
    fixed workload (one 720p frame's float -> 8-bit conversion in numpy), at least 1. On an
    idle machine the two match (1.0); on a shared, overloaded one (8 agents on 2 cores, load
    average 15) it is about 5. The timing tests scale their limits by it, so that they
    measure the node and not the neighbours."""
    x = np.random.default_rng(1).random((720, 1280, 3), dtype=np.float32)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
        times.append(time.perf_counter() - started)
    times.sort()
    return max(1.0, times[len(times) // 2] / times[0])
