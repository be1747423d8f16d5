//! A user closure as a sink.

use progress_core::{Control, Event, ProgressSink};

/// Hands every event to a closure on the sink's own thread: the embedding point for UIs.
///
/// A closure `FnMut(&Event) -> Control` is already a [`ProgressSink`]; this wrapper gives it
/// a name in reports and adds [`CallbackSink::observe`] for closures that never cancel.
///
/// ```
/// use progress_core::{Control, Event};
/// use facesync_sinks::CallbackSink;
///
/// let stop_on_error = CallbackSink::new(|event: &Event| match event {
///     Event::PhaseFinished { error: Some(_), .. } => Control::Cancel,
///     _ => Control::Continue,
/// });
/// let count_events = CallbackSink::observe({
///     let mut n = 0;
///     move |_event: &Event| n += 1
/// });
/// # let _ = (stop_on_error, count_events);
/// ```
pub struct CallbackSink<F> {
    callback: F,
}

impl<F> std::fmt::Debug for CallbackSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSink").finish_non_exhaustive()
    }
}

impl<F> CallbackSink<F>
where
    F: FnMut(&Event) -> Control + Send + 'static,
{
    /// A sink that calls `callback` for each event; returning [`Control::Cancel`] cancels the run.
    pub fn new(callback: F) -> Self {
        Self { callback }
    }
}

impl CallbackSink<()> {
    /// A sink that calls `callback` for each event and never cancels.
    pub fn observe(
        mut callback: impl FnMut(&Event) + Send + 'static,
    ) -> CallbackSink<impl FnMut(&Event) -> Control + Send + 'static> {
        CallbackSink::new(move |event: &Event| {
            callback(event);
            Control::Continue
        })
    }
}

impl<F> ProgressSink for CallbackSink<F>
where
    F: FnMut(&Event) -> Control + Send + 'static,
{
    fn handle(&mut self, event: &Event) -> Control {
        (self.callback)(event)
    }

    fn name(&self) -> String {
        "callback".into()
    }
}
