//! A bounded flume channel for GUI event loops.

use std::collections::{HashMap, VecDeque};

use flume::{Receiver, Sender, TrySendError};
use progress_core::{Control, Event, PhaseId, ProgressSink};

/// Sends events into a bounded [`flume`] channel that a GUI event loop drains.
///
/// When the receiver lags, progress snapshots coalesce in the sink: only the latest
/// [`Event::Progress`] per phase (and the latest [`Event::RunProgress`]) waits, and pending ones
/// are offered with `try_send` on every event and every tick. Every other event is sent with a
/// blocking `send`, so structural events are never dropped; this blocks only the sink's own
/// thread (progress-core isolates it, and previews beyond its queue bound are dropped and
/// counted there). A pending snapshot for a phase is discarded when the phase finishes: its
/// `PhaseFinished` carries the final position. If the receiver is dropped, the sink does nothing.
///
/// Drain the receiver on a thread other than the one that calls `Progress::shutdown`: shutdown
/// waits for this sink to deliver the run's last events. A full channel that nobody drains
/// blocks this sink's thread; after the run's stall timeout
/// (`ProgressBuilder::sink_stall_timeout`, 10 s by default) progress-core disables the sink and
/// shutdown goes on without it, so the receiver then misses the rest of the run (a GUI loop
/// that drains each frame while the work runs, and shuts down from the work's thread, is the
/// intended shape).
///
/// ```
/// use progress_core::Progress;
/// use facesync_sinks::ChannelSink;
///
/// let (sink, events) = ChannelSink::bounded(64);
/// let progress = Progress::builder().sink(sink).start();
/// let phase = progress.phase("Rendering", Some(10), "frames");
/// phase.inc(10);
/// phase.finish();
/// progress.shutdown();
/// // In a GUI: drain with `events.try_iter()` once per frame.
/// assert!(events.try_iter().any(|e| matches!(e, progress_core::Event::RunFinished { .. })));
/// ```
#[derive(Debug)]
pub struct ChannelSink {
    tx: Option<Sender<Event>>,
    pending: HashMap<Key, Event>,
    /// Keys of `pending`, oldest first.
    order: VecDeque<Key>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Phase(PhaseId),
    Run,
}

impl ChannelSink {
    /// A sink and the receiving end of its channel, which holds at most `capacity` events.
    pub fn bounded(capacity: usize) -> (Self, Receiver<Event>) {
        let (tx, rx) = flume::bounded(capacity);
        let sink = Self {
            tx: Some(tx),
            pending: HashMap::new(),
            order: VecDeque::new(),
        };
        (sink, rx)
    }

    /// Offers pending snapshots, oldest first, until the channel is full.
    fn drain(&mut self) {
        let Some(tx) = &self.tx else { return };
        while let Some(key) = self.order.pop_front() {
            let event = self
                .pending
                .remove(&key)
                .expect("every queued key has a pending event");
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending.insert(key, event);
                    self.order.push_front(key);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.disconnect();
                    return;
                }
            }
        }
    }

    fn disconnect(&mut self) {
        self.tx = None;
        self.pending.clear();
        self.order.clear();
    }

    fn discard_pending(&mut self, key: Key) {
        if self.pending.remove(&key).is_some() {
            self.order.retain(|k| *k != key);
        }
    }
}

impl ProgressSink for ChannelSink {
    fn handle(&mut self, event: &Event) -> Control {
        if self.tx.is_none() {
            return Control::Continue;
        }
        let key = match event {
            Event::Progress { id, .. } => Some(Key::Phase(*id)),
            Event::RunProgress { .. } => Some(Key::Run),
            _ => None,
        };
        if let Some(key) = key {
            if self.pending.insert(key, event.clone()).is_none() {
                self.order.push_back(key);
            }
            self.drain();
            return Control::Continue;
        }
        match event {
            Event::PhaseFinished { id, .. } => self.discard_pending(Key::Phase(*id)),
            Event::RunFinished { .. } => {
                self.pending.clear();
                self.order.clear();
            }
            _ => {}
        }
        // Older snapshots go first where there is room, then the structural event, blocking.
        self.drain();
        if let Some(tx) = &self.tx
            && tx.send(event.clone()).is_err()
        {
            self.disconnect();
        }
        Control::Continue
    }

    fn flush(&mut self) {
        self.drain();
    }

    fn name(&self) -> String {
        "channel".into()
    }
}
