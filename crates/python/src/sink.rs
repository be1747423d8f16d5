//! The sinks a Python caller picks: console, a Python callback.
//!
//! Each Python callable is called from its sink's own thread, which takes the GIL for the
//! call; the work never waits on it (progress-core's isolation), and the thread that started
//! the run must not hold the GIL while it waits for the sinks to finish (see `job`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use progress_core::{CancelToken, Control, Event, Progress, ProgressBuilder};
use pyo3::prelude::*;

use crate::convert::event_to_py;

/// What to do when a Python callback raises.
#[derive(Debug, Clone)]
pub(crate) enum OnError {
    /// Keep the first exception in the slot and cancel the run (`facesync.run`: the exception
    /// is re-raised once the run has stopped).
    Cancel(ErrorSlot),
    /// Report it through `sys.unraisablehook` and go on (`Progress`: a bar has no caller
    /// waiting for a result that could carry the error).
    Report,
}

/// The first exception a Python callback raised during a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorSlot(Arc<Mutex<Option<PyErr>>>);

impl ErrorSlot {
    fn record(&self, error: PyErr) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(error);
    }

    pub(crate) fn take(&self) -> Option<PyErr> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Who watches a run.
#[derive(Debug, Default)]
pub(crate) struct SinkOptions {
    /// Bars on a terminal, plain lines otherwise (`FACESYNC_PROGRESS` overrides).
    pub(crate) console: bool,
    /// Called with each event as a dict.
    pub(crate) on_event: Option<Py<PyAny>>,
    /// Events for the calling thread, which hands them to `on_event` between its waits.
    pub(crate) channel: Option<sinks::ChannelSink>,
}

impl SinkOptions {
    /// Whether any sink is asked for (without one a run needs no dispatcher).
    pub(crate) fn any(&self) -> bool {
        self.console || self.on_event.is_some() || self.channel.is_some()
    }
}

/// Starts a run with these sinks, cancelled through `cancel`.
pub(crate) fn start(
    options: SinkOptions,
    on_error: &OnError,
    cancel: &CancelToken,
    tick: Duration,
) -> Progress {
    let mut builder: ProgressBuilder = Progress::builder().tick(tick).cancel_token(cancel.clone());
    if options.console {
        builder = builder.sink(sinks::ConsoleSink::stderr());
    }
    if let Some(channel) = options.channel {
        builder = builder.sink(channel);
    }
    if let Some(callback) = options.on_event {
        let on_error = on_error.clone();
        builder = builder.sink(sinks::CallbackSink::new(move |event: &Event| {
            Python::attach(|py| {
                let result =
                    event_to_py(py, event).and_then(|dict| callback.bind(py).call1((dict,)));
                match result {
                    Ok(_) => Control::Continue,
                    Err(error) => failed(py, error, &on_error, callback.bind(py)),
                }
            })
        }));
    }
    builder.start()
}

fn failed(py: Python<'_>, error: PyErr, on_error: &OnError, source: &Bound<'_, PyAny>) -> Control {
    match on_error {
        OnError::Cancel(slot) => {
            slot.record(error);
            Control::Cancel
        }
        OnError::Report => {
            error.write_unraisable(py, Some(source));
            Control::Continue
        }
    }
}
