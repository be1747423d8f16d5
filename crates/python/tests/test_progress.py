"""facesync.progress: the tqdm-compatible bar backed by progress-core."""

import io
import sys
import time

import pytest

from facesync.progress import Progress, tqdm, trange


def finished(events):
    return [e for e in events if e["type"] == "phase_finished"]


def test_update_counts_and_the_final_state_reaches_the_callback():
    events = []
    bar = Progress(total=10, desc="frames", console=False, on_event=events.append)
    bar.update(3)
    bar.update()
    assert bar.n == 4 and bar.total == 10 and len(bar) == 10
    bar.close()
    bar.close()  # idempotent
    assert bar.closed
    assert events[0]["type"] == "run_started"
    started = [e for e in events if e["type"] == "phase_started"]
    assert [(s["name"], s["total"], s["unit"]) for s in started] == [("frames", 10, "it")]
    assert [(f["pos"], f["total"], f["outcome"]) for f in finished(events)] == [(4, 10, "completed")]
    assert events[-1]["type"] == "run_finished"


def test_iteration_yields_the_items_counts_them_and_closes_the_bar():
    events = []
    bar = tqdm(range(5), desc="items", unit="frames", console=False, on_event=events.append)
    assert list(bar) == [0, 1, 2, 3, 4]
    assert bar.n == 5 and bar.closed
    assert [(f["pos"], f["total"]) for f in finished(events)] == [(5, 5)]  # total from len()


def test_break_leaves_the_unfinished_item_uncounted():
    bar = Progress(iter(range(100)), disable=True)
    for i in bar:
        if i == 10:
            break
    assert bar.n == 10 and bar.total is None


def test_a_bar_iterates_once():
    bar = Progress([1, 2], disable=True)
    assert list(bar) == [1, 2]
    with pytest.raises(TypeError, match="iterated already"):
        iter(bar)


def test_context_manager_closes_and_marks_a_failure():
    events = []
    with Progress(total=3, console=False, on_event=events.append) as bar:
        bar.update(3)
    assert bar.closed and finished(events)[0]["outcome"] == "completed"

    events = []
    with pytest.raises(ValueError):
        with Progress(total=3, console=False, on_event=events.append) as bar:
            bar.update(1)
            raise ValueError("stop")
    assert [(f["pos"], f["outcome"]) for f in finished(events)] == [(1, "failed")]
    assert "stop" in finished(events)[0]["error"]


def test_progress_events_come_from_the_dispatcher_with_rate_and_postfix():
    events = []
    bar = Progress(total=1000, console=False, on_event=events.append, tick=0.02)
    bar.set_postfix(loss=0.123456, step=7)
    for _ in range(5):
        bar.update(100)
        time.sleep(0.05)
    bar.close()
    progress = [e for e in events if e["type"] == "progress"]
    assert progress, events
    assert progress[-1]["message"] == "loss=0.123, step=7"
    assert [p["pos"] for p in progress] == sorted(p["pos"] for p in progress)
    assert progress[-1]["rate"] is not None and progress[-1]["rate"] > 0


def test_set_description_shows_with_the_postfix():
    events = []
    bar = Progress(total=2, desc="faces", console=False, on_event=events.append, tick=0.02)
    bar.set_description("faces (chunk 2)")
    bar.set_postfix_str("ok")
    bar.update(1)
    time.sleep(0.1)
    bar.close()
    messages = [e["message"] for e in events if e["type"] == "progress"]
    assert messages[-1] == "faces (chunk 2): ok"
    assert bar.desc == "faces"


def test_child_bars_are_phases_of_the_parent_run():
    events = []
    outer = Progress(total=2, desc="chunks", console=False, on_event=events.append)
    for _ in range(2):
        for _ in Progress(range(3), desc="steps", parent=outer):
            pass
        outer.update(1)
    outer.close()
    started = [e for e in events if e["type"] == "phase_started"]
    assert [s["name"] for s in started] == ["chunks", "steps", "steps"]
    assert started[1]["parent"] == started[0]["id"]
    assert [(f["pos"], f["total"]) for f in finished(events)] == [(3, 3), (3, 3), (2, 2)]


def test_tqdm_display_options_are_accepted_and_unknown_ones_rejected():
    bar = Progress(total=5, leave=False, file=io.StringIO(), ncols=80, mininterval=0.5,
                   bar_format="{l_bar}", position=1, disable=True)
    bar.update(5)
    assert bar.n == 5
    with pytest.raises(TypeError, match="unexpected keyword argument 'colr'"):
        Progress(total=5, colr="red")


def test_trange_and_reset():
    bar = trange(4, disable=True)
    assert list(bar) == [0, 1, 2, 3] and bar.total == 4
    bar.reset(total=10)
    assert bar.n == 0 and bar.total == 10
    bar.total = float("inf")  # tqdm's "unknown"
    assert bar.total is None


def test_write_goes_above_a_console_bar_or_to_the_file(capsys):
    out = io.StringIO()
    Progress.write("hello", file=out)
    assert out.getvalue() == "hello\n"

    quiet = Progress(total=1, console=False, on_event=lambda e: None)
    Progress.write("to stdout")  # no console bar open: printed as tqdm does
    assert capsys.readouterr().out == "to stdout\n"
    quiet.close()

    events = []
    bar = Progress(total=1, console=True, on_event=events.append)
    Progress.write("a line")  # a console bar is open: the line goes to its sinks
    bar.close()
    assert capsys.readouterr().out == ""
    assert [(e["level"], e["text"]) for e in events if e["type"] == "message"] == [
        ("info", "a line")]


def test_a_child_bar_takes_no_sinks_of_its_own():
    outer = Progress(total=1, disable=True)
    with pytest.raises(ValueError, match="parent"):
        Progress(total=1, parent=outer, on_event=print)


def test_an_exception_in_on_event_is_reported_and_the_bar_goes_on(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def broken(event):
        raise RuntimeError("callback broke")

    bar = Progress(total=2, console=False, on_event=broken)
    bar.update(2)
    bar.close()
    assert reported and all(isinstance(e, RuntimeError) for e in reported)
    assert bar.n == 2

