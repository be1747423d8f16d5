"""facesync.run: the pipeline end to end, events as dicts, cancellation, errors."""

import os
import signal
import threading
import time

import pytest

import facesync


def test_version_is_the_installed_wheels():
    from importlib.metadata import version

    assert facesync.__version__ == version("facesync")
    assert facesync.__version__.count(".") == 2


def test_run_writes_the_output_and_reports_every_phase_as_dicts(sample, tmp_path):
    video, audio = sample
    out = tmp_path / "out.y4m"
    events = []
    summary = facesync.run(video, audio, str(out), on_event=events.append)

    assert out.is_file()
    assert summary["output"] == str(out)
    assert summary["frames"] == 16 and summary["input_frames"] == 16
    assert summary["fps"] == 25.0
    assert all(isinstance(e, dict) for e in events)
    assert events[0] == {"type": "run_started", "schema": 1, "t": events[0]["t"], "tick_ms": 100}
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["summary"]["cancelled"] is False
    names = {e["id"]: e["name"] for e in events if e["type"] == "phase_started"}
    assert {"Lip sync", "Decoding", "Processing faces", "Doing inference", "Restoring faces",
            "Encoding"} <= set(names.values())
    finished = {names[e["id"]]: e for e in events if e["type"] == "phase_finished"}
    assert finished["Encoding"]["outcome"] == "completed"
    assert finished["Encoding"]["pos"] == 16
    assert finished["Lip sync"]["outcome"] == "completed"
    previews = [e for e in events if e["type"] == "preview"]
    assert previews and isinstance(previews[0]["data"], str)  # base64, as in the JSON schema
    assert any(e["type"] == "face_status" and e["action"] == "aligned" for e in events)


def test_the_gil_is_released_while_the_pipeline_runs(sample, tmp_path):
    video, audio = sample
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    thread = threading.Thread(target=count)
    thread.start()
    try:
        summary = facesync.run(video, audio, str(tmp_path / "out.y4m"))
    finally:
        stop.set()
        thread.join()
    # A thread that needs the GIL a thousand times a second kept running during the run.
    assert len(ticks) > 0.3 * 1000 * summary["elapsed"]


def test_a_missing_input_raises_naming_it(sample, tmp_path):
    _, audio = sample
    missing = tmp_path / "nope.y4m"
    with pytest.raises(FileNotFoundError, match="nope.y4m"):
        facesync.run(str(missing), audio, str(tmp_path / "out.y4m"))
    assert not (tmp_path / "out.y4m").exists()


def test_a_corrupt_input_raises_facesync_error_naming_it(sample, tmp_path):
    video, _ = sample
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(facesync.FacesyncError, match="bad.wav"):
        facesync.run(video, str(bad), str(tmp_path / "out.y4m"))
    assert not (tmp_path / "out.y4m").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        ({"no_face": "skip"}, 'no_face: unknown no-face policy "skip": expected one of pass, error'),
        ({"backend": "tpu"}, 'backend: unknown backend "tpu": expected one of auto, gpu, cpu'),
        ({"length": "pingpong"}, 'length: unknown length policy "pingpong"'),
        ({"resolution": 300}, "resolution 300"),
        ({"chunk": 0}, "chunk 0 is out of range \\(1 to 256\\)"),
        ({"steps": 101}, "steps 101 is out of range \\(1 to 100\\)"),
        ({"steps": 2.5}, "steps: 2.5 is not a whole number"),
        ({"steps": True}, "steps: expected a number or text, got a bool"),
        ({"steps": 2**70}, "steps: 1180591620717411303424 is out of range"),
        ({"model_weight": "strong"}, 'model_weight: "strong" is not a number'),
        ({"silence_threshold": "quiet"}, 'silence_threshold: "quiet" is not a number'),
        ({"silence_threshold": 3}, "silence threshold 3 is out of range \\(-100 to 0, or off\\)"),
    ],
)
def test_bad_options_raise_value_error_before_any_work(sample, tmp_path, option, message):
    video, audio = sample
    with pytest.raises(ValueError, match=message):
        facesync.run(video, audio, str(tmp_path / "out.y4m"), **option)
    assert not (tmp_path / "out.y4m").exists()


def test_an_unknown_option_is_a_type_error_listing_the_known_ones(sample, tmp_path):
    video, audio = sample
    with pytest.raises(TypeError, match="unknown option `stpes` \\(known: resolution, steps,"):
        facesync.run(video, audio, str(tmp_path / "out.y4m"), stpes=3)
    with pytest.raises(TypeError, match="expected int, float or str, got list"):
        facesync.run(video, audio, str(tmp_path / "out.y4m"), steps=[3])


def test_options_take_the_command_lines_text_and_numbers_alike(sample, tmp_path):
    """The one parser: "3" and 3 and 3.0 are the same whole number, names are case-blind."""
    video, audio = sample
    for steps in ("3", 3, 3.0):
        summary = facesync.run(video, audio, str(tmp_path / "out.y4m"), steps=steps,
                               resolution="256", backend="CPU", length="trim")
        assert summary["frames"] == 16
    for level in ("off", "OFF", -45, "-45", -45.5):
        summary = facesync.run(video, audio, str(tmp_path / "out.y4m"), silence_threshold=level)
        assert summary["frames"] == 16


def test_the_stub_lists_the_schemas_options_with_their_values():
    """``_native.pyi``'s ``RunOptions`` (what type checkers see) is the Rust schema: the same
    names in the same order, the choices as ``Literal`` values, numbers as int or float."""
    import ast
    import pathlib

    stub = pathlib.Path(facesync.__file__).with_name("_native.pyi")
    tree = ast.parse(stub.read_text())
    typed = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RunOptions")
    fields = {a.target.id: a.annotation for a in typed.body if isinstance(a, ast.AnnAssign)}
    schema = facesync.options_schema()
    assert list(fields) == [o["name"] for o in schema]
    for option in schema:
        annotation = fields[option["name"]]
        if "choices" in option:
            assert ast.unparse(annotation).startswith("Literal["), option["name"]
            assert [e.value for e in annotation.slice.elts] == option["choices"], option["name"]
        else:
            expected = {"int": "int", "float": "float", "text": "ModelSpec",
                        "level": "float | Literal['off']"}[option["kind"]]
            assert ast.unparse(annotation) == expected, option["name"]
        assert option["help"] and option["value_name"]
    defaults = {o["name"]: o["default"] for o in schema}
    assert defaults == {"resolution": 256, "steps": 20, "chunk": 16, "no_face": "pass",
                        "backend": "auto", "length": "loop", "model": "builtin",
                        "model_weight": 0.5, "silence_threshold": -50.0}


def test_the_cancel_handle_stops_the_run_and_leaves_no_output(sample, tmp_path):
    video, audio = sample
    token = facesync.CancelToken()
    events = []

    def on_event(event):
        events.append(event)
        if event["type"] == "phase_started" and event["name"] == "Processing faces":
            token.cancel()

    out = tmp_path / "out.y4m"
    with pytest.raises(facesync.Cancelled, match="cancelled"):
        facesync.run(video, audio, str(out), on_event=on_event, cancel=token)
    assert token.cancelled
    assert not out.exists()
    assert events[-1]["type"] == "run_finished" and events[-1]["summary"]["cancelled"]


def test_an_exception_in_on_event_cancels_the_run_and_is_raised(sample, tmp_path):
    video, audio = sample

    def on_event(event):
        if event["type"] == "progress":
            raise RuntimeError("my callback broke")

    out = tmp_path / "out.y4m"
    with pytest.raises(RuntimeError, match="my callback broke"):
        facesync.run(video, audio, str(out), on_event=on_event)
    assert not out.exists()


def test_ctrl_c_cancels_the_run_and_raises_keyboard_interrupt(long_sample, tmp_path):
    video, audio = long_sample
    out = tmp_path / "out.y4m"
    events = []
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        facesync.run(video, audio, str(out), on_event=events.append)
    timer.join()
    assert time.monotonic() - started < 30
    assert not out.exists()
    finished = [e for e in events if e["type"] == "run_finished"]
    assert finished and finished[0]["summary"]["cancelled"]
    assert any(e["type"] == "phase_finished" and e["outcome"] == "cancelled" for e in events)


@pytest.mark.parametrize("value", ["cpu", " CPU "])
def test_facesync_backend_in_the_environment_chooses_the_backend(sample, tmp_path, monkeypatch, value):
    # backend="auto" (the default) leaves the choice to FACESYNC_BACKEND, resolved inside the
    # library (the same function the queue worker and the CLI go through).
    monkeypatch.setenv("FACESYNC_BACKEND", value)
    video, audio = sample
    events = []
    facesync.run(video, audio, str(tmp_path / "out.y4m"), on_event=events.append)
    texts = [e["text"] for e in events if e["type"] == "message"]
    assert "compute: cpu (backend cpu from FACESYNC_BACKEND)" in texts, texts


def test_an_explicit_backend_wins_over_the_environment(sample, tmp_path, monkeypatch):
    monkeypatch.setenv("FACESYNC_BACKEND", "gpu")
    video, audio = sample
    events = []
    facesync.run(video, audio, str(tmp_path / "out.y4m"), backend="cpu", on_event=events.append)
    texts = [e["text"] for e in events if e["type"] == "message"]
    assert "compute: cpu (backend cpu from the run's options)" in texts, texts


def test_an_unknown_facesync_backend_is_an_error_naming_the_variable(sample, tmp_path, monkeypatch):
    monkeypatch.setenv("FACESYNC_BACKEND", "tpu")
    video, audio = sample
    with pytest.raises(facesync.FacesyncError, match='FACESYNC_BACKEND: unknown backend "tpu"'):
        facesync.run(video, audio, str(tmp_path / "out.y4m"))
    assert not (tmp_path / "out.y4m").exists()
