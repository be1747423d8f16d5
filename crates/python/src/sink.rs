//! The sinks a Python caller picks: console, a Python callback, the ComfyUI adapter.
//!
//! Each Python callable is called from its sink's own thread, which takes the GIL for the
//! call; the work never waits on it (progress-core's isolation), and the thread that started
//! the run must not hold the GIL while it waits for the sinks to finish (see `job`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use progress_core::{CancelToken, Control, Event, Progress, ProgressBuilder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sinks::comfy::{ComfyBar, ComfyConfig, ComfyMessage, ComfySink};

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

/// The ComfyUI adapter's settings, from the `comfy=` dict.
#[derive(Debug)]
pub(crate) struct ComfyOptions {
    config: ComfyConfig,
    send: Py<PyAny>,
    interrupted: Option<Py<PyAny>>,
}

const COMFY_KEYS: &str =
    "send, prompt_id, node_id, node_type, interrupted, bar, max, preview_metadata";

impl ComfyOptions {
    /// Reads `{"send": callable, "prompt_id", "node_id", "node_type", "interrupted": callable,
    /// "bar": "run" | phase name, "max": int, "preview_metadata": bool}`; only `send` is
    /// required.
    pub(crate) fn from_dict(dict: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut send = None;
        let mut interrupted = None;
        let mut ids = [String::new(), String::new(), "FacesyncLipSync".to_string()];
        let mut bar = None::<String>;
        let mut max = 100u64;
        let mut metadata = false;
        for (key, value) in dict.iter() {
            let key: String = key.extract()?;
            let bad =
                |what: &str| PyValueError::new_err(format!("comfy['{key}']: expected {what}"));
            match key.as_str() {
                "send" => send = Some(value.unbind()),
                "interrupted" if value.is_none() => {}
                "interrupted" => interrupted = Some(value.unbind()),
                "prompt_id" => ids[0] = value.str()?.to_string(),
                "node_id" => ids[1] = value.str()?.to_string(),
                "node_type" => ids[2] = value.str()?.to_string(),
                "bar" => bar = Some(value.extract().map_err(|_| bad("a string"))?),
                "max" => max = value.extract().map_err(|_| bad("a positive integer"))?,
                "preview_metadata" => {
                    metadata = value.extract().map_err(|_| bad("a bool"))?;
                }
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "comfy: unknown key '{key}' (known: {COMFY_KEYS})"
                    )));
                }
            }
        }
        let send = send.ok_or_else(|| {
            PyValueError::new_err("comfy: needs \"send\", a callable taking str or bytes messages")
        })?;
        if max == 0 {
            return Err(PyValueError::new_err(
                "comfy[\"max\"]: expected a positive integer",
            ));
        }
        let [prompt_id, node_id, node_type] = ids;
        let mut config = ComfyConfig::new(prompt_id, node_id, node_type);
        config.bar = match bar.as_deref() {
            None | Some("run") => ComfyBar::Run { max },
            Some(name) => ComfyBar::PhaseNamed(name.to_string()),
        };
        config.preview_metadata = metadata;
        Ok(Self {
            config,
            send,
            interrupted,
        })
    }
}

/// Who watches a run.
#[derive(Debug, Default)]
pub(crate) struct SinkOptions {
    /// Bars on a terminal, plain lines otherwise (`FACESYNC_PROGRESS` overrides).
    pub(crate) console: bool,
    /// Called with each event as a dict.
    pub(crate) on_event: Option<Py<PyAny>>,
    /// The ComfyUI adapter.
    pub(crate) comfy: Option<ComfyOptions>,
    /// Events for the calling thread, which hands them to `on_event` between its waits.
    pub(crate) channel: Option<sinks::ChannelSink>,
}

impl SinkOptions {
    /// Whether any sink is asked for (without one a run needs no dispatcher).
    pub(crate) fn any(&self) -> bool {
        self.console || self.on_event.is_some() || self.comfy.is_some() || self.channel.is_some()
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
    if let Some(comfy) = options.comfy {
        let ComfyOptions {
            config,
            send,
            interrupted,
        } = comfy;
        let on_error = on_error.clone();
        let token = cancel.clone();
        let mut sink = ComfySink::new(config, move |message: ComfyMessage| {
            Python::attach(|py| {
                let result = match &message {
                    ComfyMessage::Text(text) => send.bind(py).call1((text.as_str(),)),
                    ComfyMessage::Binary(bytes) => send.bind(py).call1((PyBytes::new(py, bytes),)),
                };
                if let Err(error) = result
                    && matches!(failed(py, error, &on_error, send.bind(py)), Control::Cancel)
                {
                    token.cancel();
                }
            });
        });
        if let Some(flag) = interrupted {
            // An exception counts as "interrupted": ComfyUI's
            // `throw_exception_if_processing_interrupted` says so by raising.
            sink = sink.with_interrupt(move || {
                Python::attach(|py| {
                    flag.bind(py)
                        .call0()
                        .and_then(|answer| answer.is_truthy())
                        .unwrap_or(true)
                })
            });
        }
        builder = builder.sink(sink);
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
