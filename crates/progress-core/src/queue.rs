//! One sink's queue: progress snapshots coalesce (one pending per phase, latest wins), previews
//! are bounded (the excess is dropped and counted), structural events are kept.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::event::{Event, PhaseId};

/// An entry in a sink's queue.
#[derive(Debug)]
pub(crate) enum Item {
    Event(Arc<Event>),
    /// The latest snapshot for this key waits in [`QueueInner::latest`].
    Snapshot(SnapshotKey),
    Preview(Arc<Event>),
    Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SnapshotKey {
    Phase(PhaseId),
    Run,
}

impl Item {
    pub(crate) fn from_event(event: &Arc<Event>) -> Self {
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
pub(crate) struct Stalled;

/// One sink's queue: progress snapshots coalesce, previews are bounded, the rest is kept.
#[derive(Debug)]
pub(crate) struct SinkQueue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
    idle: Condvar,
    preview_capacity: usize,
    dropped_previews: AtomicU64,
    /// The sink's name, for reports.
    pub(crate) name: String,
}

impl SinkQueue {
    pub(crate) fn new(preview_capacity: usize, name: String) -> Self {
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

    pub(crate) fn dropped_previews(&self) -> u64 {
        self.dropped_previews.load(Ordering::Relaxed)
    }

    pub(crate) fn push(&self, item: Item) {
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

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    pub(crate) fn is_stalled(&self) -> bool {
        self.lock().stalled
    }

    /// Marks the sink stalled if its current call has lasted `timeout`; true if it just did.
    pub(crate) fn check_stall(&self, timeout: Duration) -> bool {
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
    pub(crate) fn wait_idle(&self, timeout: Duration) -> Result<u64, Stalled> {
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
    pub(crate) fn pop(&self) -> Option<Popped> {
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

pub(crate) enum Popped {
    Event(Arc<Event>),
    Flush,
}
