//! Real runs through progress-core's dispatcher with every sink attached: the final state of
//! every phase arrives everywhere, and a host's interrupt flag, polled by a sink, cancels the run.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::Shared;
use progress_core::{Control, Event, Outcome, Progress};
use sinks::{CallbackSink, ChannelSink, ConsoleSink, JsonLinesSink, LogSink};

#[test]
fn final_state_reaches_every_sink() {
    let console = Shared::default();
    let json = Shared::default();
    let (channel, events) = ChannelSink::bounded(4);
    // A GUI loop reading slowly on its own thread; it ends when the sink is dropped at shutdown.
    let gui = std::thread::spawn(move || {
        events
            .iter()
            .inspect(|_| std::thread::sleep(std::time::Duration::from_millis(1)))
            .collect::<Vec<Event>>()
    });
    let seen = Arc::new(Mutex::new(Vec::new()));

    let progress = Progress::builder()
        .sink(ConsoleSink::plain(console.clone()))
        .sink(LogSink::new())
        .sink(JsonLinesSink::new(json.clone()))
        .sink(channel)
        .sink(CallbackSink::observe({
            let seen = Arc::clone(&seen);
            move |e: &Event| seen.lock().unwrap().push(e.clone())
        }))
        .start();
    let phase = progress.phase("Processing faces", Some(100), "frames");
    let child = phase.child("Detecting", Some(40), "frames");
    for _ in 0..40 {
        child.inc(1);
    }
    child.finish();
    for _ in 0..100 {
        phase.inc(1);
    }
    phase.finish();
    let summary = progress.shutdown();
    assert_eq!((summary.phases, summary.completed), (2, 2));

    // Console: the finish lines, then the summary.
    let text = console.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("  Detecting: done in")),
        "{text}"
    );
    assert!(
        lines[lines.len() - 2].starts_with("Processing faces: done in"),
        "{text}"
    );
    assert!(
        lines[lines.len() - 1].starts_with("run finished after"),
        "{text}"
    );

    // JSON lines: parse back; the last two are the parent's finish and the run's.
    let parsed: Vec<Event> = json
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finishes = |es: &[Event]| -> Vec<(u64, Outcome, u64)> {
        es.iter()
            .filter_map(|e| match e {
                Event::PhaseFinished {
                    id, outcome, pos, ..
                } => Some((*id, *outcome, *pos)),
                _ => None,
            })
            .collect()
    };
    let expected_finishes = vec![(2, Outcome::Completed, 40), (1, Outcome::Completed, 100)];
    assert_eq!(finishes(&parsed), expected_finishes);
    assert!(matches!(parsed.last(), Some(Event::RunFinished { .. })));

    // Channel and callback: the same finishes, and the run's end.
    let received = gui.join().unwrap();
    assert_eq!(finishes(&received), expected_finishes);
    assert!(matches!(received.last(), Some(Event::RunFinished { .. })));
    let seen = seen.lock().unwrap();
    assert_eq!(finishes(&seen), expected_finishes);
    // Progress snapshots coalesce per sink (timing decides how many each sees); the rest is
    // the same everywhere, in the same order.
    let structural = |es: &[Event]| -> Vec<Event> {
        es.iter()
            .filter(|e| !matches!(e, Event::Progress { .. } | Event::RunProgress { .. }))
            .cloned()
            .collect()
    };
    // (Compared in memory: serde_json's default float parsing may be one ulp off on read-back.)
    assert_eq!(structural(&received), structural(&seen));
    assert_eq!(structural(&parsed).len(), structural(&seen).len());
}

#[test]
fn a_hosts_interrupt_flag_polled_by_a_sink_cancels_the_run() {
    // A UI's interrupt flag (ComfyUI's `processing_interrupted`, a button), looked at on every
    // event: the sink answers Cancel, which sets the run's cancel token.
    let interrupted = Arc::new(AtomicBool::new(false));
    let sink = CallbackSink::new({
        let interrupted = Arc::clone(&interrupted);
        move |_: &Event| {
            if interrupted.load(Ordering::Relaxed) {
                Control::Cancel
            } else {
                Control::Continue
            }
        }
    });
    let progress = Progress::builder()
        .tick(std::time::Duration::from_millis(5))
        .sink(sink)
        .start();
    let phase = progress.phase("Processing faces", Some(1_000_000), "frames");
    interrupted.store(true, Ordering::Relaxed);
    // The work goes on until the sink, on its next event, turns the flag into a cancel.
    let mut batches = 0u64;
    while phase.check().is_ok() {
        phase.inc(1);
        batches += 1;
        assert!(batches < 1_000_000, "the interrupt never cancelled the run");
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    drop(phase);
    let summary = progress.shutdown();
    assert!(summary.cancelled);
    assert_eq!(summary.cancelled_phases, 1);
}
