//! Progress handles: what the work holds.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::cancel::{CancelToken, Cancelled};
use crate::event::{Event, Level, Outcome, PhaseId, PreviewImage};
use crate::record::{Record, RecordType};

/// `total` stored in an atomic: `u64::MAX` means unknown.
const UNKNOWN_TOTAL: u64 = u64::MAX;

/// A counter on a cache line of its own, so that threads bumping different phases do not
/// slow each other down (false sharing).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct PaddedCounter(pub(crate) AtomicU64);

/// The state of one phase, shared by its handles (which write it) and the dispatcher (which
/// samples it). Only atomics and one short-held mutex: the dispatcher never calls a sink while
/// holding anything the producer needs.
#[derive(Debug)]
pub(crate) struct PhaseState {
    pos: PaddedCounter,
    /// The counters of the live [`LocalCounter`]s (each on its own cache line); a dropped one
    /// adds its count to `pos` and leaves, under this lock, so that a reader holding it sees
    /// every unit exactly once.
    shards: Mutex<Vec<Arc<PaddedCounter>>>,
    /// `shards.len()`, readable without the lock: most phases have no shard.
    shard_count: AtomicUsize,
    pub(crate) id: PhaseId,
    total: AtomicU64,
    weight_bits: AtomicU64,
    message: Mutex<Option<String>>,
    message_version: AtomicU64,
    finished: AtomicBool,
}

impl PhaseState {
    fn shards(&self) -> MutexGuard<'_, Vec<Arc<PaddedCounter>>> {
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Units done: the shared counter plus every live [`LocalCounter`]'s.
    pub(crate) fn position(&self) -> u64 {
        if self.shard_count.load(Ordering::Acquire) == 0 {
            return self.pos.0.load(Ordering::Acquire);
        }
        let shards = self.shards();
        let local: u64 = shards.iter().map(|s| s.0.load(Ordering::Acquire)).sum();
        self.pos.0.load(Ordering::Acquire).wrapping_add(local)
    }

    pub(crate) fn total(&self) -> Option<u64> {
        match self.total.load(Ordering::Relaxed) {
            UNKNOWN_TOTAL => None,
            t => Some(t),
        }
    }

    pub(crate) fn weight(&self) -> f64 {
        f64::from_bits(self.weight_bits.load(Ordering::Relaxed))
    }

    pub(crate) fn message_version(&self) -> u64 {
        self.message_version.load(Ordering::Acquire)
    }

    pub(crate) fn message(&self) -> Option<String> {
        self.message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the phase finished; true for the caller that did it first.
    pub(crate) fn mark_finished(&self) -> bool {
        !self.finished.swap(true, Ordering::AcqRel)
    }
}

/// What producers send to the dispatcher over the bounded structural channel.
#[derive(Debug)]
pub(crate) enum Msg {
    PhaseStarted {
        state: Arc<PhaseState>,
        parent: Option<PhaseId>,
        name: String,
        unit: String,
        t: f64,
    },
    /// Message, preview, record: forwarded as they are.
    Event(Event),
    PhaseFinished {
        id: PhaseId,
        outcome: Outcome,
        error: Option<String>,
        pos: u64,
        t: f64,
    },
    Shutdown,
}

/// What all handles of one run share.
#[derive(Debug)]
pub(crate) struct RunShared {
    /// `None` for detached phases: nothing listens.
    pub(crate) tx: Option<flume::Sender<Msg>>,
    pub(crate) cancel: CancelToken,
    pub(crate) start: Instant,
    pub(crate) next_id: AtomicU64,
    pub(crate) dropped_previews: AtomicU64,
}

impl RunShared {
    pub(crate) fn new(tx: Option<flume::Sender<Msg>>, cancel: CancelToken) -> Self {
        Self {
            tx,
            cancel,
            start: Instant::now(),
            next_id: AtomicU64::new(1),
            dropped_previews: AtomicU64::new(0),
        }
    }

    pub(crate) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Sends a structural message. Blocks only while the dispatcher's channel is full, which the
    /// dispatcher (it never waits on a sink) empties at once. After shutdown it is a no-op.
    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    /// Sends a preview, or drops and counts it if the channel is full.
    fn send_lossy(&self, msg: Msg) {
        let Some(tx) = &self.tx else { return };
        if let Err(flume::TrySendError::Full(_)) = tx.try_send(msg) {
            self.dropped_previews.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn start_phase(
        self: &Arc<Self>,
        parent: Option<PhaseId>,
        name: String,
        total: Option<u64>,
        unit: String,
    ) -> Phase {
        self.start_weighted_phase(parent, name, total, unit, 1.0)
    }

    /// [`RunShared::start_phase`] with the phase's weight (see [`Phase::set_weight`]).
    pub(crate) fn start_weighted_phase(
        self: &Arc<Self>,
        parent: Option<PhaseId>,
        name: String,
        total: Option<u64>,
        unit: String,
        weight: f64,
    ) -> Phase {
        let state = Arc::new(PhaseState {
            pos: PaddedCounter::default(),
            shards: Mutex::new(Vec::new()),
            shard_count: AtomicUsize::new(0),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            total: AtomicU64::new(total.unwrap_or(UNKNOWN_TOTAL)),
            weight_bits: AtomicU64::new(valid_weight(weight).to_bits()),
            message: Mutex::new(None),
            message_version: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        });
        self.send(Msg::PhaseStarted {
            state: Arc::clone(&state),
            parent,
            name,
            unit,
            t: self.now(),
        });
        Phase {
            owner: Arc::new(Owner {
                state: Arc::clone(&state),
                run: Arc::clone(self),
            }),
            state,
        }
    }
}

/// Ends the phase when the last handle goes.
#[derive(Debug)]
struct Owner {
    state: Arc<PhaseState>,
    run: Arc<RunShared>,
}

impl Owner {
    fn end(&self, outcome: Outcome, error: Option<String>) {
        if !self.state.mark_finished() {
            return;
        }
        self.run.send(Msg::PhaseFinished {
            id: self.state.id,
            outcome,
            error,
            pos: self.state.position(),
            t: self.run.now(),
        });
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let outcome = if self.run.cancel.is_cancelled() {
            Outcome::Cancelled
        } else {
            Outcome::Abandoned
        };
        self.end(outcome, None);
    }
}

/// A handle on one phase of the work: cheap to clone, `Send + Sync`.
///
/// Updating the position ([`inc`](Self::inc), [`set`](Self::set)) is one relaxed atomic
/// operation and nothing else: no lock, channel, clock read, syscall or allocation. The
/// dispatcher samples the position on its own tick. Everything else (child phases, messages,
/// previews, records, finishing) goes through the dispatcher's bounded channel.
///
/// A phase ends once: with [`finish`](Self::finish), [`fail`](Self::fail), or when its last
/// handle is dropped (outcome `abandoned`, or `cancelled` if the run's cancel token is set).
#[derive(Clone)]
pub struct Phase {
    state: Arc<PhaseState>,
    owner: Arc<Owner>,
}

impl fmt::Debug for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Phase")
            .field("id", &self.state.id)
            .field("pos", &self.pos())
            .field("total", &self.total())
            .finish()
    }
}

impl Phase {
    /// A phase with no dispatcher behind it: counts and checks its own cancel token, reports
    /// to nobody. For using a stage standalone, and for tests.
    pub fn detached(name: impl Into<String>, total: Option<u64>, unit: impl Into<String>) -> Self {
        Self::detached_with(CancelToken::new(), name, total, unit)
    }

    /// Like [`detached`](Self::detached), honouring the given cancel token.
    pub fn detached_with(
        cancel: CancelToken,
        name: impl Into<String>,
        total: Option<u64>,
        unit: impl Into<String>,
    ) -> Self {
        Arc::new(RunShared::new(None, cancel)).start_phase(None, name.into(), total, unit.into())
    }

    /// Adds `n` units done. One relaxed atomic add.
    #[inline]
    pub fn inc(&self, n: u64) {
        self.state.pos.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the units done. One relaxed atomic store. With live [`LocalCounter`]s this sets
    /// the shared part: their counts still add on top.
    #[inline]
    pub fn set(&self, pos: u64) {
        self.state.pos.0.store(pos, Ordering::Relaxed);
    }

    /// Units done so far (including the live [`LocalCounter`]s').
    pub fn pos(&self) -> u64 {
        self.state.position()
    }

    /// A counter for one thread's share of this phase, for phases that several threads
    /// advance at once.
    ///
    /// Every thread that [`inc`](Self::inc)s the same phase writes the same cache line, which
    /// then travels between cores on each update: with two threads an update costs several
    /// times an uncontended one. A `LocalCounter` is a counter on a cache line of its own,
    /// written by one thread only (it is `Send` but neither `Sync` nor `Clone`), so
    /// [`LocalCounter::inc`] is a relaxed load and store of a line no other core writes; the
    /// dispatcher adds the live local counters to the phase's position when it samples, and a
    /// dropped one hands its count to the phase. Creating one takes a short lock (not the hot
    /// path); drop it before the phase finishes so that the final position includes it.
    ///
    /// ```
    /// use progress_core::Phase;
    ///
    /// let phase = Phase::detached("Processing faces", Some(2000), "frames");
    /// std::thread::scope(|s| {
    ///     for _ in 0..2 {
    ///         let local = phase.local();
    ///         s.spawn(move || {
    ///             for _frame in 0..1000 {
    ///                 local.inc(1);
    ///             }
    ///         });
    ///     }
    /// });
    /// assert_eq!(phase.pos(), 2000);
    /// ```
    pub fn local(&self) -> LocalCounter {
        let slot = Arc::new(PaddedCounter::default());
        let mut shards = self.state.shards();
        shards.push(Arc::clone(&slot));
        self.state
            .shard_count
            .store(shards.len(), Ordering::Release);
        drop(shards);
        LocalCounter {
            slot,
            state: Arc::clone(&self.state),
            _one_writer: PhantomData,
        }
    }

    /// Units in all, if known.
    pub fn total(&self) -> Option<u64> {
        self.state.total()
    }

    /// Changes the total (`None`: unknown). Picked up on the next tick.
    pub fn set_total(&self, total: Option<u64>) {
        self.state
            .total
            .store(total.unwrap_or(UNKNOWN_TOTAL), Ordering::Relaxed);
    }

    /// Sets this phase's share of its parent's (or the run's) work relative to its siblings
    /// (default 1). Used for the whole-run fraction and ETA. Negative or non-finite values
    /// count as 0.
    pub fn set_weight(&self, weight: f64) {
        self.state
            .weight_bits
            .store(valid_weight(weight).to_bits(), Ordering::Relaxed);
    }

    /// Sets the phase's status text, shown with its progress. Picked up on the next tick; only
    /// the latest text is shown.
    pub fn set_message(&self, text: impl Into<String>) {
        *self.state.message.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.into());
        self.state.message_version.fetch_add(1, Ordering::Release);
    }

    /// This phase's identifier in events.
    pub fn id(&self) -> PhaseId {
        self.state.id
    }

    /// The run's cancel token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.owner.run.cancel
    }

    /// `Err(Cancelled)` once the run is cancelled. Call it between batches: `phase.check()?`.
    #[inline]
    pub fn check(&self) -> Result<(), Cancelled> {
        self.owner.run.cancel.check()
    }

    /// Starts a child phase, shown under this one.
    pub fn child(
        &self,
        name: impl Into<String>,
        total: Option<u64>,
        unit: impl Into<String>,
    ) -> Phase {
        self.owner
            .run
            .start_phase(Some(self.state.id), name.into(), total, unit.into())
    }

    /// [`Phase::child`] with its weight ([`Phase::set_weight`]) set before it starts, so that
    /// its `phase_started` event carries that weight (a weight set after the start reaches
    /// the event or not, depending on when the dispatcher's next tick comes).
    pub fn child_weighted(
        &self,
        name: impl Into<String>,
        total: Option<u64>,
        unit: impl Into<String>,
        weight: f64,
    ) -> Phase {
        self.owner.run.start_weighted_phase(
            Some(self.state.id),
            name.into(),
            total,
            unit.into(),
            weight,
        )
    }

    /// Sends a message to every sink. Never lost.
    pub fn message(&self, level: Level, text: impl Into<String>) {
        let run = &self.owner.run;
        run.send(Msg::Event(Event::Message {
            t: run.now(),
            phase: Some(self.state.id),
            level,
            text: text.into(),
        }));
    }

    /// Sends a preview of frame `frame`. Dropped (and counted in the run summary) when the
    /// dispatcher's channel or a sink's preview queue is full, so previews never slow the work.
    pub fn preview(&self, frame: u64, image: PreviewImage) {
        let run = &self.owner.run;
        if run.tx.is_none() {
            return;
        }
        run.send_lossy(Msg::Event(Event::Preview {
            t: run.now(),
            phase: self.state.id,
            frame,
            image,
        }));
    }

    /// Sends a record (see [`crate::record`]) to every sink. Never lost.
    pub fn record<R: RecordType>(&self, record: &R) {
        let run = &self.owner.run;
        if run.tx.is_none() {
            return;
        }
        run.send(Msg::Event(Event::Record(Record::new(
            run.now(),
            self.state.id,
            record,
        ))));
    }

    /// Ends the phase as completed, with its current position. Later calls do nothing.
    pub fn finish(&self) {
        self.owner.end(Outcome::Completed, None);
    }

    /// Ends the phase as failed with `error` (as cancelled, keeping the text, if the run's cancel
    /// token is set: the failure is then most likely the cancellation). Later calls do nothing.
    pub fn fail(&self, error: impl fmt::Display) {
        let outcome = if self.owner.run.cancel.is_cancelled() {
            Outcome::Cancelled
        } else {
            Outcome::Failed
        };
        self.owner.end(outcome, Some(error.to_string()));
    }

    /// Whether the phase has ended.
    pub fn is_finished(&self) -> bool {
        self.state.finished.load(Ordering::Acquire)
    }
}

/// One thread's counter on a [`Phase`]: see [`Phase::local`].
pub struct LocalCounter {
    slot: Arc<PaddedCounter>,
    state: Arc<PhaseState>,
    /// Not `Sync`: one writer only, which is what makes a load + store a correct add.
    _one_writer: PhantomData<Cell<()>>,
}

impl fmt::Debug for LocalCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCounter")
            .field("phase", &self.state.id)
            .field("count", &self.count())
            .finish()
    }
}

impl LocalCounter {
    /// Adds `n` units done: a relaxed load and store of this counter's own cache line (no
    /// locked instruction: this handle is the line's only writer).
    #[inline]
    pub fn inc(&self, n: u64) {
        let c = &self.slot.0;
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Units counted by this handle so far.
    pub fn count(&self) -> u64 {
        self.slot.0.load(Ordering::Relaxed)
    }
}

impl Drop for LocalCounter {
    fn drop(&mut self) {
        let mut shards = self.state.shards();
        // Under the lock, so that a reader summing the shards sees the units once.
        self.state
            .pos
            .0
            .fetch_add(self.slot.0.load(Ordering::Relaxed), Ordering::AcqRel);
        shards.retain(|s| !Arc::ptr_eq(s, &self.slot));
        self.state
            .shard_count
            .store(shards.len(), Ordering::Release);
    }
}

/// Counts the items of an iterator on a [`Phase`]: `for x in iter.progress(&phase)`.
pub trait ProgressIterExt: Iterator + Sized {
    /// Wraps the iterator; each item is counted once the loop asks for the next one (that is,
    /// once the body is done with it), so a `break` leaves the unfinished item uncounted.
    fn progress(self, phase: &Phase) -> ProgressIter<Self>;
}

impl<I: Iterator> ProgressIterExt for I {
    fn progress(self, phase: &Phase) -> ProgressIter<Self> {
        ProgressIter {
            iter: self,
            phase: phase.clone(),
            pending: false,
        }
    }
}

/// See [`ProgressIterExt::progress`].
#[derive(Debug)]
pub struct ProgressIter<I> {
    iter: I,
    phase: Phase,
    pending: bool,
}

impl<I: Iterator> Iterator for ProgressIter<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if self.pending {
            self.phase.inc(1);
        }
        let item = self.iter.next();
        self.pending = item.is_some();
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

/// A weight as phases keep it: negative or non-finite values count as 0.
fn valid_weight(weight: f64) -> f64 {
    if weight.is_finite() && weight > 0.0 {
        weight
    } else {
        0.0
    }
}
