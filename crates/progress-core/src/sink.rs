//! The sink interface: what every progress sink implements.

use crate::event::Event;

/// What a sink tells the run after handling an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// Go on.
    Continue,
    /// Cancel the run (sets its [`CancelToken`](crate::CancelToken)).
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
