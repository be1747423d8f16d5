//! Each sink fed a fixed, hand-built event sequence; the output compared as data.

mod common;

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Shared, capture_json_logs, finished, nested_run, progress, started};
use indicatif::{InMemoryTerm, ProgressDrawTarget};
use progress_core::{Control, Event, ImageFormat, Outcome, PreviewImage, ProgressSink};
use serde_json::{Value, json};
use sinks::{CallbackSink, ChannelSink, ConsoleSink, JsonLinesSink, LogSink};

fn feed(sink: &mut impl ProgressSink, events: &[Event]) -> Vec<Control> {
    events
        .iter()
        .map(|e| {
            let control = sink.handle(e);
            sink.flush();
            control
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Console, plain lines

#[test]
fn console_plain_lines() {
    let out = Shared::default();
    let mut sink = ConsoleSink::plain(out.clone());
    feed(&mut sink, &nested_run());
    let expected = [
        "Processing faces: started, 100 frames",
        "  Detecting: started, 100 frames",
        // t 0.2 and 0.5 fall within a second of each phase's start; t 1.2 within a second of 1.1.
        "  Detecting: 50/100 frames (50%), 40.0 frames/s, ETA 1.3s - batch 5",
        "warning: no face in frame 12",
        "  Detecting: done in 1.9s",
        "Processing faces: 48/100 frames (48%), ?, ETA ?",
        "Processing faces: cancelled at 48/100 after 2.5s",
        "run cancelled after 2.6s: 1 completed, 1 cancelled",
    ];
    assert_eq!(out.text().lines().collect::<Vec<_>>(), expected);
}

#[test]
fn console_plain_keeps_short_deeply_nested_phases_quiet() {
    let out = Shared::default();
    let mut sink = ConsoleSink::plain(out.clone());
    let events = [
        started(0.0, 1, None, "Lip sync", Some(40)),
        started(0.0, 2, Some(1), "Doing inference", Some(40)),
        // A chunk's steps done within a second: nothing printed.
        started(0.0, 3, Some(2), "steps", Some(100)),
        finished(0.4, 3, Outcome::Completed, 100, 0.4),
        // Steps that run longer: the start line comes with the first progress line.
        started(0.5, 4, Some(2), "steps", Some(100)),
        progress(1.0, 4, 25, Some(50.0), Some(1.5), None),
        progress(1.6, 4, 60, Some(50.0), Some(0.8), None),
        finished(2.4, 4, Outcome::Completed, 100, 1.9),
        // Cancelled quickly: always printed.
        started(2.5, 5, Some(2), "steps", Some(100)),
        finished(2.6, 5, Outcome::Cancelled, 3, 0.1),
        finished(2.7, 2, Outcome::Cancelled, 32, 2.7),
    ];
    feed(&mut sink, &events);
    let expected = [
        "Lip sync: started, 40 frames",
        "  Doing inference: started, 40 frames",
        "    steps: started, 100 frames",
        "    steps: 60/100 frames (60%), 50.0 frames/s, ETA 0.8s",
        "    steps: done in 1.9s",
        "    steps: started, 100 frames",
        "    steps: cancelled at 3/100 after 0.1s",
        "  Doing inference: cancelled at 32/100 after 2.7s",
    ];
    assert_eq!(out.text().lines().collect::<Vec<_>>(), expected);
}

#[test]
fn console_plain_failure_and_unknown_total() {
    let out = Shared::default();
    let mut sink = ConsoleSink::plain(out.clone());
    let events = [
        Event::PhaseStarted {
            t: 0.0,
            id: 1,
            parent: None,
            name: "Decoding".into(),
            total: None,
            unit: "".into(),
            weight: 1.0,
        },
        Event::Progress {
            t: 1.5,
            id: 1,
            pos: 12,
            total: None,
            rate: Some(8.0),
            eta: None,
            message: None,
        },
        Event::PhaseFinished {
            t: 2.0,
            id: 1,
            outcome: Outcome::Failed,
            error: Some("bad header".into()),
            pos: 12,
            total: None,
            elapsed: 2.0,
        },
    ];
    feed(&mut sink, &events);
    let expected = [
        "Decoding: started",
        "Decoding: 12, 8.0/s, ETA ?",
        "Decoding: failed at 12: bad header",
    ];
    assert_eq!(out.text().lines().collect::<Vec<_>>(), expected);
}

#[test]
fn console_off_writes_nothing_and_continues() {
    let mut sink = ConsoleSink::off();
    assert!(
        feed(&mut sink, &nested_run())
            .iter()
            .all(|c| *c == Control::Continue)
    );
}

// ---------------------------------------------------------------------------------------------
// Console, live bars in an in-memory terminal

fn bars() -> (ConsoleSink, InMemoryTerm) {
    let term = InMemoryTerm::new(24, 120);
    let sink = ConsoleSink::bars(ProgressDrawTarget::term_like(Box::new(term.clone())));
    (sink, term)
}

/// The screen's lines, trailing blanks removed.
fn screen(term: &InMemoryTerm) -> Vec<String> {
    term.contents()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// Index of the one line that starts with `start` and ends with `end`.
fn find_line(lines: &[String], start: &str, end: &str) -> usize {
    let found: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with(start) && lines[i].ends_with(end))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one line `{start}…{end}` in:\n{}",
        lines.join("\n")
    );
    found[0]
}

#[test]
fn console_bars_show_rate_eta_message_and_final_state() {
    let (mut sink, term) = bars();
    let events = nested_run();
    feed(&mut sink, &events[..6]); // up to the child's progress at 50/100
    let lines = screen(&term);
    let parent = find_line(&lines, "Processing faces [", "] 5/100 frames  ?  ETA ?");
    let child = find_line(
        &lines,
        "  Detecting [",
        "] 50/100 frames  40.0 frames/s  ETA 1.3s  batch 5",
    );
    assert_eq!(
        child,
        parent + 1,
        "child under its parent:\n{}",
        lines.join("\n")
    );

    feed(&mut sink, &events[6..8]); // another progress, then a warning
    let lines = screen(&term);
    let warning = find_line(&lines, "warning: no face in frame 12", "12");
    let parent = find_line(&lines, "Processing faces [", "] 5/100 frames  ?  ETA ?");
    assert!(
        warning < parent,
        "messages print above the bars:\n{}",
        lines.join("\n")
    );
    find_line(
        &lines,
        "  Detecting [",
        "] 55/100 frames  41.0 frames/s  ETA 1.1s",
    );

    feed(&mut sink, &events[8..]);
    let lines = screen(&term);
    find_line(
        &lines,
        "Processing faces [",
        "] 48/100 cancelled at 48/100 after 2.5s",
    );
    assert!(
        !lines.iter().any(|l| l.contains("Detecting")),
        "finished child cleared:\n{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("batch of 8")),
        "debug messages are not shown"
    );
    find_line(&lines, "run cancelled after 2.6s", "1 cancelled");
}

#[test]
fn console_bars_insert_children_after_their_parents_last_descendant() {
    let (mut sink, term) = bars();
    feed(
        &mut sink,
        &[
            started(0.0, 1, None, "A", Some(100)),
            started(0.0, 2, Some(1), "A1", Some(100)),
            started(0.0, 3, None, "B", Some(100)),
            started(0.0, 4, Some(1), "A2", Some(100)),
            started(0.0, 5, Some(2), "A1a", Some(100)),
            started(0.0, 6, Some(3), "B1", None),
        ],
    );
    let lines = screen(&term);
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" [").next().unwrap().split(" 0 ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["A", "  A1", "    A1a", "  A2", "B", "  B1"],
        "\n{}",
        lines.join("\n")
    );
    // No total and nothing counted yet: the name alone (its children, if any, show progress).
    assert!(lines.iter().any(|l| l == "  B1"), "\n{}", lines.join("\n"));
}

#[test]
fn console_bars_without_a_total_show_a_count_once_there_is_one() {
    let (mut sink, term) = bars();
    feed(
        &mut sink,
        &[
            started(0.0, 1, None, "Lip sync", None),
            started(0.0, 2, None, "Decoding", None),
            Event::Progress {
                t: 1.0,
                id: 2,
                pos: 12,
                total: None,
                rate: Some(12.0),
                eta: None,
                message: None,
            },
        ],
    );
    let lines = screen(&term);
    assert!(
        lines.iter().any(|l| l == "Lip sync"),
        "\n{}",
        lines.join("\n")
    );
    find_line(&lines, "Decoding 12 frames", "12.0 frames/s  ETA ?");
    let done = Event::PhaseFinished {
        t: 3.7,
        id: 1,
        outcome: Outcome::Completed,
        error: None,
        pos: 0,
        total: None,
        elapsed: 3.7,
    };
    feed(&mut sink, &[done]);
    let lines = screen(&term);
    assert!(
        lines.iter().any(|l| l == "Lip sync done in 3.7s"),
        "\n{}",
        lines.join("\n")
    );
}

fn run_progress(t: f64, fraction: f64, eta: Option<f64>) -> Event {
    Event::RunProgress { t, fraction, eta }
}

#[test]
fn console_bars_show_the_whole_run_below_the_phases() {
    let (mut sink, term) = bars();
    feed(
        &mut sink,
        &[
            started(0.0, 1, None, "A", Some(100)),
            run_progress(0.5, 0.25, Some(1.5)),
            started(0.6, 2, None, "B", Some(100)),
        ],
    );
    let lines = screen(&term);
    let run = find_line(&lines, "whole run [", "] 25% ETA 1.5s");
    let b = find_line(&lines, "B [", "?  ETA ?");
    assert!(b < run, "the run bar stays last:\n{}", lines.join("\n"));
    let summary = progress_core::RunSummary {
        elapsed: 2.0,
        phases: 2,
        completed: 2,
        ..Default::default()
    };
    feed(&mut sink, &[Event::RunFinished { t: 2.0, summary }]);
    let lines = screen(&term);
    assert!(
        !lines.iter().any(|l| l.starts_with("whole run")),
        "cleared at the end:\n{}",
        lines.join("\n")
    );
}

#[test]
fn console_plain_prints_the_whole_run_once_a_second() {
    let out = Shared::default();
    let mut sink = ConsoleSink::plain(out.clone());
    let events = [
        Event::RunStarted {
            schema: 1,
            t: 0.0,
            tick_ms: 100,
        },
        run_progress(0.5, 0.1, None),
        run_progress(1.1, 0.3, Some(2.6)),
        run_progress(1.6, 0.45, Some(2.0)),
        run_progress(2.2, 0.6, Some(1.5)),
    ];
    feed(&mut sink, &events);
    assert_eq!(
        out.text().lines().collect::<Vec<_>>(),
        ["whole run: 30%, ETA 2.6s", "whole run: 60%, ETA 1.5s"]
    );
}

#[test]
fn console_bars_keep_completed_top_level_with_elapsed() {
    let (mut sink, term) = bars();
    feed(
        &mut sink,
        &[
            started(0.0, 1, None, "Encoding", Some(100)),
            finished(3.2, 1, Outcome::Completed, 100, 3.2),
        ],
    );
    find_line(&screen(&term), "Encoding [", "] 100/100 done in 3.2s");
}

// ---------------------------------------------------------------------------------------------
// Log

/// `(level, message, phase)` of each log line, with the line's fields.
fn log_rows(logs: &[Value]) -> Vec<(String, String, Option<u64>)> {
    logs.iter()
        .map(|l| {
            assert_eq!(l["target"], "facesync::progress");
            let f = &l["fields"];
            (
                l["level"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
                f["phase"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn log_events_are_structured_and_rate_limited() {
    let mut sink = LogSink::new();
    let logs = capture_json_logs(|| {
        feed(&mut sink, &nested_run());
    });
    let row = |level: &str, message: &str, phase: Option<u64>| {
        (level.to_string(), message.to_string(), phase)
    };
    let expected = vec![
        row("INFO", "progress run started", None),
        row("INFO", "phase started", Some(1)),
        row("INFO", "phase started", Some(2)),
        row("INFO", "phase progress", Some(2)), // t 1.1; 0.2, 0.5 and 1.2 are rate-limited
        row("WARN", "no face in frame 12", Some(2)),
        row("DEBUG", "batch of 8", Some(2)),
        row("INFO", "phase finished", Some(2)),
        row("INFO", "phase progress", Some(1)), // t 2.4
        row("WARN", "phase finished", Some(1)),
        row("INFO", "progress run finished", None),
    ];
    assert_eq!(log_rows(&logs), expected);

    let fields = |i: usize| logs[i]["fields"].clone();
    assert_eq!(fields(2)["parent"], 1);
    assert_eq!(fields(2)["name"], "Detecting");
    assert_eq!(fields(2)["total"], 100);
    assert_eq!(fields(2)["unit"], "frames");
    let p = fields(3);
    assert_eq!(
        (&p["name"], &p["pos"], &p["rate"], &p["eta"], &p["status"]),
        (
            &json!("Detecting"),
            &json!(50),
            &json!(40.0),
            &json!(1.3),
            &json!("batch 5")
        )
    );
    assert_eq!(fields(4)["name"], "Detecting");
    assert!(
        fields(7).get("rate").is_none(),
        "absent rate is left out: {}",
        fields(7)
    );
    let f = fields(8);
    assert_eq!(
        (&f["outcome"], &f["pos"], &f["elapsed"]),
        (&json!("cancelled"), &json!(48), &json!(2.5))
    );
    let s = fields(9);
    assert_eq!(
        (&s["cancelled"], &s["completed"], &s["cancelled_phases"]),
        (&json!(true), &json!(1), &json!(1))
    );
}

#[test]
fn a_record_is_logged_at_debug_with_its_kind_and_fields() {
    let events = with_previews();
    let mut sink = LogSink::new();
    let logs = capture_json_logs(|| {
        feed(&mut sink, &events);
    });
    let record = logs
        .iter()
        .find(|l| l["fields"]["kind"] == "face_status")
        .expect("the record is logged");
    assert_eq!(record["level"], "DEBUG");
    assert_eq!(
        record["fields"],
        json!({
            "message": "face status",
            "phase": 2,
            "kind": "face_status",
            "fields": "frame=3 faces=0 action=interpolated mouth_open=0.1 presence=null reason=not_detected",
        })
    );
}

#[test]
fn log_works_with_the_fmt_layer() {
    let buf = Shared::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut sink = LogSink::new();
    tracing::subscriber::with_default(subscriber, || {
        feed(&mut sink, &nested_run());
    });
    let text = buf.text();
    let finished = text
        .lines()
        .find(|l| l.contains("phase finished") && l.contains("phase=1"))
        .expect(&text);
    assert!(
        finished.contains("WARN") && finished.contains("facesync::progress"),
        "{finished}"
    );
    assert!(
        finished.contains("outcome=\"cancelled\"") && finished.contains("pos=48"),
        "{finished}"
    );
}

// ---------------------------------------------------------------------------------------------
// Callback

#[test]
fn callback_sees_every_event_and_can_cancel() {
    let mut seen = Vec::new();
    let mut sink = CallbackSink::new(|e: &Event| match e {
        Event::Message { .. } => Control::Cancel,
        _ => Control::Continue,
    });
    let controls = feed(&mut sink, &nested_run());
    let cancels: Vec<usize> = (0..controls.len())
        .filter(|&i| controls[i] == Control::Cancel)
        .collect();
    assert_eq!(cancels, [7, 8]);

    let count = Arc::new(AtomicUsize::new(0));
    let mut observer = CallbackSink::observe({
        let count = Arc::clone(&count);
        move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    seen.extend(feed(&mut observer, &nested_run()));
    assert!(seen.iter().all(|c| *c == Control::Continue));
    assert_eq!(count.load(Ordering::Relaxed), nested_run().len());
}

// ---------------------------------------------------------------------------------------------
// JSON lines

fn with_previews() -> Vec<Event> {
    let mut events = nested_run();
    let image = PreviewImage {
        width: 1,
        height: 1,
        format: ImageFormat::Rgb8,
        data: vec![255, 0, 7],
    };
    events.insert(
        4,
        Event::Preview {
            t: 0.3,
            phase: 2,
            frame: 3,
            image,
        },
    );
    events.insert(
        5,
        Event::Record(progress_core::Record {
            t: 0.3,
            phase: 2,
            kind: "face_status".into(),
            fields: progress_core::Fields::new()
                .with("frame", 3u64)
                .with("faces", 0u32)
                .with("action", "interpolated")
                .with("mouth_open", Some(0.1f32))
                .with("presence", None::<f32>)
                .with("reason", "not_detected"),
        }),
    );
    events
}

#[test]
fn json_lines_parse_back_to_the_same_events() {
    let out = Shared::default();
    let mut sink = JsonLinesSink::new(out.clone());
    let events = with_previews();
    for e in &events {
        sink.handle(e); // no flush: the run's end flushes
    }
    let text = out.text();
    let parsed: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(parsed, events);
}

#[test]
fn json_lines_flush_each_tick() {
    let out = Shared::default();
    let mut sink = JsonLinesSink::new(out.clone());
    sink.handle(&nested_run()[0]);
    assert_eq!(out.text(), "", "buffered until the tick ends");
    sink.flush();
    assert_eq!(
        out.text(),
        "{\"type\":\"run_started\",\"schema\":1,\"t\":0.0,\"tick_ms\":100}\n"
    );
}

/// Fails every write and counts the attempts.
#[derive(Clone, Default)]
struct Broken(Arc<AtomicUsize>);

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "reader went away",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_lines_report_the_first_io_error_once_and_stop() {
    let broken = Broken::default();
    let mut sink = JsonLinesSink::new(broken.clone());
    let logs = capture_json_logs(|| {
        feed(&mut sink, &nested_run());
    });
    assert_eq!(
        broken.0.load(Ordering::Relaxed),
        1,
        "no write after the first failure"
    );
    let warnings: Vec<&Value> = logs.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 1, "{logs:?}");
    assert_eq!(warnings[0]["fields"]["sink"], "json lines");
    assert_eq!(warnings[0]["fields"]["error"], "reader went away");
}

// ---------------------------------------------------------------------------------------------
// Channel

fn positions(events: &[Event]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { id, pos, .. } => Some((*id, *pos)),
            _ => None,
        })
        .collect()
}

#[test]
fn channel_coalesces_progress_while_the_receiver_lags() {
    let (mut sink, rx) = ChannelSink::bounded(1);
    for e in [
        progress(0.1, 1, 1, None, None, None), // fits
        progress(0.2, 1, 2, None, None, None), // pending
        progress(0.3, 1, 3, None, None, None), // replaces pos 2
        progress(0.3, 2, 7, None, None, None), // pending behind phase 1
    ] {
        sink.handle(&e);
    }
    let mut received = Vec::new();
    for _ in 0..4 {
        received.extend(rx.try_recv());
        sink.flush();
    }
    assert_eq!(positions(&received), [(1, 1), (1, 3), (2, 7)]);
}

#[test]
fn channel_never_drops_structural_events() {
    let (mut sink, rx) = ChannelSink::bounded(1);
    let mut events = nested_run();
    // A flood of progress for the parent before it finishes.
    for pos in 6..40 {
        events.insert(
            10,
            progress(2.0 + pos as f64 / 100.0, 1, pos, None, None, None),
        );
    }
    let sent = events.clone();
    let producer = std::thread::spawn(move || feed(&mut sink, &sent));
    let received: Vec<Event> = rx.iter().collect(); // ends when the sink is dropped
    producer.join().unwrap();

    let structural = |es: &[Event]| -> Vec<Event> {
        es.iter()
            .filter(|e| !matches!(e, Event::Progress { .. } | Event::RunProgress { .. }))
            .cloned()
            .collect()
    };
    assert_eq!(structural(&received), structural(&events));
    // No progress for a phase after its finish.
    for (i, e) in received.iter().enumerate() {
        if let Event::PhaseFinished { id, .. } = e {
            assert!(
                positions(&received[i..]).iter().all(|(p, _)| p != id),
                "{received:?}"
            );
        }
    }
}

#[test]
fn channel_with_dropped_receiver_is_a_no_op() {
    let (mut sink, rx) = ChannelSink::bounded(1);
    drop(rx);
    assert!(
        feed(&mut sink, &nested_run())
            .iter()
            .all(|c| *c == Control::Continue)
    );
}
