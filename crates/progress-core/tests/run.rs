//! Behaviour of a whole run: dispatcher, sink isolation, final state, cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use progress_core::{
    CancelToken, Control, Event, Fields, ImageFormat, Level, Outcome, Phase, PhaseId, PreviewImage,
    Progress, ProgressIterExt, ProgressSink, RecordType,
};

/// A record the work defines: frame `frame` is done.
#[derive(Debug, PartialEq)]
struct Done {
    frame: u64,
}

impl RecordType for Done {
    const KIND: &'static str = "frame_done";

    fn to_fields(&self) -> Fields {
        Fields::new().with("frame", self.frame)
    }

    fn from_fields(fields: &Fields) -> Option<Self> {
        let frame = fields.get("frame")?.as_u64()?;
        Some(Done { frame })
    }
}

/// A sink that records every event it gets, and counts flushes.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    flushes: Arc<AtomicUsize>,
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn finished(&self, id: PhaseId) -> Option<(Outcome, u64, Option<String>)> {
        self.events().into_iter().find_map(|e| match e {
            Event::PhaseFinished {
                id: i,
                outcome,
                pos,
                error,
                ..
            } if i == id => Some((outcome, pos, error)),
            _ => None,
        })
    }

    fn progress_of(&self, id: PhaseId) -> Vec<u64> {
        positions(&self.events(), id)
    }

    /// Waits (up to 10 s) until `cond` holds on the recorded events (it runs under the lock).
    fn wait_for(&self, what: &str, cond: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(&self.events.lock().unwrap()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A run that ticks every `tick` with a [`Recorder`] as its only sink.
fn recorded(tick: Duration) -> (Recorder, Progress) {
    let rec = Recorder::default();
    let progress = Progress::builder().tick(tick).sink(rec.clone()).start();
    (rec, progress)
}

impl ProgressSink for Recorder {
    fn handle(&mut self, event: &Event) -> Control {
        self.events.lock().unwrap().push(event.clone());
        Control::Continue
    }

    fn flush(&mut self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A sink that blocks on its first event until released.
struct Blocked {
    gate: Arc<Barrier>,
    first: bool,
    inner: Recorder,
}

impl Blocked {
    fn new() -> (Self, Arc<Barrier>, Recorder) {
        let gate = Arc::new(Barrier::new(2));
        let inner = Recorder::default();
        let sink = Self {
            gate: Arc::clone(&gate),
            first: true,
            inner: inner.clone(),
        };
        (sink, gate, inner)
    }
}

impl ProgressSink for Blocked {
    fn handle(&mut self, event: &Event) -> Control {
        if std::mem::take(&mut self.first) {
            self.gate.wait();
        }
        self.inner.handle(event)
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            Event::RunStarted { .. } => "run_started",
            Event::PhaseStarted { .. } => "phase_started",
            Event::Progress { .. } => "progress",
            Event::RunProgress { .. } => "run_progress",
            Event::Message { .. } => "message",
            Event::Preview { .. } => "preview",
            Event::Record(r) if r.kind == Done::KIND => "frame_done",
            Event::PhaseFinished { .. } => "phase_finished",
            Event::RunFinished { .. } => "run_finished",
            _ => "other",
        })
        .collect()
}

fn without_snapshots(events: &[Event]) -> Vec<&'static str> {
    kinds(events)
        .into_iter()
        .filter(|k| *k != "progress" && *k != "run_progress")
        .collect()
}

#[test]
fn final_state_reaches_every_sink_inside_the_rate_limit() {
    // A tick far longer than the run: no progress sample ever happens during it, yet every
    // sink must see each phase's final position.
    let (a, b) = (Recorder::default(), Recorder::default());
    let progress = Progress::builder()
        .tick(Duration::from_secs(3600))
        .sink(a.clone())
        .sink(b.clone())
        .start();
    let phase = progress.phase("Processing faces", Some(10), "frames");
    let child = phase.child("steps", Some(20), "steps");
    phase.inc(7);
    child.inc(20);
    child.finish();
    phase.inc(3);
    phase.finish();
    let summary = progress.shutdown();
    for sink in [&a, &b] {
        assert_eq!(
            sink.finished(phase.id()),
            Some((Outcome::Completed, 10, None))
        );
        assert_eq!(
            sink.finished(child.id()),
            Some((Outcome::Completed, 20, None))
        );
        assert_eq!(sink.progress_of(phase.id()).last(), Some(&10));
        let events = sink.events();
        assert_eq!(
            without_snapshots(&events),
            [
                "run_started",
                "phase_started",
                "phase_started",
                "phase_finished",
                "phase_finished",
                "run_finished"
            ]
        );
    }
    assert_eq!(summary.phases, 2);
    assert_eq!(summary.completed, 2);
}

#[test]
fn phase_tree_and_started_fields() {
    let rec = Recorder::default();
    let progress = Progress::builder().sink(rec.clone()).start();
    let root = progress.phase("Doing inference", Some(4), "chunks");
    let child = root.child("steps", None, "steps");
    drop(progress);
    let started: Vec<_> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::PhaseStarted {
                id,
                parent,
                name,
                total,
                unit,
                ..
            } => Some((id, parent, name, total, unit)),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        [
            (
                root.id(),
                None,
                "Doing inference".into(),
                Some(4),
                "chunks".into()
            ),
            (
                child.id(),
                Some(root.id()),
                "steps".into(),
                None,
                "steps".into()
            ),
        ]
    );
}

/// A weight given at the start is in the `phase_started` event, whenever the tick comes; one
/// set later is not (it counts from then on).
#[test]
fn a_weight_given_at_the_start_is_in_the_started_event() {
    let rec = Recorder::default();
    let progress = Progress::builder().sink(rec.clone()).start();
    let root = progress.phase("Lip sync", Some(3), "frames");
    let light = root.child_weighted("Decoding", Some(3), "frames", 0.2);
    let plain = root.child("Finding faces", Some(3), "frames");
    let bad = root.child_weighted("Encoding", Some(3), "frames", f64::NAN);
    drop(progress);
    let weights: Vec<_> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::PhaseStarted { id, weight, .. } => Some((id, weight)),
            _ => None,
        })
        .collect();
    assert_eq!(
        weights,
        [
            (root.id(), 1.0),
            (light.id(), 0.2),
            (plain.id(), 1.0),
            (bad.id(), 0.0)
        ]
    );
}

#[test]
fn dropping_handles_ends_the_phase_once_as_abandoned() {
    let rec = Recorder::default();
    let progress = Progress::builder().sink(rec.clone()).start();
    let phase = progress.phase("work", Some(5), "items");
    let id = phase.id();
    let clone = phase.clone();
    phase.inc(2);
    drop(phase);
    clone.inc(1);
    // One clone is still alive: not ended yet.
    let summary_before_drop = rec.finished(id);
    assert_eq!(summary_before_drop, None);
    drop(clone);
    let summary = progress.shutdown();
    assert_eq!(rec.finished(id), Some((Outcome::Abandoned, 3, None)));
    let finishes = kinds(&rec.events())
        .into_iter()
        .filter(|k| *k == "phase_finished")
        .count();
    assert_eq!(finishes, 1);
    assert_eq!(summary.abandoned, 1);
}

#[test]
fn phases_open_at_shutdown_end_with_their_position_and_handles_stay_usable() {
    let rec = Recorder::default();
    let progress = Progress::builder().sink(rec.clone()).start();
    let phase = progress.phase("work", None, "items");
    phase.inc(42);
    let summary = progress.shutdown();
    assert_eq!(
        rec.finished(phase.id()),
        Some((Outcome::Abandoned, 42, None))
    );
    assert_eq!(summary.abandoned, 1);
    // After shutdown: nothing blocks, nothing panics, nothing more is delivered.
    let n = rec.events().len();
    phase.inc(1);
    phase.message(Level::Info, "late");
    phase.child("late child", Some(1), "x").finish();
    phase.finish();
    assert_eq!(rec.events().len(), n);
    assert!(matches!(
        rec.events().last(),
        Some(Event::RunFinished { .. })
    ));
}

#[test]
fn fail_reports_the_error() {
    let rec = Recorder::default();
    let progress = Progress::builder().sink(rec.clone()).start();
    let phase = progress.phase("decode", Some(3), "frames");
    phase.inc(1);
    phase.fail("corrupt frame 1 in in.y4m");
    phase.finish(); // no effect: a phase ends once
    let summary = progress.shutdown();
    assert_eq!(
        rec.finished(phase.id()),
        Some((Outcome::Failed, 1, Some("corrupt frame 1 in in.y4m".into())))
    );
    assert_eq!((summary.failed, summary.completed), (1, 0));
}

#[test]
fn progress_is_emitted_only_for_phases_that_changed() {
    let (rec, progress) = recorded(Duration::from_millis(2));
    let phase = progress.phase("work", Some(100), "items");
    let idle = progress.phase("idle", Some(100), "items");
    phase.set(10);
    rec.wait_for("pos 10", |events| {
        positions(events, phase.id()).contains(&10)
    });
    let flushes = rec.flushes.load(Ordering::SeqCst);
    rec.wait_for("20 more ticks", |_| {
        rec.flushes.load(Ordering::SeqCst) >= flushes + 20
    });
    assert_eq!(rec.progress_of(phase.id()), [10]);
    assert_eq!(rec.progress_of(idle.id()), Vec::<u64>::new());
    phase.set_message("frame 10");
    rec.wait_for("message", |events| {
        events
            .iter()
            .any(|e| matches!(e, Event::Progress { message: Some(m), .. } if m == "frame 10"))
    });
    drop(progress);
}

/// The positions in the progress events of phase `id`.
fn positions(events: &[Event], id: PhaseId) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { id: i, pos, .. } if *i == id => Some(*pos),
            _ => None,
        })
        .collect()
}

#[test]
fn rate_and_eta_appear_once_there_is_progress() {
    let (rec, progress) = recorded(Duration::from_millis(5));
    let phase = progress.phase("work", Some(1000), "items");
    for _ in 0..20 {
        phase.inc(10);
        std::thread::sleep(Duration::from_millis(5));
    }
    rec.wait_for("a rate", |events| {
        events.iter().any(|e| {
            matches!(e, Event::Progress { rate: Some(r), eta: Some(eta), .. } if *r > 0.0 && *eta > 0.0)
        })
    });
    drop(progress);
}

#[test]
fn run_fraction_follows_phase_weights() {
    let (rec, progress) = recorded(Duration::from_millis(2));
    let small = progress.phase("small", Some(10), "items");
    let big = progress.phase("big", Some(10), "items");
    big.set_weight(3.0);
    small.inc(10);
    small.finish();
    rec.wait_for("fraction 0.25", |events| {
        events.iter().any(
            |e| matches!(e, Event::RunProgress { fraction, .. } if (fraction - 0.25).abs() < 1e-9),
        )
    });
    big.inc(5);
    rec.wait_for("fraction 0.625", |events| {
        events.iter().any(
            |e| matches!(e, Event::RunProgress { fraction, .. } if (fraction - 0.625).abs() < 1e-9),
        )
    });
    big.finish();
    drop(progress);
    let last_fraction = rec.events().into_iter().rev().find_map(|e| match e {
        Event::RunProgress { fraction, .. } => Some(fraction),
        _ => None,
    });
    assert_eq!(last_fraction, Some(1.0));
}

#[test]
fn a_blocked_sink_delays_neither_the_producer_nor_other_sinks() {
    let (blocked, gate, slow) = Blocked::new();
    let fast = Recorder::default();
    let progress = Progress::builder()
        .tick(Duration::from_millis(1))
        .sink(blocked)
        .sink(fast.clone())
        .start();
    let phase = progress.phase("work", Some(200), "items");
    for i in 0..200u64 {
        phase.inc(1);
        phase.record(&Done { frame: i });
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    phase.finish();
    // The producer is done and the other sink has everything while the slow one is still stuck.
    fast.wait_for("the finish", |events| {
        events
            .iter()
            .any(|e| matches!(e, Event::PhaseFinished { pos: 200, .. }))
    });
    assert!(slow.events().is_empty());
    gate.wait();
    progress.shutdown();
    // Structural events are all kept for the slow sink; its progress snapshots coalesced.
    let slow_events = slow.events();
    let statuses = |events: &[Event]| kinds(events).iter().filter(|k| **k == "frame_done").count();
    assert_eq!(statuses(&slow_events), 200);
    assert_eq!(statuses(&fast.events()), 200);
    assert_eq!(
        slow.finished(phase.id()),
        Some((Outcome::Completed, 200, None))
    );
    assert!(slow.progress_of(phase.id()).len() <= fast.progress_of(phase.id()).len());
    assert!(matches!(
        slow_events.last(),
        Some(Event::RunFinished { .. })
    ));
}

#[test]
fn a_panicking_sink_is_disabled_and_reported_and_the_run_completes() {
    struct Panics;
    impl ProgressSink for Panics {
        fn handle(&mut self, event: &Event) -> Control {
            if matches!(event, Event::PhaseStarted { .. }) {
                panic!("sink bug");
            }
            Control::Continue
        }
        fn name(&self) -> String {
            "panics".into()
        }
    }
    let rec = Recorder::default();
    let progress = Progress::builder().sink(Panics).sink(rec.clone()).start();
    let phase = progress.phase("work", Some(3), "items");
    phase.inc(3);
    phase.finish();
    let summary = progress.shutdown();
    assert_eq!(summary.sink_failures, 1);
    assert_eq!(
        rec.finished(phase.id()),
        Some((Outcome::Completed, 3, None))
    );
    let warned = rec.events().into_iter().any(|e| {
        matches!(e, Event::Message { level: Level::Warn, text, .. }
            if text.contains("panics") && text.contains("sink bug"))
    });
    assert!(warned, "the other sink was told about the panic");
}

#[test]
fn a_stalled_sink_is_disabled_and_shutdown_does_not_wait_for_it() {
    // The stalled sink blocks on its first event until the end of the test.
    let (stuck, gate, stuck_rec) = Blocked::new();
    let other = Recorder::default();
    let progress = Progress::builder()
        .tick(Duration::from_millis(5))
        .sink_stall_timeout(Duration::from_millis(300))
        .sink(stuck)
        .sink(other.clone())
        .start();
    let phase = progress.phase("Work", Some(10), "items");
    phase.inc(10);
    phase.finish();
    let started = Instant::now();
    let summary = progress.shutdown();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "shutdown waited {waited:?}"
    );
    assert_eq!(summary.sink_failures, 1);
    assert_eq!(
        other.finished(phase.id()),
        Some((Outcome::Completed, 10, None))
    );
    let events = other.events();
    assert!(events.iter().any(
        |e| matches!(e, Event::Message { level: Level::Warn, text, .. }
        if text.contains("stalled") && text.contains("Blocked"))
    ));
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished { summary, .. }) if summary.sink_failures == 1
    ));
    // Released, the detached sink thread handles the event it was stuck on and ends.
    gate.wait();
    stuck_rec.wait_for("the stuck event", |events| events.len() == 1);
}

#[test]
fn a_sink_can_cancel_the_run() {
    let cancel_at_face = |event: &Event| match Done::from_event(event) {
        Some(Done { frame: 50 }) => Control::Cancel,
        _ => Control::Continue,
    };
    let rec = Recorder::default();
    let progress = Progress::builder()
        .sink(cancel_at_face)
        .sink(rec.clone())
        .start();
    let phase = progress.phase("Processing faces", Some(1_000_000), "frames");
    let mut done = 0u64;
    let result: Result<(), progress_core::Cancelled> = (|| {
        for frame in 0..1_000_000u64 {
            phase.check()?;
            phase.record(&Done { frame });
            phase.inc(1);
            done += 1;
            if frame % 64 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(())
    })();
    assert_eq!(result, Err(progress_core::Cancelled));
    assert!(done > 50 && done < 1_000_000);
    drop(phase);
    let summary = progress.shutdown();
    assert!(summary.cancelled);
    assert_eq!(summary.cancelled_phases, 1);
    let (outcome, pos, _) = rec.finished(1).unwrap();
    assert_eq!((outcome, pos), (Outcome::Cancelled, done));
}

#[test]
fn cancel_from_another_thread_and_fail_while_cancelled() {
    let token = CancelToken::new();
    let rec = Recorder::default();
    let progress = Progress::builder()
        .cancel_token(token.clone())
        .sink(rec.clone())
        .start();
    let phase = progress.phase("work", None, "items");
    assert!(phase.check().is_ok());
    let remote = token.clone();
    std::thread::spawn(move || remote.cancel()).join().unwrap();
    assert!(phase.check().is_err());
    assert!(progress.cancel_token().is_cancelled());
    phase.fail(progress_core::Cancelled);
    progress.shutdown();
    assert_eq!(
        rec.finished(phase.id()),
        Some((Outcome::Cancelled, 0, Some("cancelled".into())))
    );
}

fn preview() -> PreviewImage {
    PreviewImage {
        width: 2,
        height: 1,
        format: ImageFormat::Rgb8,
        data: vec![1, 2, 3, 4, 5, 6],
    }
}

#[test]
fn previews_beyond_a_sinks_capacity_are_dropped_and_counted() {
    let (blocked, gate, slow) = Blocked::new();
    let fast = Recorder::default();
    let progress = Progress::builder()
        .sink_preview_capacity(2)
        .sink(blocked)
        .sink(fast.clone())
        .start();
    let phase = progress.phase("infer", Some(10), "chunks");
    for frame in 0..10 {
        phase.preview(frame, preview());
    }
    phase.finish();
    fast.wait_for("the finish", |events| {
        events
            .iter()
            .any(|e| matches!(e, Event::PhaseFinished { .. }))
    });
    gate.wait();
    let summary = progress.shutdown();
    let count = |r: &Recorder| {
        kinds(&r.events())
            .iter()
            .filter(|k| **k == "preview")
            .count() as u64
    };
    assert_eq!(count(&slow), 2, "the blocked sink keeps only its capacity");
    assert_eq!(
        summary.dropped_previews,
        (10 - count(&slow)) + (10 - count(&fast))
    );
    // The dropped count is in the run_finished event too (as known when it was sent).
    let reported = slow.events().into_iter().find_map(|e| match e {
        Event::RunFinished { summary, .. } => Some(summary.dropped_previews),
        _ => None,
    });
    assert!(reported.unwrap() >= 8);
}

#[test]
fn previews_are_dropped_when_the_channel_is_full_and_other_events_are_not() {
    // No tick during the test and a channel of one: the producer outruns the dispatcher only
    // if the dispatcher is busy; whatever happens, no record is lost and every preview is
    // either delivered or counted.
    let rec = Recorder::default();
    let progress = Progress::builder()
        .channel_capacity(1)
        .sink_preview_capacity(usize::MAX)
        .sink(rec.clone())
        .start();
    let phase = progress.phase("infer", None, "frames");
    for frame in 0..2000 {
        phase.preview(frame, preview());
        phase.record(&Done { frame });
    }
    phase.finish();
    let summary = progress.shutdown();
    let events = rec.events();
    let previews = kinds(&events).iter().filter(|k| **k == "preview").count() as u64;
    let statuses = kinds(&events)
        .iter()
        .filter(|k| **k == "frame_done")
        .count();
    assert_eq!(statuses, 2000);
    assert_eq!(previews + summary.dropped_previews, 2000);
}

#[test]
fn iterator_adaptor_counts_finished_items() {
    let phase = Phase::detached("items", Some(10), "items");
    for _ in (0..10).progress(&phase) {}
    assert_eq!(phase.pos(), 10);
    let phase = Phase::detached("items", Some(10), "items");
    for i in (0..10).progress(&phase) {
        if i == 4 {
            break;
        }
    }
    assert_eq!(phase.pos(), 4, "items 0..=3 finished, item 4 was not");
}

#[test]
fn detached_phases_count_and_honour_their_token() {
    let token = CancelToken::new();
    let phase = Phase::detached_with(token.clone(), "work", Some(3), "items");
    let child = phase.child("inner", None, "steps");
    child.inc(5);
    assert_eq!(child.pos(), 5);
    assert!(child.check().is_ok());
    token.cancel();
    assert!(child.check().is_err());
    child.finish();
    assert!(child.is_finished());
}

#[test]
fn messages_reach_sinks_in_order() {
    let rec = Recorder::default();
    let progress = Progress::builder().sink(rec.clone()).start();
    let phase = progress.phase("work", None, "items");
    for i in 0..100 {
        phase.message(Level::Info, format!("m{i}"));
    }
    drop(phase);
    progress.shutdown();
    let texts: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
}

mod concurrent {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn final_position_is_the_sum_of_increments_from_all_threads(
            per_thread in proptest::collection::vec(proptest::collection::vec(0u64..1000, 0..200), 1..4)
        ) {
            let (rec, progress) = recorded(Duration::from_millis(1));
            let phase = progress.phase("work", None, "items");
            std::thread::scope(|s| {
                for incs in &per_thread {
                    let phase = phase.clone();
                    s.spawn(move || for &n in incs { phase.inc(n) });
                }
            });
            phase.finish();
            progress.shutdown();
            let expected: u64 = per_thread.iter().flatten().sum();
            prop_assert_eq!(rec.finished(phase.id()), Some((Outcome::Completed, expected, None)));
        }

        /// The same with local counters (some threads sharing the phase's counter, some on
        /// their own), sampled every millisecond while they count: every sample is at most
        /// the total, samples never go backwards, and the final position is the sum.
        #[test]
        fn local_counters_add_up_exactly_and_samples_never_go_backwards(
            per_thread in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(0u64..1000, 0..300)), 1..5)
        ) {
            let (rec, progress) = recorded(Duration::from_millis(1));
            let phase = progress.phase("work", None, "items");
            std::thread::scope(|s| {
                for (local, incs) in &per_thread {
                    if *local {
                        let counter = phase.local();
                        s.spawn(move || for &n in incs { counter.inc(n) });
                    } else {
                        let phase = phase.clone();
                        s.spawn(move || for &n in incs { phase.inc(n) });
                    }
                }
            });
            let expected: u64 = per_thread.iter().flat_map(|(_, v)| v).sum();
            prop_assert_eq!(phase.pos(), expected);
            phase.finish();
            progress.shutdown();
            prop_assert_eq!(rec.finished(phase.id()), Some((Outcome::Completed, expected, None)));
            let seen = rec.progress_of(phase.id());
            prop_assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{:?}", seen);
            prop_assert!(seen.iter().all(|&p| p <= expected), "{:?}", seen);
        }
    }
}

#[test]
fn a_local_counter_hands_its_count_to_the_phase_when_dropped() {
    let phase = Phase::detached("work", Some(10), "items");
    let local = phase.local();
    local.inc(3);
    phase.inc(2);
    assert_eq!((local.count(), phase.pos()), (3, 5));
    drop(local);
    assert_eq!(phase.pos(), 5);
    let again = phase.local();
    again.inc(4);
    assert_eq!(phase.pos(), 9);
}
