"""The ComfyUI node, with stand-ins of comfy.utils and comfy.model_management, and the
ComfyUI messages of facesync's adapter checked byte by byte against ComfyUI's protocol."""

import importlib.util
import json
import os
import struct
import zlib

import numpy as np
import pytest

import facesync

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "comfyui")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_node():
    spec = importlib.util.spec_from_file_location(
        "facesync_comfyui", os.path.join(NODE_DIR, "__init__.py"),
        submodule_search_locations=[NODE_DIR])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def images_and_audio(frames=16, size=64, seconds=0.64, rate=16000):
    """Frames with no face (so the pipeline passes them through untouched) and a tone."""
    y, x = np.mgrid[0:size, 0:size]
    images = np.stack([
        np.stack([(x + 3 * i) % size, y, (x + y) % size], axis=-1) / (size - 1)
        for i in range(frames)
    ]).astype(np.float32)
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio = {"waveform": np.stack([wave, wave])[None], "sample_rate": rate}  # [B, C, T]
    return images, audio


def test_node_mappings():
    node = load_node()
    assert node.NODE_CLASS_MAPPINGS == {"FacesyncLipSync": node.FacesyncLipSync}
    assert node.NODE_DISPLAY_NAME_MAPPINGS == {"FacesyncLipSync": "facesync lip sync"}
    inputs = node.FacesyncLipSync.INPUT_TYPES()
    assert inputs["required"]["images"] == ("IMAGE",)
    assert inputs["required"]["audio"] == ("AUDIO",)
    assert node.FacesyncLipSync.RETURN_TYPES == ("IMAGE",)


def test_node_returns_the_frames_and_moves_the_progress_bar(comfy_standins):
    node = load_node()
    images, audio = images_and_audio()
    (out,) = node.FacesyncLipSync().lipsync(images, audio, fps=25.0, unique_id="12")

    assert isinstance(out, np.ndarray)  # no torch here: numpy comes back
    assert out.shape == images.shape and out.dtype == np.float32
    # No face in these frames: they pass through, and the round trip is lossless at 8 bits.
    np.testing.assert_array_equal(np.round(out * 255), np.round(images * 255))
    calls = comfy_standins.utils.calls
    assert calls[0][:2] == (0, 100) and calls[-1][:2] == (100, 100)
    values = [value for value, _, _ in calls]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_node_loops_a_short_video_to_the_audio_length(comfy_standins):
    node = load_node()
    images, audio = images_and_audio(frames=4, seconds=0.4)
    (out,) = node.FacesyncLipSync().lipsync(images, audio, fps=25.0)
    assert out.shape[0] == 10
    # Ping-pong: 0 1 2 3 3 2 1 0 0 1
    order = [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]
    np.testing.assert_array_equal(np.round(out * 255), np.round(images[order] * 255))


def test_comfy_interrupt_cancels_the_run(comfy_standins):
    node = load_node()
    images, audio = images_and_audio(frames=64, seconds=2.56)
    mm = comfy_standins.model_management
    # The user presses "cancel" as soon as the bar first moves.
    comfy_standins.utils.on_update = lambda value, total: mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        node.FacesyncLipSync().lipsync(images, audio, fps=25.0)
    assert not mm.processing_interrupted()  # cleared by raising, as in ComfyUI
    assert comfy_standins.utils.calls[-1][0] < 100


def test_bad_node_inputs_name_the_input(comfy_standins):
    node = load_node()
    images, audio = images_and_audio()
    with pytest.raises(ValueError, match="images"):
        node.FacesyncLipSync().lipsync(images[..., :2], audio)
    with pytest.raises(ValueError, match="audio"):
        node.FacesyncLipSync().lipsync(images, {"waveform": audio["waveform"]})


def png_size(png):
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


def png_pixels(png):
    """RGB8 pixels of a PNG written with filter type 0 or 1..4 (decoded here with numpy)."""
    width, height = png_size(png)
    pos, data = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            data += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(data), np.uint8).reshape(height, 1 + width * 3)
    out = np.zeros((height, width * 3), np.int32)
    for row in range(height):
        f, line = raw[row, 0], raw[row, 1:].astype(np.int32)
        prev = out[row - 1] if row else np.zeros(width * 3, np.int32)
        cur = np.zeros(width * 3, np.int32)
        for i in range(width * 3):
            a = cur[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) % 256
        out[row] = cur
    return out.reshape(height, width, 3).astype(np.uint8)


@pytest.mark.parametrize("metadata", [False, True])
def test_comfy_messages_match_comfyui_protocol(sample, tmp_path, metadata):
    """Text: {"type": "progress", "data": {value, max, prompt_id, node}}. Binary preview:
    4-byte BE event type 1 (PREVIEW_IMAGE), 4-byte BE format 2 (PNG), the PNG; or type 4
    (PREVIEW_IMAGE_WITH_METADATA), 4-byte BE JSON length, the JSON, the PNG."""
    video, audio = sample
    messages, events = [], []
    comfy = {"send": messages.append, "prompt_id": "p-1", "node_id": "5",
             "node_type": "FacesyncLipSync", "preview_metadata": metadata}
    facesync.run(video, audio, str(tmp_path / "out.y4m"), comfy=comfy, on_event=events.append)

    texts = [json.loads(m) for m in messages if isinstance(m, str)]
    binaries = [m for m in messages if isinstance(m, bytes)]
    progress = [t for t in texts if t["type"] == "progress"]
    assert progress[0] == {"type": "progress",
                           "data": {"value": 0, "max": 100, "prompt_id": "p-1", "node": "5"}}
    assert progress[-1]["data"]["value"] == 100
    assert all(set(t["data"]) == {"value", "max", "prompt_id", "node"} for t in progress)

    previews = [e for e in events if e["type"] == "preview"]
    assert binaries and len(binaries) <= len(previews)
    for frame in binaries:
        kind = struct.unpack(">I", frame[:4])[0]
        if metadata:
            assert kind == 4
            (length,) = struct.unpack(">I", frame[4:8])
            header = json.loads(frame[8:8 + length])
            assert header["image_type"] == "image/png"
            assert header["node_id"] == header["display_node_id"] == "5"
            assert header["prompt_id"] == "p-1"
            png = frame[8 + length:]
        else:
            assert kind == 1
            assert struct.unpack(">I", frame[4:8])[0] == 2  # PNG
            png = frame[8:]
        assert png_size(png) == (previews[0]["width"], previews[0]["height"])
    # The PNG holds exactly the pixels of a preview the events carried (RGB8, base64).
    import base64

    pixels = png_pixels(png).tobytes()
    assert any(base64.b64decode(p["data"]) == pixels for p in previews)


def test_comfy_preview_tuple_for_progressbar():
    node = load_node()
    assert node.comfy_preview(b"\x00\x00\x00\x02" + b"\x00" * 8) is None  # not a preview
    frame = struct.pack(">II", 1, 1) + PNG_SIGNATURE  # JPEG: ComfyUI's format 1, never ours
    assert node.comfy_preview(frame) is None
