//! `facesync._native`: the Python extension module behind the `facesync` package.
//!
//! Why: the tools that need facesync most are Python ones (LatentSync inside ComfyUI freezes
//! the UI, shows no progress and cannot be cancelled). This crate gives them the Rust pipeline
//! and the progress system without a subprocess:
//!
//! - [`run`](job::run) / `run_frames` / `write_sample`: [`pipeline::run`] on a Rust thread
//!   with the GIL released. The calling thread waits in 50 ms slices and checks for signals
//!   between them, so Ctrl-C (`KeyboardInterrupt`) cancels the run through its cancel token,
//!   waits for it to stop cleanly and is then re-raised. Events reach `on_event` as dicts
//!   (the JSON schema v1 of `progress_core::event`) from a sink thread that takes the GIL.
//!   An exception raised by `on_event` (or by `interrupted`) cancels the run and is
//!   re-raised by `run()`: a broken callback never goes unnoticed, and never half-reports a
//!   run that goes on.
//! - `Progress`: a tqdm-compatible bar whose `update(n)` is one relaxed atomic add (frozen
//!   class: no borrow flag) and whose iterator is implemented here, backed by a
//!   `progress_core::Progress` run (10 Hz dispatcher, sinks on their own threads). The Python
//!   side (`facesync/progress.py`) adds what needs no speed (`write`, `set_postfix`).
//! - Sinks chosen per call: the console (`sinks::ConsoleSink::stderr`) and a Python callback
//!   (`on_event`, which a host such as the ComfyUI node turns into its own progress messages;
//!   its interrupt flag goes in as `interrupted`).
//!
//! The module is built by maturin (`crates/python/pyproject.toml`); the Python tests
//! (`crates/python/tests`) are its tests.

// No `unsafe` of our own (pyo3's macros allow theirs in what they generate).
#![deny(unsafe_code)]

mod arrays;
mod convert;
mod job;
mod progress;
mod sink;

use pyo3::prelude::*;

pyo3::create_exception!(
    facesync,
    FacesyncError,
    pyo3::exceptions::PyException,
    "A facesync run failed; the message names the input and the problem."
);
pyo3::create_exception!(
    facesync,
    ModelError,
    FacesyncError,
    "The lip-sync model cannot be loaded (missing file, not ONNX, wrong contract, options that do \
     not fit it); the message names the file."
);
pyo3::create_exception!(
    facesync,
    OnnxRuntimeMissing,
    ModelError,
    "A learned model needs ONNX Runtime and none was found (`pip install onnxruntime`, or \
     ORT_DYLIB_PATH)."
);
pyo3::create_exception!(
    facesync,
    Cancelled,
    FacesyncError,
    "The run was cancelled (cancel handle, a sink, or ComfyUI's interrupt)."
);

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FacesyncError", py.get_type::<FacesyncError>())?;
    m.add("Cancelled", py.get_type::<Cancelled>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("OnnxRuntimeMissing", py.get_type::<OnnxRuntimeMissing>())?;
    m.add("SCHEMA_VERSION", progress_core::SCHEMA_VERSION)?;
    // The workspace's version: the wheel's (maturin takes it from this crate) and the CLI's.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<job::PyCancelToken>()?;
    m.add_class::<progress::PyProgress>()?;
    m.add_class::<progress::PyProgressIter>()?;
    m.add_function(wrap_pyfunction!(job::run, m)?)?;
    m.add_function(wrap_pyfunction!(job::run_frames, m)?)?;
    m.add_function(wrap_pyfunction!(job::write_sample, m)?)?;
    m.add_function(wrap_pyfunction!(job::write_wav, m)?)?;
    m.add_function(wrap_pyfunction!(job::options_schema, m)?)?;
    Ok(())
}
