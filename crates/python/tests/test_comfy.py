"""The ComfyUI nodes against stand-ins of ComfyUI 0.12.1 (tests/standins): schema, results,
progress as ComfyUI draws it, interrupts, errors."""

import logging
import os
import sys
import threading
import time
import zlib

import numpy as np
import pytest

import facesync
from comfy_helpers import (execute, load_node, pattern_frames, read_wav_audio, read_y4m_rgb,
                           slowness, tone)

def bytes_of(images):
    """float32 images as facesync rounds them to 8 bits: clamped, x * 255 + 0.5, floored."""
    return np.floor(np.clip(images, 0, 1) * np.float32(255) + np.float32(0.5))


def numpy_of(out):
    """The node's IMAGE output for a numpy input: the array itself (a torch input gives a
    tensor sharing the result's memory, see test_torch_in_torch_out)."""
    assert isinstance(out, np.ndarray)
    return out


# -- the schema ---------------------------------------------------------------------------

def test_v3_schema_has_a_description_and_a_tooltip_on_every_input(comfy):
    node = comfy.node
    assert not hasattr(node, "NODE_CLASS_MAPPINGS")  # V1 mappings would win over V3
    import asyncio

    extension = asyncio.run(node.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    assert [n.define_schema().node_id for n in nodes] == ["FacesyncLipSync",
                                                           "FacesyncLipSyncVideo"]
    for cls in nodes:
        schema = cls.define_schema()
        assert schema.description and schema.category == "facesync"
        assert schema.inputs and all(i.tooltip for i in schema.inputs), schema.node_id
        assert all(o.tooltip for o in schema.outputs)
        assert [h.value for h in schema.hidden] == ["UNIQUE_ID"]
    image_inputs = {i.id: i.io_type for i in nodes[0].define_schema().inputs}
    assert image_inputs["images"] == "IMAGE" and image_inputs["audio"] == "AUDIO"
    video = {i.id: i for i in nodes[1].define_schema().inputs}
    assert video["video"].io_type == "VIDEO" and video["audio"].optional


def test_the_option_inputs_come_from_facesyncs_schema(comfy):
    """One schema for the CLI, Python, queue jobs and the node: the node's widgets carry its
    defaults, limits and help; the inputs added later are optional; values go back as
    facesync's keywords (the crop size shown as text goes back as a number)."""
    node = comfy.node
    schema = {o["name"]: o for o in facesync.options_schema()}
    for cls in (node.FacesyncLipSync, node.FacesyncLipSyncVideo):
        inputs = {i.id: i for i in cls.define_schema().inputs}
        for name, optional in node.NODE_OPTIONS:
            widget, option = inputs[name], schema[name]
            assert widget.optional == optional, name
            assert widget.tooltip.startswith(option["help"]), name
            if "choices" in option:
                assert widget.options == [str(c) for c in option["choices"]], name
                assert widget.default == str(option["default"]), name
            elif option["kind"] == "level":  # a number or "off": a text widget
                assert widget.default == f"{option['default']:g}" == "-50", name
            else:
                assert (widget.default, widget.min, widget.max) == (
                    option["default"], option["min"], option["max"]), name
    assert [n for n, optional in node.NODE_OPTIONS if optional] == [
        "length", "model_weight", "silence_threshold"]
    assert schema["steps"]["max"] == 100
    assert node._options({"resolution": "512", "steps": 7, "no_face": "pass", "backend": "cpu",
                          "length": "trim", "model_weight": 0.25, "silence_threshold": "off",
                          "unique_id": "3"}) == {
        "resolution": 512, "steps": 7, "no_face": "pass", "backend": "cpu", "length": "trim",
        "model_weight": 0.25, "silence_threshold": "off"}


def test_the_model_choice_lists_models_facesync(comfy, tmp_path, monkeypatch):
    import folder_paths

    folder = tmp_path / "comfyui" / "models" / "facesync"
    folder.mkdir(parents=True)
    (folder / "wav2lip_gan_96.onnx").write_bytes(b"")
    (folder / "edtalk_256.onnx").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"")
    node = comfy.node
    assert node._model_folder() == ["builtin", "edtalk:edtalk_256.onnx",
                                    "wav2lip:wav2lip_gan_96.onnx"]
    inputs = {i.id: i for i in node.FacesyncLipSync.define_schema().inputs}
    assert inputs["model"].optional  # API workflows saved before it existed still validate
    assert node._model_spec("builtin") == "builtin"
    assert node._model_spec("edtalk:edtalk_256.onnx") == f"edtalk:{folder / 'edtalk_256.onnx'}"
    assert folder_paths.get_folder_paths("facesync") == [str(folder)]
    with pytest.raises(ValueError, match="gone.onnx"):
        node._model_spec("wav2lip:gone.onnx")


def test_the_model_choice_offers_latentsync_export_folders(comfy, tmp_path):
    import folder_paths

    folder = tmp_path / "comfyui" / "models" / "facesync"
    export = folder / "latentsync-1.5"
    export.mkdir(parents=True)
    for name in ["unet.onnx", "unet_weights.pb", "vae_encoder.onnx", "vae_decoder.onnx",
                 "whisper_tiny.onnx"]:
        (export / name).write_bytes(b"")
    partial = folder / "half"  # not an export: a file missing; its ONNX files are listed
    partial.mkdir()
    for name in ["unet.onnx", "vae_encoder.onnx", "vae_decoder.onnx"]:
        (partial / name).write_bytes(b"")
    (folder / "wav2lip_96.onnx").write_bytes(b"")
    node = comfy.node
    assert node._model_folder() == [
        "builtin", "wav2lip:half/unet.onnx", "wav2lip:half/vae_decoder.onnx",
        "wav2lip:half/vae_encoder.onnx", "latentsync:latentsync-1.5", "wav2lip:wav2lip_96.onnx"]
    assert node._model_spec("latentsync:latentsync-1.5") == f"latentsync:{export}"
    assert folder_paths.get_folder_paths("facesync") == [str(folder)]
    (export / "unet.onnx").unlink()
    with pytest.raises(ValueError, match="latentsync-1.5"):
        node._model_spec("latentsync:latentsync-1.5")
    # The UNet's weights file is part of an export too: the run needs it.
    (export / "unet.onnx").write_bytes(b"")
    (export / "unet_weights.pb").unlink()
    assert "latentsync:latentsync-1.5" not in node._model_folder()
    with pytest.raises(ValueError, match="latentsync-1.5 has no unet_weights.pb"):
        node._model_spec("latentsync:latentsync-1.5")
    (export / "unet_weights.pb").write_bytes(b"")
    # What the node hands to facesync: the folder's full path.
    (export / "unet.onnx").write_bytes(b"")
    assert node._options({"model": "latentsync:latentsync-1.5", "resolution": "256"}) == {
        "model": f"latentsync:{export}", "resolution": 256}


def test_v1_mappings_without_the_v3_api(comfy, monkeypatch):
    monkeypatch.setitem(sys.modules, "comfy_api.latest", None)  # ImportError, as before V3
    node = load_node()
    assert not hasattr(node, "comfy_entrypoint")
    assert node.NODE_CLASS_MAPPINGS == {"FacesyncLipSync": node.FacesyncLipSync}
    assert node.NODE_DISPLAY_NAME_MAPPINGS == {"FacesyncLipSync": "facesync lip sync"}
    inputs = node.FacesyncLipSync.INPUT_TYPES()["required"]
    assert all(spec[1].get("tooltip") for spec in inputs.values())
    assert node.FacesyncLipSync.DESCRIPTION
    images = pattern_frames(4, 32, 32)
    (out,) = execute(node, "FacesyncLipSync", images=images, audio=tone(0.16), fps=25.0)
    assert out.shape == (4, 32, 32, 3)


# -- results ------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [3, 4, 1])
def test_frames_without_a_face_come_back_exactly(comfy, channels):
    images = pattern_frames(16, 48, 64, channels)
    (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.64), fps=25.0)
    out = numpy_of(out)
    assert out.dtype == np.float32
    assert out.shape == (16, 48, 64, 3) and out.flags.c_contiguous
    rgb = images[..., :3] if channels > 1 else np.repeat(images, 3, axis=-1)
    # 8 bits inside: every value is the input's rounded to the nearest 1/255 (halves up).
    np.testing.assert_array_equal(np.round(out * 255), bytes_of(rgb))


def test_torch_in_torch_out(comfy):
    torch = pytest.importorskip("torch")  # as in ComfyUI, where IMAGE is a torch tensor
    images = torch.from_numpy(pattern_frames(4, 16, 16))
    (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.16), fps=25.0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.equal(torch.round(out * 255), torch.from_numpy(bytes_of(images.numpy())))


def test_a_short_video_plays_ping_pong_to_the_audio_length(comfy):
    images = pattern_frames(4, 16, 16)
    (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.4), fps=25.0)
    out = numpy_of(out)
    order = [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]
    np.testing.assert_array_equal(np.round(out * 255), bytes_of(images[order]))


def test_the_faces_are_lip_synced_and_progress_reaches_comfyui(comfy, face_clip):
    images, audio = face_clip
    (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=audio, fps=25.0,
                     unique_id="12")
    out = numpy_of(out)
    assert out.shape == images.shape
    assert np.abs(out - images).max() > 0.1  # mouths regenerated

    calls, values = comfy.hook.calls, comfy.hook.values
    assert values[0] > 0 and values[-1] == calls[-1][2] == 1000  # no 0: it moves from the start
    assert values == sorted(values) and len(set(values)) == len(values)  # each value once
    assert {c[4] for c in calls} == {"12"}
    assert {c[5] for c in calls} == {threading.current_thread().name}  # the node's thread
    previews = comfy.hook.previews
    assert previews, "no preview"
    for kind, image, size in previews:
        assert kind == "JPEG" and size is None and max(image.size) <= 256
    pixels = [zlib.crc32(image.tobytes()) for _, image, _ in previews]
    assert len(set(pixels)) == len(pixels)  # one preview per distinct image
    texts = comfy.server.texts()
    assert texts[0] == "Starting" and texts[-1].startswith("Done in")
    labels = ("Reading frames:", "Finding faces:", "Lip sync:", "Restoring faces:",
              "Writing frames:")
    assert any(t.startswith(labels) and "frames/s" in t and "left" in t for t in texts), texts


# -- responsiveness -----------------------------------------------------------------------

class GapMeter(threading.Thread):
    """A Python thread that asks for the GIL every millisecond and records how late it got
    it: its longest gap is the longest time anything held the GIL (or starved it)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.max_gap = 0.0

    def run(self):
        last = time.perf_counter()
        while not self.stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now


def test_a_300_frame_720p_batch_never_holds_the_gil_and_reports_from_first_to_last(comfy):
    images = pattern_frames(300, 720, 1280)
    audio = tone(12.0)
    slow = slowness()
    meter = GapMeter()
    meter.start()
    started = time.perf_counter()
    try:
        (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=audio, fps=25.0,
                         backend="cpu")
        returned = time.perf_counter()
    finally:
        meter.stop.set()
        meter.join()
    assert out.shape == images.shape
    del out
    times = [c[0] for c in comfy.hook.calls]
    moving = [c[0] for c in comfy.hook.calls if c[1] > 0]
    first, last = moving[0] - started, returned - times[-1]
    gaps = np.diff([started, *times, returned])
    print(f"\n300x720p: {returned - started:.1f} s, first update {first * 1000:.0f} ms, "
          f"last {last * 1000:.0f} ms before return, longest gap between updates "
          f"{gaps.max():.2f} s, longest GIL gap {meter.max_gap * 1000:.1f} ms "
          f"(machine slowness {slow:.1f}, {slowness():.1f} after)")
    assert first <= 0.5 * slow and last <= 0.5 * slow
    assert meter.max_gap <= 0.05 * slow


def _nice_of_threads():
    """{native thread id: (name, nice)} of this process's threads (Linux)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (name, int(fields[16]))  # field 19 of stat: nice
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux")
@pytest.mark.parametrize("nice", [0, 10, "the node's own"])
def test_nice_lowers_the_run_threads_not_the_callers(comfy, monkeypatch, nice):
    """``nice=`` (what the node passes as NICE): facesync's threads run at a lower priority
    and the node's own thread (ComfyUI's executor) keeps its priority. The node's own choice
    puts the run below the server's threads."""
    lipsync = sys.modules["facesync_comfyui.lipsync"]
    if isinstance(nice, str):
        nice = lipsync.NICE
        assert nice > 0
    else:
        monkeypatch.setattr(lipsync, "NICE", nice)
    deliver = lipsync.ComfyProgress.__call__
    seen = []

    def on_event(self, event):
        deliver(self, event)
        if event["type"] == "progress" and not seen:
            seen.append(_nice_of_threads())

    monkeypatch.setattr(lipsync.ComfyProgress, "__call__", on_event)
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    execute(comfy.node, "FacesyncLipSync", images=pattern_frames(16, 32, 32),
            audio=tone(0.64), fps=25.0)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    threads = seen[0]
    assert threads[threading.get_native_id()][1] == before
    # The run's thread and the stage threads it starts (unnamed: they inherit its name).
    run = [n for name, n in threads.values() if name == "facesync-run"]
    assert run and set(run) == {min(19, before + nice)}, threads
    with pytest.raises(ValueError, match="nice=20"):
        facesync.run_frames(pattern_frames(1, 8, 8), 25.0, tone(0.04)["waveform"][0], 16000,
                            nice=20)


def _rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_the_node_hands_back_what_getvideocomponents_freed(comfy, monkeypatch):
    """GetVideoComponents makes one float tensor per frame, stacks them and frees them; glibc
    keeps those pages. When memory is short, the node hands them back before it adds its
    output."""
    lipsync = sys.modules["facesync_comfyui.lipsync"]
    monkeypatch.setattr(lipsync, "available_memory", lambda: 0)  # memory is short
    result = {}

    def executor():  # ComfyUI runs nodes on a thread of its own (its own malloc arena)
        start = _rss()
        frames = [np.full((360, 640, 3), i % 255, np.uint8).astype(np.float32) / 255.0
                  for i in range(120)]
        images = np.stack(frames)
        del frames
        result["kept"] = _rss() - start - images.nbytes
        before = _rss()
        (out,) = execute(comfy.node, "FacesyncLipSync", images=images[:2], audio=tone(0.08),
                         fps=25.0)
        result["after"] = _rss() - before

    thread = threading.Thread(target=executor)
    thread.start()
    thread.join()
    if result["kept"] < 100e6:
        pytest.skip(f"the C library kept only {result['kept'] / 1e6:.0f} MB of the freed "
                    "frames: nothing to hand back")
    # At least half of what was freed but kept went back to the system.
    assert result["after"] < -0.5 * result["kept"], result


@pytest.mark.parametrize("available, trims", [(None, True), (0, True), (10 << 30, False)])
def test_freed_memory_goes_back_only_when_the_output_needs_it(comfy, monkeypatch, available,
                                                              trims):
    """With the output (4 frames of 64x64 float32 here) and the margin available, the node
    leaves glibc's pages alone (handing them back stalled a virtual machine's host); short of
    memory, or where the amount cannot be read, it hands them back."""
    lipsync = sys.modules["facesync_comfyui.lipsync"]
    calls = []
    monkeypatch.setattr(lipsync, "available_memory", lambda: available)
    monkeypatch.setattr(lipsync, "_trim", lambda: calls.append(True))
    execute(comfy.node, "FacesyncLipSync", images=pattern_frames(4, 64, 64), audio=tone(0.16),
            fps=25.0)
    assert calls == ([True] if trims else [])
    assert lipsync.release_freed_memory(4 * 64 * 64 * 3 * 4) == trims


# -- interrupts ---------------------------------------------------------------------------

def test_an_interrupt_at_any_point_stops_the_node_within_half_a_second(comfy, face_clip):
    images, audio = face_clip
    mm = comfy.mm
    # The run's length, warm: the first run also pays one-off costs (the compute device, the
    # allocator handing memory back), and an interrupt planned from a cold run's length can
    # land after a warm run has already returned.
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        execute(comfy.node, "FacesyncLipSync", images=images, audio=audio, fps=25.0)
        runs.append(time.perf_counter() - started)
    whole = min(runs)
    delays = []
    slow = slowness()
    for k in range(10):
        comfy.hook.calls.clear()
        at = whole * (0.02 + 0.75 * k / 9)
        pressed = []

        def press():
            pressed.append(time.perf_counter())
            mm.interrupt_current_processing()

        timer = threading.Timer(at, press)
        timer.start()
        result = None
        with pytest.raises(mm.InterruptProcessingException):
            result = execute(comfy.node, "FacesyncLipSync", images=images, audio=audio,
                             fps=25.0)
        stopped = time.perf_counter()
        timer.join()
        assert result is None
        assert not mm.processing_interrupted()  # cleared by raising, as in ComfyUI
        assert 1000 not in comfy.hook.values  # never 100 % for an interrupted run
        delays.append(stopped - pressed[0])
    print(f"\nrun {whole:.2f} s; interrupt to raise: "
          + " ".join(f"{d * 1000:.0f}" for d in delays) + f" ms (machine slowness {slow:.1f})")
    assert max(delays) <= 0.5 * slow


def test_an_interrupt_after_the_pipeline_ended_gives_no_result(comfy, monkeypatch):
    """The user presses cancel when the work is done but the node has not returned yet."""
    images = pattern_frames(8, 32, 32)
    mm = comfy.mm
    lipsync = sys.modules["facesync_comfyui.lipsync"]
    deliver = lipsync.ComfyProgress.__call__

    def on_event(self, event):
        deliver(self, event)
        if event["type"] == "run_finished":  # the pipeline's very last event
            mm.interrupt_current_processing()

    monkeypatch.setattr(lipsync.ComfyProgress, "__call__", on_event)
    with pytest.raises(mm.InterruptProcessingException):
        execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.32), fps=25.0)
    assert 1000 not in comfy.hook.values


# -- errors and warnings ------------------------------------------------------------------

def test_no_face_error_is_clean_and_the_bar_stays_where_it_failed(comfy):
    images = pattern_frames(64, 64, 64)
    with pytest.raises(facesync.FacesyncError) as error:
        execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(2.56), fps=25.0,
                no_face="error")
    message = str(error.value)
    assert "face" in message and message == message.strip()
    # The phase by the name the node's bar shows it under.
    assert "Processing faces" not in message, message
    # The face stage fails on its first chunk: the bar never passes the frames read so far.
    assert max(comfy.hook.values, default=0) < 300, comfy.hook.values


def test_interpolate_without_any_face_warns(comfy, caplog):
    images = pattern_frames(8, 32, 32)
    with caplog.at_level(logging.WARNING, logger="facesync"):
        (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.32),
                         fps=25.0, no_face="interpolate")
    assert out.shape == (8, 32, 32, 3)
    assert "no face found in any frame" in comfy.server.texts()[-1]
    assert "no face found in any frame" in caplog.text


def test_pass_without_any_face_warns(comfy, caplog):
    images = pattern_frames(8, 32, 32)
    with caplog.at_level(logging.WARNING, logger="facesync"):
        (out,) = execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.32),
                         fps=25.0, no_face="pass")
    assert out.shape == (8, 32, 32, 3)
    assert "no face found in any frame" in comfy.server.texts()[-1]


def test_an_empty_audio_input_says_so(comfy):
    # GetVideoComponents of a video without a sound track gives no audio.
    images = pattern_frames(4, 16, 16)
    for audio in (None, {"waveform": None, "sample_rate": 44100}):
        with pytest.raises(ValueError, match="audio: the input is empty"):
            execute(comfy.node, "FacesyncLipSync", images=images, audio=audio, fps=25.0)


def test_bad_inputs_name_the_input(comfy):
    images = pattern_frames(4, 16, 16)
    with pytest.raises(ValueError, match="images"):
        execute(comfy.node, "FacesyncLipSync", images=images[..., :2], audio=tone(0.2),
                fps=25.0)
    with pytest.raises(ValueError, match="audio"):
        execute(comfy.node, "FacesyncLipSync", images=images,
                audio={"waveform": tone(0.2)["waveform"]}, fps=25.0)


# -- the VIDEO node -----------------------------------------------------------------------

def test_the_video_node_streams_a_file_and_returns_a_video(comfy, sample):
    from comfy_api.latest import InputImpl

    video, audio = sample
    (out,) = execute(comfy.node, "FacesyncLipSyncVideo", video=InputImpl.VideoFromFile(video),
                     audio=read_wav_audio(audio))
    path = out.get_stream_source()
    assert path.endswith(".mp4") or path.endswith(".y4m")
    import os

    assert os.path.getsize(path) > 0
    assert comfy.hook.values[-1] == 1000




@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    """2.56 s of the built-in face sample at 256x256 as ComfyUI's IMAGE batch and AUDIO."""
    directory = tmp_path_factory.mktemp("face_clip")
    video, audio = facesync.write_sample(str(directory), seconds=2.56, size=256)
    return read_y4m_rgb(video), read_wav_audio(audio)


def test_progress_values_never_repeat_and_previews_come_once(comfy):
    """ComfyProgress alone, on a scripted event stream: the bar's values as ComfyUI receives
    them (through the stand-in ProgressBar and its throttle)."""
    import base64

    lipsync = sys.modules["facesync_comfyui.lipsync"]
    import comfy.utils as utils

    progress = lipsync.ComfyProgress("9", utils.ProgressBar, comfy.server)
    progress.start()
    pixels = base64.b64encode(bytes(range(48))).decode()
    progress({"type": "phase_started", "id": 2, "name": "Doing inference", "total": 10})
    for i, fraction in enumerate([0.0, 0.001, 0.001, 0.2, 0.2, 0.19, 0.5, 0.9, 1.0]):
        time.sleep(0.11)
        progress({"type": "progress", "id": 2, "pos": i, "total": 10, "rate": 5.0, "eta": 1.0})
        progress({"type": "run_progress", "fraction": fraction, "eta": 1.0})
        if i in (3, 4, 6):  # the same image twice, then another
            data = pixels if i < 6 else base64.b64encode(bytes(48)).decode()
            progress({"type": "preview", "phase": 2, "frame": i, "width": 4, "height": 4,
                      "format": "rgb8", "data": data})
    progress.finish()
    values = comfy.hook.values
    assert values == sorted(set(values)), values  # no repeats, never backwards
    # No 0 at the start: the bar's first value is 1 of 1000, sent by start() (ComfyUI always
    # sends a first value, then drops changes under 0.5 %).
    assert values[0] == 1 and values[-1] == 1000 and 999 in values  # 1.0 waits for finish()
    assert len(comfy.hook.previews) == 2
    assert comfy.server.texts()[1].startswith("Lip sync: ")


def test_the_bar_moves_before_anything_slow(comfy, monkeypatch):
    """The first progress reaches ComfyUI before the node hands freed memory back to the
    system (0.2 s after GetVideoComponents in the real server) and before facesync starts."""
    lipsync = sys.modules["facesync_comfyui.lipsync"]
    seen = []
    monkeypatch.setattr(lipsync, "release_freed_memory",
                        lambda needed=0: seen.append(list(comfy.hook.values)))
    images = pattern_frames(4, 16, 16)
    execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.16), fps=25.0)
    assert seen == [[1]], seen
    assert comfy.server.texts()[0] == "Starting"


def test_a_failed_phase_freezes_the_bar(comfy):
    lipsync = sys.modules["facesync_comfyui.lipsync"]
    import comfy.utils as utils

    progress = lipsync.ComfyProgress("9", utils.ProgressBar, comfy.server)
    progress.start()
    time.sleep(0.11)
    progress({"type": "run_progress", "fraction": 0.1, "eta": None})
    progress({"type": "phase_finished", "id": 3, "outcome": "failed", "error": "no face",
              "pos": 16, "total": 300, "elapsed": 1.0})
    time.sleep(0.11)
    progress({"type": "run_progress", "fraction": 0.58, "eta": None})
    assert comfy.hook.values == [1, 100]


def test_backend_gpu_on_a_software_renderer_warns_in_the_ui(comfy):
    import glob

    if glob.glob("/dev/dri/renderD*") or glob.glob("/dev/nvidia*"):
        pytest.skip("a GPU device exists here: the adapter may be hardware")
    images = pattern_frames(4, 32, 32)
    try:
        execute(comfy.node, "FacesyncLipSync", images=images, audio=tone(0.16), fps=25.0,
                backend="gpu")
    except facesync.FacesyncError as e:  # no adapter at all (no lavapipe): a clean error
        assert "adapter" in str(e)
        return
    assert "software rasterizer" in comfy.server.texts()[-1]
