//! The progress sink that puts a job's events on `facesync.progress.<job>`.
//!
//! progress-core calls it on its own sink thread; it never waits on the network: events are
//! serialised and handed to a channel that an async task drains into the NATS connection.
//! Progress snapshots are thinned to one per phase per `interval` and dropped rather than
//! waited for when the channel is full (the next snapshot, and the phase's final state in
//! `phase_finished`, follow); structural events wait for room, which only ever delays this
//! sink's own thread. Previews are not published: images do not belong on a shared bus.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use progress_core::{Control, Event, PhaseId, ProgressSink};
use tokio::sync::mpsc;

/// Room for this many serialised events between the sink thread and the publishing task.
pub(crate) const CHANNEL: usize = 256;

pub(crate) struct NatsSink {
    tx: mpsc::Sender<Bytes>,
    thin: Thinning,
}

impl NatsSink {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>, interval: Duration) -> Self {
        Self {
            tx,
            thin: Thinning::new(interval),
        }
    }
}

impl ProgressSink for NatsSink {
    fn handle(&mut self, event: &Event) -> Control {
        let Some(kind) = self.thin.admit(event) else {
            return Control::Continue;
        };
        let Ok(payload) = serde_json::to_vec(event) else {
            return Control::Continue;
        };
        match kind {
            Kind::Snapshot => {
                let _ = self.tx.try_send(payload.into());
            }
            Kind::Structural => {
                let _ = self.tx.blocking_send(payload.into());
            }
        }
        Control::Continue
    }

    fn name(&self) -> String {
        "nats progress publisher".into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Progress and run-progress snapshots: the next one supersedes it.
    Snapshot,
    /// Everything else: kept.
    Structural,
}

/// Which events go out: snapshots at most once per `interval` per phase (and for the run),
/// by the events' own clock; no previews.
pub(crate) struct Thinning {
    interval: f64,
    last: HashMap<Option<PhaseId>, f64>,
}

impl Thinning {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval: interval.as_secs_f64(),
            last: HashMap::new(),
        }
    }

    pub(crate) fn admit(&mut self, event: &Event) -> Option<Kind> {
        let (key, t) = match event {
            Event::Preview { .. } => return None,
            Event::Progress { id, t, .. } => (Some(*id), *t),
            Event::RunProgress { t, .. } => (None, *t),
            _ => return Some(Kind::Structural),
        };
        match self.last.get(&key) {
            Some(&last) if t - last < self.interval => None,
            _ => {
                self.last.insert(key, t);
                Some(Kind::Snapshot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use progress_core::{ImageFormat, Level, PreviewImage};

    fn progress(id: PhaseId, t: f64) -> Event {
        Event::Progress {
            t,
            id,
            pos: 1,
            total: None,
            rate: None,
            eta: None,
            message: None,
        }
    }

    #[test]
    fn snapshots_are_thinned_per_phase_and_structure_always_passes() {
        let mut thin = Thinning::new(Duration::from_millis(250));
        let run = |t| Event::RunProgress {
            t,
            fraction: 0.5,
            eta: None,
        };
        let message = Event::Message {
            t: 0.15,
            phase: None,
            level: Level::Info,
            text: "x".into(),
        };
        let preview = Event::Preview {
            t: 0.2,
            phase: 1,
            frame: 0,
            image: PreviewImage {
                width: 1,
                height: 1,
                format: ImageFormat::Rgb8,
                data: vec![0; 3],
            },
        };
        let s = Some(Kind::Snapshot);
        for (event, expected) in [
            (progress(1, 0.0), s),
            (progress(2, 0.05), s),
            (progress(1, 0.1), None),
            (run(0.1), s),
            (message, Some(Kind::Structural)),
            (preview, None),
            (progress(1, 0.26), s),
            (progress(2, 0.26), None),
            (progress(2, 0.31), s),
            (run(0.3), None),
            (run(0.36), s),
        ] {
            assert_eq!(thin.admit(&event), expected, "{event:?}");
        }
    }

    #[test]
    fn a_full_channel_drops_snapshots_without_blocking() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = NatsSink::new(tx, Duration::ZERO);
        for i in 0..10 {
            assert_eq!(sink.handle(&progress(1, f64::from(i))), Control::Continue);
        }
        let first: Event = serde_json::from_slice(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(first, progress(1, 0.0));
        assert!(rx.try_recv().is_err(), "the other nine were dropped");
    }
}
