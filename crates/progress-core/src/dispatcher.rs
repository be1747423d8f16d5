//! The dispatcher thread, the per-sink queues and their worker threads.
//!
//! ```text
//! producers ──inc()──▶ atomics ◀──sample every tick──┐
//!     └──structural msgs──▶ bounded flume ──▶ dispatcher ──▶ SinkQueue ──▶ worker ──▶ sink
//!                                                  └───────▶ SinkQueue ──▶ worker ──▶ sink
//! ```
//! The dispatcher never blocks on a sink: it pushes into each sink's queue under a short lock
//! and moves on. A queue coalesces progress snapshots (one pending per phase, latest wins),
//! keeps structural events, and bounds pending previews (the excess is dropped and counted).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::estimate::{DEFAULT_TAU_SECS, RateEstimator};
use crate::event::{Event, Level, Outcome, PhaseId, RunSummary, SCHEMA_VERSION};
use crate::phase::{Msg, Phase, PhaseState, RunShared};

/// What a sink tells the run after handling an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// Go on.
    Continue,
    /// Cancel the run (sets its [`CancelToken`]).
    Cancel,
}

/// The one interface every progress sink implements.
///
/// Each sink runs on its own worker thread with its own queue, never on the producer's thread
/// and never under a lock the producer needs. A sink may be slow or block: only its own queue
/// waits (progress snapshots coalesce meanwhile). A sink that panics is disabled and reported.
pub trait ProgressSink: Send + 'static {
    /// Handles one event.
    fn handle(&mut self, event: &Event) -> Control;

    /// Called once the events of a dispatcher tick have been handled: flush buffers here.
    fn flush(&mut self) {}

    /// A name for reports about this sink (default: its type name).
    fn name(&self) -> String {
        std::any::type_name::<Self>().to_string()
    }
}

impl<F> ProgressSink for F
where
    F: FnMut(&Event) -> Control + Send + 'static,
{
    fn handle(&mut self, event: &Event) -> Control {
        self(event)
    }
}

/// Configures and starts a [`Progress`] run.
#[derive(Debug)]
pub struct ProgressBuilder {
    tick: Duration,
    channel_capacity: usize,
    sink_preview_capacity: usize,
    tau: f64,
    stall: Duration,
    cancel: CancelToken,
    sinks: Vec<SinkBox>,
}

struct SinkBox(Box<dyn ProgressSink>);

impl std::fmt::Debug for SinkBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.name())
    }
}

impl Default for ProgressBuilder {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(100),
            channel_capacity: 1024,
            sink_preview_capacity: 4,
            tau: DEFAULT_TAU_SECS,
            stall: Duration::from_secs(10),
            cancel: CancelToken::new(),
            sinks: Vec::new(),
        }
    }
}

impl ProgressBuilder {
    /// The sampling period (default 100 ms, i.e. 10 Hz). At least 1 ms.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Capacity of the producers' structural channel (default 1024). When full, previews are
    /// dropped and other events wait for room.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.max(1);
        self
    }

    /// How many previews may wait in one sink's queue before newer ones are dropped (default 4).
    pub fn sink_preview_capacity(mut self, capacity: usize) -> Self {
        self.sink_preview_capacity = capacity;
        self
    }

    /// Time constant of the rate estimator, in seconds (default 3).
    pub fn smoothing(mut self, tau_secs: f64) -> Self {
        if tau_secs.is_finite() && tau_secs > 0.0 {
            self.tau = tau_secs;
        }
        self
    }

    /// How long one call of a sink may take before the sink counts as stalled (default 10 s).
    ///
    /// A stalled sink (blocked on a full pipe, a paused terminal, a GUI channel nobody drains)
    /// is disabled like a panicking one: its queue is dropped, the other sinks get a warning
    /// message, the run summary counts it in `sink_failures`, and `shutdown` stops waiting for
    /// it. Its thread is not joined but detached: it ends on its own once the call returns.
    pub fn sink_stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall = timeout;
        self
    }

    /// The run's cancel token (default: a new one).
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: impl ProgressSink) -> Self {
        self.sinks.push(SinkBox(Box::new(sink)));
        self
    }

    /// Adds a boxed sink.
    pub fn boxed_sink(mut self, sink: Box<dyn ProgressSink>) -> Self {
        self.sinks.push(SinkBox(sink));
        self
    }

    /// Starts the dispatcher and one worker thread per sink.
    pub fn start(self) -> Progress {
        let (tx, rx) = flume::bounded(self.channel_capacity);
        let shared = Arc::new(RunShared::new(Some(tx), self.cancel.clone()));
        let queues: Arc<Vec<Arc<SinkQueue>>> = Arc::new(
            self.sinks
                .iter()
                .map(|sink| Arc::new(SinkQueue::new(self.sink_preview_capacity, sink.0.name())))
                .collect(),
        );
        let sink_failures = Arc::new(AtomicU64::new(0));
        let workers = self
            .sinks
            .into_iter()
            .enumerate()
            .map(|(index, sink)| {
                let worker = Worker {
                    index,
                    sink: sink.0,
                    queues: Arc::clone(&queues),
                    cancel: self.cancel.clone(),
                    failures: Arc::clone(&sink_failures),
                    start: shared.start,
                };
                std::thread::Builder::new()
                    .name(format!("facesync-sink-{index}"))
                    .spawn(move || worker.run())
                    .expect("cannot spawn a progress sink thread")
            })
            .collect();
        let dispatcher = Dispatcher {
            rx,
            shared: Arc::clone(&shared),
            queues,
            workers,
            sink_failures,
            tick: self.tick,
            tau: self.tau,
            stall: self.stall,
            phases: HashMap::new(),
            order: Vec::new(),
            run_estimator: RateEstimator::new(0.0, 0.0, self.tau),
            last_fraction: -1.0,
            summary: RunSummary::default(),
        };
        let thread = std::thread::Builder::new()
            .name("facesync-progress".into())
            .spawn(move || dispatcher.run())
            .expect("cannot spawn the progress dispatcher thread");
        Progress {
            shared,
            thread: Some(thread),
        }
    }
}

/// A progress run: the dispatcher thread, its sinks, and the root of the phase tree.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) ends every phase still open (as
/// abandoned, or cancelled if the token is set), delivers the final state to every live sink,
/// sends `run_finished`, and joins every thread it started.
#[derive(Debug)]
pub struct Progress {
    shared: Arc<RunShared>,
    thread: Option<JoinHandle<RunSummary>>,
}

impl Progress {
    /// Configures a run.
    pub fn builder() -> ProgressBuilder {
        ProgressBuilder::default()
    }

    /// A run with no sinks and default settings (counts and cancellation only).
    pub fn new() -> Self {
        Self::builder().start()
    }

    /// Starts a top-level phase.
    pub fn phase(
        &self,
        name: impl Into<String>,
        total: Option<u64>,
        unit: impl Into<String>,
    ) -> Phase {
        self.shared
            .start_phase(None, name.into(), total, unit.into())
    }

    /// The run's cancel token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.shared.cancel
    }

    /// Flushes every sink, joins all threads and returns the run's summary.
    pub fn shutdown(mut self) -> RunSummary {
        self.stop()
    }

    fn stop(&mut self) -> RunSummary {
        let Some(thread) = self.thread.take() else {
            return RunSummary::default();
        };
        if let Some(tx) = &self.shared.tx {
            let _ = tx.send(Msg::Shutdown);
        }
        thread.join().unwrap_or_default()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

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

struct Dispatcher {
    rx: flume::Receiver<Msg>,
    shared: Arc<RunShared>,
    queues: Arc<Vec<Arc<SinkQueue>>>,
    workers: Vec<JoinHandle<()>>,
    sink_failures: Arc<AtomicU64>,
    tick: Duration,
    tau: f64,
    stall: Duration,
    phases: HashMap<PhaseId, Tracked>,
    /// Top-level phases in creation order.
    order: Vec<PhaseId>,
    run_estimator: RateEstimator,
    last_fraction: f64,
    summary: RunSummary,
}

impl Dispatcher {
    fn run(mut self) -> RunSummary {
        self.broadcast(Event::RunStarted {
            schema: SCHEMA_VERSION,
            t: 0.0,
            tick_ms: self.tick.as_millis() as u64,
        });
        let mut next_tick = Instant::now() + self.tick;
        loop {
            match self.rx.recv_deadline(next_tick) {
                Ok(Msg::Shutdown) | Err(flume::RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(msg),
                Err(flume::RecvTimeoutError::Timeout) => {
                    self.sample();
                    let now = Instant::now();
                    next_tick += self.tick;
                    if next_tick < now {
                        next_tick = now + self.tick;
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
        self.summary.sink_failures = self.sink_failures.load(Ordering::Relaxed);
        self.broadcast(Event::RunFinished {
            t,
            summary: self.summary.clone(),
        });
        for q in self.queues.iter() {
            q.close();
        }
        for (w, q) in self.workers.drain(..).zip(self.queues.iter()) {
            // A stalled sink's thread is detached: joining it could wait forever.
            if !q.is_stalled() {
                let _ = w.join();
            }
        }
        self.summary.dropped_previews = self.dropped_previews();
        self.summary.sink_failures = self.sink_failures.load(Ordering::Relaxed);
        self.summary
    }

    /// Waits until every sink's queue is idle (or its sink stalled); returns the push counts.
    fn wait_all_idle(&mut self) -> Vec<u64> {
        let mut counts = Vec::with_capacity(self.queues.len());
        for i in 0..self.queues.len() {
            let queue = Arc::clone(&self.queues[i]);
            match queue.wait_idle(self.stall) {
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
        for i in 0..self.queues.len() {
            if self.queues[i].check_stall(self.stall) {
                self.report_stall(i);
            }
        }
    }

    fn report_stall(&mut self, index: usize) {
        self.sink_failures.fetch_add(1, Ordering::Relaxed);
        let name = &self.queues[index].name;
        let secs = self.stall.as_secs_f64();
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
        for (i, q) in self.queues.iter().enumerate() {
            if i != index {
                q.push(Item::Event(Arc::clone(&event)));
            }
        }
    }

    fn dropped_previews(&self) -> u64 {
        self.shared.dropped_previews.load(Ordering::Relaxed)
            + self
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
                        estimator: RateEstimator::new(t, pos as f64, self.tau),
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
        for q in self.queues.iter() {
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
        for q in self.queues.iter() {
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

/// An entry in a sink's queue.
#[derive(Debug)]
enum Item {
    Event(Arc<Event>),
    /// The latest snapshot for this key waits in [`QueueInner::latest`].
    Snapshot(SnapshotKey),
    Preview(Arc<Event>),
    Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SnapshotKey {
    Phase(PhaseId),
    Run,
}

impl Item {
    fn from_event(event: &Arc<Event>) -> Self {
        match **event {
            Event::Preview { .. } => Item::Preview(Arc::clone(event)),
            _ => Item::Event(Arc::clone(event)),
        }
    }
}

#[derive(Debug, Default)]
struct QueueInner {
    items: VecDeque<Item>,
    latest: HashMap<SnapshotKey, Arc<Event>>,
    previews: usize,
    closed: bool,
    /// The worker is handling an entry it popped.
    busy: bool,
    /// Entries pushed so far.
    pushed: u64,
    /// When the worker popped the entry it is handling.
    busy_since: Option<Instant>,
    /// The sink took longer than the stall timeout on one entry and is disabled.
    stalled: bool,
}

/// A sink's call took longer than the stall timeout.
#[derive(Debug)]
struct Stalled;

/// One sink's queue: progress snapshots coalesce, previews are bounded, the rest is kept.
#[derive(Debug)]
struct SinkQueue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
    idle: Condvar,
    preview_capacity: usize,
    dropped_previews: AtomicU64,
    /// The sink's name, for reports.
    name: String,
}

impl SinkQueue {
    fn new(preview_capacity: usize, name: String) -> Self {
        Self {
            name,
            inner: Mutex::new(QueueInner::default()),
            ready: Condvar::new(),
            idle: Condvar::new(),
            preview_capacity,
            dropped_previews: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dropped_previews(&self) -> u64 {
        self.dropped_previews.load(Ordering::Relaxed)
    }

    fn push(&self, item: Item) {
        let mut q = self.lock();
        if q.stalled {
            return;
        }
        q.pushed += 1;
        match item {
            Item::Event(event) => {
                let key = match *event {
                    Event::Progress { id, .. } => Some(SnapshotKey::Phase(id)),
                    Event::RunProgress { .. } => Some(SnapshotKey::Run),
                    _ => None,
                };
                match key {
                    Some(key) => {
                        // Latest wins; the queue position of the first pending one is kept.
                        if q.latest.insert(key, event).is_none() {
                            q.items.push_back(Item::Snapshot(key));
                        }
                    }
                    None => q.items.push_back(Item::Event(event)),
                }
            }
            Item::Preview(event) => {
                if q.previews >= self.preview_capacity {
                    self.dropped_previews.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                q.previews += 1;
                q.items.push_back(Item::Preview(event));
            }
            Item::Flush => {
                if matches!(q.items.back(), Some(Item::Flush)) {
                    return;
                }
                q.items.push_back(Item::Flush);
            }
            Item::Snapshot(_) => unreachable!("snapshots are queued by push itself"),
        }
        drop(q);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    fn is_stalled(&self) -> bool {
        self.lock().stalled
    }

    /// Marks the sink stalled if its current call has lasted `timeout`; true if it just did.
    fn check_stall(&self, timeout: Duration) -> bool {
        let mut q = self.lock();
        let overdue = !q.stalled && q.busy && q.busy_since.is_some_and(|t| t.elapsed() >= timeout);
        if overdue {
            Self::disable(&mut q);
            drop(q);
            self.idle.notify_all();
        }
        overdue
    }

    fn disable(q: &mut QueueInner) {
        q.stalled = true;
        q.closed = true;
        q.items.clear();
        q.latest.clear();
        q.previews = 0;
    }

    /// Waits until the worker has handled everything queued; returns the push count then, or
    /// `Stalled` (once) if one call of the sink lasts `timeout`. A stalled queue counts as idle.
    fn wait_idle(&self, timeout: Duration) -> Result<u64, Stalled> {
        let mut q = self.lock();
        loop {
            if q.stalled || (!q.busy && q.items.is_empty()) {
                return Ok(q.pushed);
            }
            let waited = q.busy_since.map_or(Duration::ZERO, |t| t.elapsed());
            if q.busy && waited >= timeout {
                Self::disable(&mut q);
                return Err(Stalled);
            }
            let left = if q.busy { timeout - waited } else { timeout };
            q = self
                .idle
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next entry, waiting for one; `None` once closed and drained. Also tells
    /// [`wait_idle`](Self::wait_idle) that the previous entry is done.
    fn pop(&self) -> Option<Popped> {
        let mut q = self.lock();
        q.busy = false;
        q.busy_since = None;
        loop {
            if q.items.is_empty() {
                self.idle.notify_all();
            }
            if let Some(item) = q.items.pop_front() {
                q.busy = true;
                q.busy_since = Some(Instant::now());
                return Some(match item {
                    Item::Event(e) => Popped::Event(e),
                    Item::Snapshot(key) => {
                        Popped::Event(q.latest.remove(&key).expect("snapshot pending"))
                    }
                    Item::Preview(e) => {
                        q.previews -= 1;
                        Popped::Event(e)
                    }
                    Item::Flush => Popped::Flush,
                });
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

enum Popped {
    Event(Arc<Event>),
    Flush,
}

struct Worker {
    index: usize,
    sink: Box<dyn ProgressSink>,
    queues: Arc<Vec<Arc<SinkQueue>>>,
    cancel: CancelToken,
    failures: Arc<AtomicU64>,
    start: Instant,
}

impl Worker {
    fn run(mut self) {
        let queue = Arc::clone(&self.queues[self.index]);
        let mut alive = true;
        while let Some(popped) = queue.pop() {
            if !alive {
                continue; // keep draining so the dispatcher's pushes stay cheap
            }
            let sink = &mut self.sink;
            let result = catch_unwind(AssertUnwindSafe(|| match &popped {
                Popped::Event(event) => sink.handle(event),
                Popped::Flush => {
                    sink.flush();
                    Control::Continue
                }
            }));
            match result {
                Ok(Control::Continue) => {}
                Ok(Control::Cancel) => self.cancel.cancel(),
                Err(panic) => {
                    alive = false;
                    self.report_panic(panic);
                }
            }
        }
        if alive && !queue.is_stalled() {
            let sink = &mut self.sink;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| sink.flush())) {
                self.report_panic(panic);
            }
        }
    }

    fn report_panic(&self, panic: Box<dyn Any + Send>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let name = self.sink.name();
        tracing::warn!(
            target: "facesync::progress",
            sink = %name,
            panic = %what,
            "progress sink panicked and was disabled; the run goes on"
        );
        let event = Arc::new(Event::Message {
            t: self.start.elapsed().as_secs_f64(),
            phase: None,
            level: Level::Warn,
            text: format!("progress sink {name} panicked and was disabled: {what}"),
        });
        for (i, q) in self.queues.iter().enumerate() {
            if i != self.index {
                q.push(Item::Event(Arc::clone(&event)));
            }
        }
    }
}
