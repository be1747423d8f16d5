//! Real runs through progress-core's dispatcher with every sink attached: the final state of
//! every phase arrives everywhere, and a ComfyUI interrupt cancels the run.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::Shared;
use facesync_sinks as sinks;
use progress_core::{Event, Outcome, Progress};
use sinks::comfy::{ComfyBar, ComfyConfig, ComfyMessage, ComfySink};
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
    let comfy = Arc::new(Mutex::new(Vec::new()));
    let mut config = ComfyConfig::new("p1", "7", "LatentSyncNode");
    config.bar = ComfyBar::PhaseNamed("Processing faces".into());

    let progress = Progress::builder()
        .sink(ConsoleSink::plain(console.clone()))
        .sink(LogSink::new())
        .sink(JsonLinesSink::new(json.clone()))
        .sink(channel)
        .sink(CallbackSink::observe({
            let seen = Arc::clone(&seen);
            move |e: &Event| seen.lock().unwrap().push(e.clone())
        }))
        .sink(ComfySink::new(config, {
            let comfy = Arc::clone(&comfy);
            move |m| comfy.lock().unwrap().push(m)
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

    // ComfyUI: the bar ends at 100/100.
    let last = comfy.lock().unwrap().last().cloned();
    let expected =
        r#"{"type":"progress","data":{"value":100,"max":100,"prompt_id":"p1","node":"7"}}"#;
    assert_eq!(last, Some(ComfyMessage::Text(expected.into())));
}

#[test]
fn comfy_interrupt_cancels_the_run() {
    let interrupted = Arc::new(AtomicBool::new(false));
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = ComfySink::new(ComfyConfig::new("p1", "7", "LatentSyncNode"), {
        let messages = Arc::clone(&messages);
        move |m| messages.lock().unwrap().push(m)
    })
    .with_interrupt({
        let interrupted = Arc::clone(&interrupted);
        move || interrupted.load(Ordering::Relaxed)
    });
    let progress = Progress::builder()
        .tick(std::time::Duration::from_millis(5))
        .sink(sink)
        .start();
    let phase = progress.phase("Processing faces", Some(1_000_000), "frames");
    interrupted.store(true, Ordering::Relaxed); // POST /interrupt
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
    let interrupted_msg = r#"{"type":"execution_interrupted","data":{"prompt_id":"p1","node_id":"7","node_type":"LatentSyncNode","executed":[]}}"#;
    let messages = messages.lock().unwrap();
    let reports = messages
        .iter()
        .filter(|m| **m == ComfyMessage::Text(interrupted_msg.into()))
        .count();
    assert_eq!(reports, 1, "{messages:?}");
}
