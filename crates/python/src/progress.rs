//! `Progress`: the tqdm-compatible bar, the speed-critical half (the rest is in
//! `facesync/progress.py`).
//!
//! A bar owns a `progress_core::Progress` run with one phase (or, with `parent=`, is a child
//! phase of another bar's run, shown under it by the same sinks). `update(n)` is one relaxed
//! atomic add on the phase; the class is frozen, so pyo3 takes no borrow flag for it. Iterating
//! a bar goes through [`PyProgressIter`], whose `__next__` is Rust: it counts the previous item
//! (once the loop body is done with it, as tqdm does) and closes the bar at the end.

use std::sync::Mutex;
use std::time::Duration;

use progress_core::{CancelToken, Level, Phase};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator};

use crate::sink::{OnError, SinkOptions};

/// tqdm's display options: accepted so that a tqdm call works unchanged, without effect
/// (facesync's sinks decide how progress is shown).
const TQDM_DISPLAY_OPTIONS: &[&str] = &[
    "leave",
    "file",
    "ncols",
    "mininterval",
    "maxinterval",
    "miniters",
    "ascii",
    "unit_scale",
    "dynamic_ncols",
    "smoothing",
    "bar_format",
    "position",
    "unit_divisor",
    "write_bytes",
    "lock_args",
    "nrows",
    "colour",
    "delay",
    "gui",
];

/// Description override and postfix, shown together as the phase's status text.
#[derive(Debug, Default)]
struct Text {
    description: Option<String>,
    postfix: String,
}

impl Text {
    fn message(&self) -> String {
        match (&self.description, self.postfix.is_empty()) {
            (Some(d), true) => d.clone(),
            (Some(d), false) => format!("{d}: {}", self.postfix),
            (None, _) => self.postfix.clone(),
        }
    }
}

/// A progress bar with tqdm's interface, reporting through progress-core.
#[pyclass(
    frozen,
    subclass,
    weakref,
    name = "Progress",
    module = "facesync._native"
)]
#[derive(Debug)]
pub(crate) struct PyProgress {
    phase: Phase,
    /// The run this bar owns: `None` for a child bar, a disabled one, or once closed.
    run: Mutex<Option<progress_core::Progress>>,
    iterable: Mutex<Option<Py<PyAny>>>,
    desc: String,
    text: Mutex<Text>,
    console: bool,
}

#[pymethods]
impl PyProgress {
    #[new]
    #[pyo3(signature = (
        iterable=None, desc=None, total=None, *, unit="it", initial=0, disable=false,
        console=true, on_event=None, parent=None, tick=0.1, postfix=None, **kwargs
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        iterable: Option<Bound<'_, PyAny>>,
        desc: Option<String>,
        total: Option<Bound<'_, PyAny>>,
        unit: &str,
        initial: u64,
        disable: bool,
        console: bool,
        on_event: Option<Py<PyAny>>,
        parent: Option<&Bound<'_, PyProgress>>,
        tick: f64,
        postfix: Option<Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        if let Some(kwargs) = kwargs {
            for key in kwargs.keys() {
                let key: String = key.extract()?;
                if !TQDM_DISPLAY_OPTIONS.contains(&key.as_str()) {
                    return Err(PyTypeError::new_err(format!(
                        "Progress() got an unexpected keyword argument '{key}'"
                    )));
                }
            }
        }
        if !(tick.is_finite() && tick > 0.0) {
            return Err(PyValueError::new_err(format!(
                "tick={tick}: expected a positive number of seconds"
            )));
        }
        let total = match (total, &iterable) {
            (Some(t), _) if !t.is_none() => total_of(&t)?,
            (_, Some(it)) => it.len().ok().map(|n| n as u64),
            _ => None,
        };
        if parent.is_some() && on_event.is_some() {
            return Err(PyValueError::new_err(
                "a bar with a parent reports through the parent's sinks: give on_event to the parent",
            ));
        }
        let name = desc.unwrap_or_default();
        let sinks = SinkOptions {
            console: console && !disable,
            on_event: on_event.filter(|_| !disable),
            channel: None,
        };
        let (phase, run, console) = match parent {
            Some(parent) => {
                let parent = parent.get();
                (
                    parent.phase.child(name.clone(), total, unit),
                    None,
                    parent.console,
                )
            }
            None if sinks.any() => {
                let console = sinks.console;
                let run = crate::sink::start(
                    sinks,
                    &OnError::Report,
                    &CancelToken::new(),
                    Duration::from_secs_f64(tick),
                );
                let phase = run.phase(name.clone(), total, unit);
                (phase, Some(run), console)
            }
            None => (Phase::detached(name.clone(), total, unit), None, false),
        };
        phase.set(initial);
        let bar = Self {
            phase,
            run: Mutex::new(run),
            iterable: Mutex::new(iterable.map(Bound::unbind)),
            desc: name,
            text: Mutex::default(),
            console,
        };
        if let Some(postfix) = postfix.filter(|p| !p.is_none()) {
            bar.set_postfix_str(&postfix.str()?.to_string_lossy(), true);
        }
        Ok(bar)
    }

    /// Adds `n` units done: one relaxed atomic add.
    #[pyo3(signature = (n=1))]
    fn update(&self, n: u64) {
        self.phase.inc(n);
    }

    /// Units done.
    #[getter]
    fn n(&self) -> u64 {
        self.phase.pos()
    }

    /// Units in all, or `None`.
    #[getter]
    fn get_total(&self) -> Option<u64> {
        self.phase.total()
    }

    #[setter]
    fn set_total(&self, total: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let total = match total {
            Some(t) if !t.is_none() => total_of(&t)?,
            _ => None,
        };
        self.phase.set_total(total);
        Ok(())
    }

    /// The name the bar was created with.
    #[getter]
    fn desc(&self) -> &str {
        &self.desc
    }

    /// Whether this bar's run has a console sink (where `write` sends its lines).
    #[getter]
    fn has_console(&self) -> bool {
        self.console
    }

    /// Whether the bar is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.phase.is_finished()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        if let Some(total) = self.phase.total() {
            return Ok(total as usize);
        }
        match &*lock(&self.iterable) {
            Some(it) => it.bind(py).len(),
            None => Err(PyTypeError::new_err("this Progress has no total")),
        }
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<PyProgressIter> {
        let bar = slf.get();
        let iterable = lock(&bar.iterable).take().ok_or_else(|| {
            PyTypeError::new_err(
                "this Progress has no iterable (or it was iterated already); use update(n)",
            )
        })?;
        let iter = iterable.bind(slf.py()).try_iter()?.unbind();
        Ok(PyProgressIter {
            iter,
            phase: bar.phase.clone(),
            bar: slf.clone().unbind(),
            pending: false,
            done: false,
        })
    }

    /// Ends the bar (completed, at its current count) and, for a bar that owns its run,
    /// flushes every sink and stops the run's threads. Later calls do nothing.
    fn close(&self, py: Python<'_>) {
        self.phase.finish();
        let run = lock(&self.run).take();
        if let Some(run) = run {
            // The sinks' threads take the GIL for Python callbacks: wait for them without it.
            py.detach(|| run.shutdown());
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type=None, exc=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        exc: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if let Some(exc) = exc.filter(|e| !e.is_none()) {
            self.phase.fail(exc.repr()?.to_string_lossy());
        }
        self.close(py);
        Ok(false)
    }

    /// Sets the text shown with the bar's name (tqdm's description; the phase's name stays
    /// the one it was created with).
    #[pyo3(signature = (desc=None, refresh=true))]
    fn set_description(&self, desc: Option<String>, refresh: bool) {
        let _ = refresh;
        let mut text = lock(&self.text);
        text.description = desc.filter(|d| !d.is_empty() && *d != self.desc);
        self.phase.set_message(text.message());
    }

    /// Same as `set_description` (tqdm adds no ": " here either).
    #[pyo3(signature = (desc=None, refresh=true))]
    fn set_description_str(&self, desc: Option<String>, refresh: bool) {
        self.set_description(desc, refresh);
    }

    /// Sets the postfix text (tqdm's `set_postfix_str`).
    #[pyo3(signature = (s="", refresh=true))]
    fn set_postfix_str(&self, s: &str, refresh: bool) {
        let _ = refresh;
        let mut text = lock(&self.text);
        text.postfix = s.to_string();
        self.phase.set_message(text.message());
    }

    /// Starts counting again from 0, optionally with a new total.
    #[pyo3(signature = (total=None))]
    fn reset(&self, total: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.phase.set(0);
        if total.as_ref().is_some_and(|t| !t.is_none()) {
            self.set_total(total)?;
        }
        Ok(())
    }

    /// Nothing to do: the dispatcher redraws on its own tick.
    #[pyo3(signature = (nolock=false))]
    fn refresh(&self, nolock: bool) {
        let _ = nolock;
    }

    /// Nothing to do (sinks own their output).
    #[pyo3(signature = (nolock=false))]
    fn clear(&self, nolock: bool) {
        let _ = nolock;
    }

    /// Sends a message to the bar's sinks (the console prints it above the bars).
    #[pyo3(signature = (text, level="info"))]
    fn message(&self, text: String, level: &str) -> PyResult<()> {
        let level = match level {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            other => {
                return Err(PyValueError::new_err(format!(
                    "level='{other}': expected 'debug', 'info', 'warn' or 'error'"
                )));
            }
        };
        self.phase.message(level, text);
        Ok(())
    }

    fn __repr__(&self) -> String {
        match self.phase.total() {
            Some(total) => format!("Progress({:?}, {}/{})", self.desc, self.phase.pos(), total),
            None => format!("Progress({:?}, {})", self.desc, self.phase.pos()),
        }
    }
}

impl Drop for PyProgress {
    /// A bar dropped unclosed ends as tqdm's does: closed at its current count.
    fn drop(&mut self) {
        self.phase.finish();
        let run = self.run.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(run) = run {
            Python::attach(|py| py.detach(|| run.shutdown()));
        }
    }
}

/// Iterating a [`PyProgress`]: counts each item once the loop asks for the next one.
#[pyclass(name = "ProgressIter", module = "facesync._native")]
#[derive(Debug)]
pub(crate) struct PyProgressIter {
    iter: Py<PyIterator>,
    phase: Phase,
    bar: Py<PyProgress>,
    pending: bool,
    done: bool,
}

#[pymethods]
impl PyProgressIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.pending {
            self.phase.inc(1);
            self.pending = false;
        }
        if self.done {
            return Ok(None);
        }
        match self.iter.bind(py).clone().next() {
            Some(Ok(item)) => {
                self.pending = true;
                Ok(Some(item))
            }
            Some(Err(e)) => Err(e),
            None => {
                self.done = true;
                self.bar.get().close(py);
                Ok(None)
            }
        }
    }
}

/// A total as tqdm takes it: an int, a float (rounded), or `float("inf")` for "unknown".
fn total_of(value: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    if let Ok(n) = value.extract::<u64>() {
        return Ok(Some(n));
    }
    let f: f64 = value
        .extract()
        .map_err(|_| PyTypeError::new_err("total: expected a non-negative number or None"))?;
    match f {
        f if f == f64::INFINITY => Ok(None),
        f if f.is_finite() && f >= 0.0 => Ok(Some(f.round() as u64)),
        f => Err(PyValueError::new_err(format!(
            "total={f}: expected a non-negative number or None"
        ))),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
