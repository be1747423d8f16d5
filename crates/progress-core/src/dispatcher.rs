//! The dispatcher thread: samples the phases' counters on its tick and pushes events into each
//! sink's queue.
//!
//! ```text
//! producers ──inc()──▶ atomics ◀──sample every tick──┐
//!     └──structural msgs──▶ bounded flume ──▶ dispatcher ──▶ SinkQueue ──▶ worker ──▶ sink
//!                                                  └───────▶ SinkQueue ──▶ worker ──▶ sink
//! ```
//! The dispatcher never blocks on a sink: it pushes into each sink's queue (`queue.rs`) under a
//! short lock and moves on; each sink's worker thread (`worker.rs`) drains it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::estimate::RateEstimator;
use crate::event::{Event, Level, Outcome, PhaseId, RunSummary, SCHEMA_VERSION};
use crate::phase::{Msg, PhaseState, RunShared};
use crate::queue::{Item, SinkQueue, Stalled};

/// What the dispatcher knows about one phase.
#[derive(Debug)]
struct Tracked {
    state: Arc<PhaseState>,
    parent: Option<PhaseId>,
    children: Vec<PhaseId>,
    started: f64,
    estimator: RateEstimator,
    last_pos: u64,
    last_total: Option<u64>,
    last_message_version: u64,
    finished: Option<Outcome>,
}

/// The dispatcher's clock settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The sampling period.
    pub(crate) tick: Duration,
    /// Time constant of the rate estimators, in seconds.
    pub(crate) tau: f64,
    /// How long one call of a sink may take before it counts as stalled.
    pub(crate) stall: Duration,
}

/// The sinks as the dispatcher sees them.
pub(crate) struct Sinks {
    /// One queue per sink, in the order the sinks were added.
    pub(crate) queues: Arc<Vec<Arc<SinkQueue>>>,
    /// Their worker threads, in the same order.
    pub(crate) workers: Vec<JoinHandle<()>>,
    /// How many sinks were disabled (panicked or stalled).
    pub(crate) failures: Arc<AtomicU64>,
}

/// The dispatcher thread's state.
pub(crate) struct Dispatcher {
    rx: flume::Receiver<Msg>,
    shared: Arc<RunShared>,
    sinks: Sinks,
    timing: Timing,
    phases: HashMap<PhaseId, Tracked>,
    /// Top-level phases in creation order.
    order: Vec<PhaseId>,
    run_estimator: RateEstimator,
    last_fraction: f64,
    summary: RunSummary,
}

impl Dispatcher {
    pub(crate) fn new(
        rx: flume::Receiver<Msg>,
        shared: Arc<RunShared>,
        sinks: Sinks,
        timing: Timing,
    ) -> Self {
        Self {
            rx,
            shared,
            sinks,
            timing,
            phases: HashMap::new(),
            order: Vec::new(),
            run_estimator: RateEstimator::new(0.0, 0.0, timing.tau),
            last_fraction: -1.0,
            summary: RunSummary::default(),
        }
    }

    /// Runs the dispatcher on its own thread, which returns the run's summary.
    pub(crate) fn spawn(self) -> JoinHandle<RunSummary> {
        std::thread::Builder::new()
            .name("facesync-progress".into())
            .spawn(move || self.run())
            .expect("cannot spawn the progress dispatcher thread")
    }

    fn run(mut self) -> RunSummary {
        self.broadcast(Event::RunStarted {
            schema: SCHEMA_VERSION,
            t: 0.0,
            tick_ms: self.timing.tick.as_millis() as u64,
        });
        let mut next_tick = Instant::now() + self.timing.tick;
        loop {
            match self.rx.recv_deadline(next_tick) {
                Ok(Msg::Shutdown) | Err(flume::RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(msg),
                Err(flume::RecvTimeoutError::Timeout) => {
                    self.sample();
                    let now = Instant::now();
                    next_tick += self.timing.tick;
                    if next_tick < now {
                        next_tick = now + self.timing.tick;
                    }
                }
            }
        }
        self.finish()
    }

    fn finish(mut self) -> RunSummary {
        while let Ok(msg) = self.rx.try_recv() {
            if !matches!(msg, Msg::Shutdown) {
                self.handle(msg);
            }
        }
        // Phases still open end now, with their final position.
        let open: Vec<PhaseId> = self
            .phases
            .iter()
            .filter(|(_, p)| p.finished.is_none())
            .map(|(&id, _)| id)
            .collect();
        let t = self.shared.now();
        for id in open {
            let state = Arc::clone(&self.phases[&id].state);
            if state.mark_finished() {
                let outcome = if self.shared.cancel.is_cancelled() {
                    Outcome::Cancelled
                } else {
                    Outcome::Abandoned
                };
                let pos = state.position();
                self.phase_finished(id, outcome, None, pos, t);
            }
        }
        // Finishes sent by handles after we collected the open set.
        while let Ok(msg) = self.rx.try_recv() {
            if !matches!(msg, Msg::Shutdown) {
                self.handle(msg);
            }
        }
        self.sample();
        // Let every sink catch up before the last event, so that what one sink's worker
        // reports about another (a panic) still reaches the others.
        loop {
            let before = self.wait_all_idle();
            let after = self.wait_all_idle();
            if before == after {
                break;
            }
        }
        let t = self.shared.now();
        self.summary.elapsed = t;
        self.summary.cancelled = self.shared.cancel.is_cancelled();
        self.summary.dropped_previews = self.dropped_previews();
        self.summary.sink_failures = self.sinks.failures.load(Ordering::Relaxed);
        self.broadcast(Event::RunFinished {
            t,
            summary: self.summary.clone(),
        });
        for q in self.sinks.queues.iter() {
            q.close();
        }
        for (w, q) in self.sinks.workers.drain(..).zip(self.sinks.queues.iter()) {
            // A stalled sink's thread is detached: joining it could wait forever.
            if !q.is_stalled() {
                let _ = w.join();
            }
        }
        self.summary.dropped_previews = self.dropped_previews();
        self.summary.sink_failures = self.sinks.failures.load(Ordering::Relaxed);
        self.summary
    }

    /// Waits until every sink's queue is idle (or its sink stalled); returns the push counts.
    fn wait_all_idle(&mut self) -> Vec<u64> {
        let mut counts = Vec::with_capacity(self.sinks.queues.len());
        for i in 0..self.sinks.queues.len() {
            let queue = Arc::clone(&self.sinks.queues[i]);
            match queue.wait_idle(self.timing.stall) {
                Ok(pushed) => counts.push(pushed),
                Err(Stalled) => {
                    self.report_stall(i);
                    counts.push(u64::MAX);
                }
            }
        }
        counts
    }

    /// Disables the sinks whose current call has taken longer than the stall timeout.
    fn check_stalls(&mut self) {
        for i in 0..self.sinks.queues.len() {
            if self.sinks.queues[i].check_stall(self.timing.stall) {
                self.report_stall(i);
            }
        }
    }

    fn report_stall(&mut self, index: usize) {
        self.sinks.failures.fetch_add(1, Ordering::Relaxed);
        let name = &self.sinks.queues[index].name;
        let secs = self.timing.stall.as_secs_f64();
        tracing::warn!(
            target: "facesync::progress",
            sink = %name,
            stalled_secs = secs,
            "progress sink stalled and was disabled; the run goes on"
        );
        let event = Arc::new(Event::Message {
            t: self.shared.now(),
            phase: None,
            level: Level::Warn,
            text: format!("progress sink {name} stalled for more than {secs} s and was disabled"),
        });
        for (i, q) in self.sinks.queues.iter().enumerate() {
            if i != index {
                q.push(Item::Event(Arc::clone(&event)));
            }
        }
    }

    fn dropped_previews(&self) -> u64 {
        self.shared.dropped_previews.load(Ordering::Relaxed)
            + self
                .sinks
                .queues
                .iter()
                .map(|q| q.dropped_previews())
                .sum::<u64>()
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::PhaseStarted {
                state,
                parent,
                name,
                unit,
                t,
            } => {
                let id = state.id;
                let total = state.total();
                let pos = state.position();
                self.summary.phases += 1;
                match parent.and_then(|p| self.phases.get_mut(&p)) {
                    Some(p) => p.children.push(id),
                    None => self.order.push(id),
                }
                self.broadcast(Event::PhaseStarted {
                    t,
                    id,
                    parent,
                    name,
                    total,
                    unit,
                    weight: state.weight(),
                });
                self.phases.insert(
                    id,
                    Tracked {
                        estimator: RateEstimator::new(t, pos as f64, self.timing.tau),
                        last_message_version: 0,
                        last_pos: 0,
                        last_total: total,
                        state,
                        parent,
                        children: Vec::new(),
                        started: t,
                        finished: None,
                    },
                );
            }
            Msg::Event(event) => self.broadcast(event),
            Msg::PhaseFinished {
                id,
                outcome,
                error,
                pos,
                t,
            } => self.phase_finished(id, outcome, error, pos, t),
            Msg::Shutdown => {}
        }
    }

    fn phase_finished(
        &mut self,
        id: PhaseId,
        outcome: Outcome,
        error: Option<String>,
        pos: u64,
        t: f64,
    ) {
        let Some(p) = self.phases.get_mut(&id) else {
            return;
        };
        let total = p.state.total();
        // A last progress snapshot, so that progress-only consumers see the final position too.
        if pos != p.last_pos || total != p.last_total {
            p.estimator.sample(t, pos as f64);
            let event = progress_event(p, t, pos, total);
            p.last_pos = pos;
            p.last_total = total;
            self.broadcast(event);
        }
        let p = self.phases.get_mut(&id).expect("phase present");
        p.finished = Some(outcome);
        let (elapsed, parent) = (t - p.started, p.parent);
        match outcome {
            Outcome::Completed => self.summary.completed += 1,
            Outcome::Failed => self.summary.failed += 1,
            Outcome::Cancelled => self.summary.cancelled_phases += 1,
            Outcome::Abandoned => self.summary.abandoned += 1,
        }
        self.broadcast(Event::PhaseFinished {
            t,
            id,
            outcome,
            error,
            pos,
            total,
            elapsed,
        });
        // A finished child whose parent counts its own units no longer matters to the run
        // fraction: forget it, so that a phase per chunk does not grow the map with the video.
        let parent_counts_itself = parent
            .and_then(|pid| self.phases.get(&pid))
            .is_some_and(|pp| pp.state.total().is_some());
        if parent_counts_itself && self.phases[&id].children.is_empty() {
            self.phases.remove(&id);
            if let Some(pp) = parent.and_then(|pid| self.phases.get_mut(&pid)) {
                pp.children.retain(|&c| c != id);
            }
        }
    }

    /// One tick: feed every open phase's estimator, emit progress for the ones that changed,
    /// then the run's fraction, then ask sinks to flush.
    fn sample(&mut self) {
        let t = self.shared.now();
        let mut events = Vec::new();
        for p in self.phases.values_mut() {
            if p.finished.is_some() {
                continue;
            }
            let pos = p.state.position();
            let total = p.state.total();
            let version = p.state.message_version();
            p.estimator.sample(t, pos as f64);
            if pos != p.last_pos || total != p.last_total || version != p.last_message_version {
                p.last_pos = pos;
                p.last_total = total;
                p.last_message_version = version;
                events.push(progress_event(p, t, pos, total));
            }
        }
        events.sort_by_key(|e| match e {
            Event::Progress { id, .. } => *id,
            _ => 0,
        });
        for e in events {
            self.broadcast(e);
        }
        if !self.order.is_empty() {
            let fraction = self.run_fraction();
            self.run_estimator.sample(t, fraction);
            if (fraction - self.last_fraction).abs() > 1e-9 {
                self.last_fraction = fraction;
                self.broadcast(Event::RunProgress {
                    t,
                    fraction,
                    eta: self.run_estimator.eta(1.0 - fraction),
                });
            }
        }
        for q in self.sinks.queues.iter() {
            q.push(Item::Flush);
        }
        self.check_stalls();
    }

    /// Weighted mean of the top-level phases' fractions (see [`Self::phase_fraction`]).
    fn run_fraction(&self) -> f64 {
        weighted_mean(self.order.iter().map(|id| {
            let p = &self.phases[id];
            (p.state.weight(), self.phase_fraction(p))
        }))
    }

    /// A completed phase is 1; one with a known total is pos/total; one without a total is the
    /// weighted mean of its children; otherwise 0.
    fn phase_fraction(&self, p: &Tracked) -> f64 {
        if p.finished == Some(Outcome::Completed) {
            return 1.0;
        }
        let pos = p.state.position();
        match p.state.total() {
            Some(0) => 0.0,
            Some(total) => (pos as f64 / total as f64).min(1.0),
            None => weighted_mean(p.children.iter().filter_map(|c| {
                let c = self.phases.get(c)?;
                Some((c.state.weight(), self.phase_fraction(c)))
            })),
        }
    }

    fn broadcast(&self, event: Event) {
        let event = Arc::new(event);
        for q in self.sinks.queues.iter() {
            q.push(Item::from_event(&event));
        }
    }
}

fn weighted_mean(parts: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (mut sum, mut weights) = (0.0, 0.0);
    for (w, f) in parts {
        sum += w * f;
        weights += w;
    }
    if weights > 0.0 { sum / weights } else { 0.0 }
}

fn progress_event(p: &Tracked, t: f64, pos: u64, total: Option<u64>) -> Event {
    Event::Progress {
        t,
        id: p.state.id,
        pos,
        total,
        rate: p.estimator.rate(),
        eta: total.and_then(|total| p.estimator.eta(total.saturating_sub(pos) as f64)),
        message: p.state.message(),
    }
}
