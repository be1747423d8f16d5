//! `run`, `run_frames`, `write_sample`, `write_wav` and the cancel handle: the pipeline from
//! Python.

use std::path::{Path, PathBuf};
use std::time::Duration;

use numpy::{PyArray4, PyArrayMethods, PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods};
use pipeline::media_io::{MediaError, Rational};
use pipeline::{
    Inputs, LengthPolicy, OptionKind, OptionValue, PipelineConfig, PipelineError, RawAudio,
    RunOptions, Summary,
};
use progress_core::{CancelToken, Phase};
use pyo3::exceptions::{PyFileNotFoundError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};

use crate::arrays::{FloatFrames, FloatOutput};
use crate::sink::{ErrorSlot, OnError, SinkOptions};
use crate::{Cancelled, FacesyncError, ModelError, OnnxRuntimeMissing};

/// How often the waiting thread wakes up to deliver events, look for Ctrl-C and poll the
/// `interrupted` callable: an interrupt is seen within this time.
const POLL: Duration = Duration::from_millis(20);
/// Events waiting for the calling thread; more block the sink's own thread (never the work).
const EVENT_QUEUE: usize = 256;

/// A cancel handle: pass it as `cancel=` and call `cancel()` from any thread (or a callback);
/// the run stops at its next batch boundary and raises `facesync.Cancelled`.
#[pyclass(frozen, name = "CancelToken", module = "facesync._native")]
#[derive(Debug, Default)]
pub(crate) struct PyCancelToken {
    pub(crate) token: CancelToken,
}

#[pymethods]
impl PyCancelToken {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop. Idempotent; safe from any thread.
    fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether `cancel()` was called.
    #[getter]
    fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    fn __repr__(&self) -> String {
        format!("CancelToken(cancelled={})", self.cancelled())
    }
}

/// The keyword options shared by `run` and `run_frames`, checked before any work.
pub(crate) struct Options {
    pub(crate) config: PipelineConfig,
    sinks: SinkOptions,
    watch: Watch,
    cancel: CancelToken,
    tick: Duration,
    nice: i32,
}

/// What the calling thread does while the run goes on: deliver events to `on_event`, poll
/// `interrupted`.
struct Watch {
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
}

/// The host's keywords of `run` and `run_frames` (how the run reports and stops), beside the
/// run options of `**options`: `console`, `on_event`, `interrupted`, `cancel`, `tick`, `nice`.
type Host<'a> = (
    bool,
    Option<Py<PyAny>>,
    Option<Py<PyAny>>,
    Option<&'a Bound<'a, PyCancelToken>>,
    f64,
    i32,
);

/// The run options from `**options`: each keyword set through [`RunOptions::set`] (the one
/// parser, with the schema's limits), so Python reads the same names, values and errors as the
/// command line and queue jobs. An unknown keyword is a `TypeError` (as Python's own), a bad
/// value a `ValueError` naming the option.
pub(crate) fn run_options(options: Option<&Bound<'_, PyDict>>) -> PyResult<RunOptions> {
    let mut run = RunOptions::default();
    for (key, value) in options.into_iter().flat_map(|d| d.iter()) {
        let name: String = key.extract()?;
        let text;
        let value =
            if value.is_instance_of::<PyBool>() {
                return Err(PyValueError::new_err(format!(
                    "{name}: expected a number or text, got a bool"
                )));
            } else if value.is_instance_of::<PyInt>() {
                OptionValue::Int(value.extract().map_err(|_| {
                    PyValueError::new_err(format!("{name}: {value} is out of range"))
                })?)
            } else if value.is_instance_of::<PyFloat>() {
                OptionValue::Float(value.extract()?)
            } else if let Ok(s) = value.extract::<String>() {
                text = s;
                OptionValue::Text(&text)
            } else {
                return Err(PyTypeError::new_err(format!(
                    "{name}: expected int, float or str, got {}",
                    value.get_type().name()?
                )));
            };
        run.set(&name, value).map_err(|e| {
            if e.unknown {
                PyTypeError::new_err(format!("unexpected keyword argument: {e}"))
            } else {
                PyValueError::new_err(e.to_string())
            }
        })?;
    }
    Ok(run)
}

/// `run` and `run_frames`'s keywords, checked before any work.
pub(crate) fn options(host: Host<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let config = PipelineConfig::from(run_options(options)?);
    let (console, on_event, interrupted, cancel, tick, nice) = host;
    if !(tick.is_finite() && tick > 0.0) {
        return Err(PyValueError::new_err(format!(
            "tick={tick}: expected a positive number of seconds"
        )));
    }
    if !(0..=19).contains(&nice) {
        return Err(PyValueError::new_err(format!(
            "nice={nice}: expected 0 (the caller's priority) to 19 (the lowest)"
        )));
    }
    Ok(Options {
        config,
        sinks: SinkOptions {
            console,
            on_event: None,
            channel: None,
        },
        watch: Watch {
            on_event,
            interrupted,
        },
        cancel: cancel.map(|c| c.get().token.clone()).unwrap_or_default(),
        tick: Duration::from_secs_f64(tick),
        nice,
    })
}

/// The run options as a list of dicts (`name`, `kind`: `int`/`float`/`choice`/`text`,
/// `default`, `min`/`max`, `choices` (the only values, for an `int` that has them), `help`,
/// `value_name`): what a UI builds its inputs from (the ComfyUI node does).
#[pyfunction]
pub(crate) fn options_schema(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyList>> {
    let list = pyo3::types::PyList::empty(py);
    for info in RunOptions::SCHEMA {
        let dict = PyDict::new(py);
        dict.set_item("name", info.name)?;
        dict.set_item("help", info.help)?;
        dict.set_item("value_name", info.value_name)?;
        match info.kind {
            OptionKind::Int {
                default,
                min,
                max,
                only,
            } => {
                dict.set_item("kind", "int")?;
                dict.set_item("default", default)?;
                dict.set_item("min", min)?;
                dict.set_item("max", max)?;
                if !only.is_empty() {
                    dict.set_item("choices", only.to_vec())?;
                }
            }
            OptionKind::Float { default, min, max } => {
                dict.set_item("kind", "float")?;
                dict.set_item("default", default)?;
                dict.set_item("min", min)?;
                dict.set_item("max", max)?;
            }
            OptionKind::Choice { default, choices } => {
                dict.set_item("kind", "choice")?;
                dict.set_item("default", default)?;
                dict.set_item("choices", choices.to_vec())?;
            }
            OptionKind::Text { default } => {
                dict.set_item("kind", "text")?;
                dict.set_item("default", default)?;
            }
            OptionKind::Level {
                default,
                min,
                max,
                off,
            } => {
                dict.set_item("kind", "level")?;
                dict.set_item("default", default)?;
                dict.set_item("min", min)?;
                dict.set_item("max", max)?;
                dict.set_item("off", off)?;
            }
            _ => unreachable!("a kind this binding does not know"),
        }
        list.append(dict)?;
    }
    Ok(list)
}

/// Lowers the calling thread's CPU priority by `nice` (the threads it starts inherit it): on
/// Linux the nice value belongs to a thread, so the caller's other threads keep theirs.
/// Elsewhere `nice` is ignored (there it would apply to the whole process).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // A failure leaves the priority as it was, which is harmless.
        let _ = rustix::process::nice(nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Runs `work` under a "Lip sync" phase on a Rust thread and waits for it on the calling
/// thread with the GIL released, waking every [`POLL`] to take the GIL briefly: it hands the
/// events that arrived to `on_event` (so Python callbacks run on the caller's thread, in its
/// context), polls `interrupted` and checks for signals. `KeyboardInterrupt`, a true
/// `interrupted()` or an exception from `on_event` cancel the run; once it has stopped cleanly
/// the exception is raised (`facesync.Cancelled` for `interrupted`). `work` may borrow from
/// the caller (the thread is scoped), e.g. numpy buffers.
pub(crate) fn run_job<T: Send>(
    py: Python<'_>,
    options: Options,
    work: impl FnOnce(&PipelineConfig, &Phase) -> Result<T, PipelineError> + Send,
) -> PyResult<T> {
    let errors = ErrorSlot::default();
    let Options {
        config,
        mut sinks,
        watch,
        cancel,
        tick,
        nice,
    } = options;
    let events = watch.on_event.is_some().then(|| {
        let (sink, rx) = sinks::ChannelSink::bounded(EVENT_QUEUE);
        sinks.channel = Some(sink);
        rx
    });
    let progress = crate::sink::start(sinks, &OnError::Cancel(errors.clone()), &cancel, tick);
    let job = progress.phase("Lip sync", None, "frames");
    let mut caller = Caller {
        on_event: watch.on_event,
        interrupted: watch.interrupted,
        cancel: cancel.clone(),
        error: None,
        callback_failed: false,
    };
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("facesync-run".into())
                .spawn_scoped(s, || {
                    lower_priority(nice);
                    let result = work(&config, &job);
                    match &result {
                        Ok(_) => job.finish(),
                        Err(e) => job.fail(e),
                    }
                    drop(job);
                    result
                })
                .map_err(|e| {
                    FacesyncError::new_err(format!("cannot start the run's thread: {e}"))
                })?;
            while !worker.is_finished() {
                caller.wait(events.as_ref(), true);
            }
            let result = worker.join();
            // The last events (phases finished, run finished) come with the shutdown, which
            // waits for the sinks: drain them meanwhile.
            let shutdown = s.spawn(|| progress.shutdown());
            while !shutdown.is_finished() {
                caller.wait(events.as_ref(), false);
            }
            caller.wait(events.as_ref(), false);
            let _ = shutdown.join();
            Ok::<_, PyErr>(result)
        })
    })?;
    if let Some(e) = caller.error {
        return Err(e);
    }
    if let Some(e) = errors.take() {
        return Err(e);
    }
    match result {
        Ok(result) => result.map_err(to_py_err),
        Err(_) => Err(FacesyncError::new_err("the run's thread panicked")),
    }
}

/// The calling thread's side of a run (see [`run_job`]).
struct Caller {
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
    cancel: CancelToken,
    /// The first exception: Ctrl-C, or one raised by `on_event` / `interrupted`.
    error: Option<PyErr>,
    /// `on_event` raised: it is not called again (after Ctrl-C it still gets the run's end).
    callback_failed: bool,
}

impl Caller {
    /// Waits up to [`POLL`] for events (without the GIL), then takes the GIL once to deliver
    /// them and, while the run goes on (`polling`), to look for an interrupt.
    fn wait(&mut self, events: Option<&flume::Receiver<progress_core::Event>>, polling: bool) {
        let mut batch = Vec::new();
        match events {
            Some(rx) => {
                if let Ok(event) = rx.recv_timeout(POLL) {
                    batch.push(event);
                    batch.extend(rx.try_iter());
                }
            }
            None => std::thread::sleep(POLL),
        }
        Python::attach(|py| {
            if let Some(callback) = self.on_event.as_ref().map(|c| c.clone_ref(py)) {
                for event in &batch {
                    if self.callback_failed {
                        break;
                    }
                    let result = crate::convert::event_to_py(py, event)
                        .and_then(|dict| callback.bind(py).call1((dict,)));
                    if let Err(e) = result {
                        self.callback_failed = true;
                        self.fail(e);
                    }
                }
            }
            if !polling || self.cancel.is_cancelled() {
                return;
            }
            if let Err(e) = py.check_signals() {
                self.fail(e);
            } else if let Some(flag) = &self.interrupted {
                match flag.bind(py).call0().and_then(|answer| answer.is_truthy()) {
                    Ok(true) => self.cancel.cancel(),
                    Ok(false) => {}
                    Err(e) => self.fail(e),
                }
            }
        });
    }

    fn fail(&mut self, error: PyErr) {
        self.cancel.cancel();
        self.error.get_or_insert(error);
    }
}

pub(crate) fn to_py_err(e: PipelineError) -> PyErr {
    match e {
        PipelineError::Cancelled { .. } => Cancelled::new_err(e.to_string()),
        PipelineError::Config(_) | PipelineError::Options(_) => {
            PyValueError::new_err(e.to_string())
        }
        PipelineError::Model(ref model) => match model.onnx() {
            Some(pipeline::onnx_models::OnnxError::RuntimeMissing { .. }) => {
                OnnxRuntimeMissing::new_err(e.to_string())
            }
            _ => ModelError::new_err(e.to_string()),
        },
        PipelineError::Media(MediaError::NotFound { .. }) => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        e => FacesyncError::new_err(e.to_string()),
    }
}

fn summary_dict<'py>(py: Python<'py>, summary: &Summary) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("output", summary.output.to_string_lossy())?;
    dict.set_item("frames", summary.frames)?;
    dict.set_item("fps", summary.fps.as_f64())?;
    dict.set_item("input_frames", summary.input_frames)?;
    dict.set_item("elapsed", summary.elapsed_secs)?;
    Ok(dict)
}

/// Runs the lip-sync pipeline on `video` and `audio`, writing `out` (`.y4m`, a folder of
/// PNG frames, or any container ffmpeg writes); returns a summary dict.
///
/// The run options are keywords (`**options`): `resolution`, `steps`, `chunk`, `no_face`,
/// `backend`, `length`, `model`, `model_weight`, the same names, values and limits as the
/// command line and queue jobs (`facesync.options_schema()` lists them with their defaults and
/// help). `model` is `"builtin"` (default), `"wav2lip:PATH"`, `"edtalk:PATH"` or
/// `"latentsync:DIR"`; learned models run under ONNX Runtime (`ORT_DYLIB_PATH`, or the
/// `onnxruntime` Python package) and stay loaded for the next runs. An unknown keyword raises
/// `TypeError`, a bad value `ValueError` naming the option, before any work; a model that
/// cannot be loaded raises `FacesyncError` naming its file (`OnnxRuntimeMissing` when ONNX
/// Runtime itself is not found).
///
/// `nice` (0 to 19, default 0) lowers the CPU priority of the run's threads (Linux; ignored
/// elsewhere): a server that calls this keeps its own threads (its event loop) responsive
/// while the run uses every core. The calling thread's priority is left alone.
#[pyfunction]
#[pyo3(signature = (
    video, audio, out, *, console=false, on_event=None, interrupted=None, cancel=None,
    tick=0.1, nice=0, **options
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<'py>(
    py: Python<'py>,
    video: PathBuf,
    audio: PathBuf,
    out: PathBuf,
    console: bool,
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
    cancel: Option<&Bound<'py, PyCancelToken>>,
    tick: f64,
    nice: i32,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let host = (console, on_event, interrupted, cancel, tick, nice);
    let options = self::options(host, options)?;
    let inputs = Inputs { video, audio };
    let summary = run_job(py, options, move |config, job| {
        pipeline::run(config, &inputs, &out, job)
    })?;
    summary_dict(py, &summary)
}

/// The pipeline on frames in memory (what a ComfyUI node has): `frames` is a C-contiguous
/// float32 numpy array `[count, height, width, channels]` of values in 0..1 (channels 1, 3 or
/// 4; alpha is dropped), `audio` a C-contiguous float32 array `[channels, samples]`. Returns a
/// new float32 array `[n, height, width, 3]`, as long as the audio (see `length`).
///
/// Both arrays are borrowed, not copied: the pipeline's decoding thread converts one frame at
/// a time to 8 bits, and its encoding thread converts each finished frame back into the
/// result, all with the GIL released. `on_event` and `interrupted` run on the calling thread,
/// and `model` / `model_weight` choose the lip-sync model (see `run`).
#[pyfunction]
#[pyo3(signature = (
    frames, fps, audio, sample_rate, *, console=false, on_event=None, interrupted=None,
    cancel=None, tick=0.1, nice=0, **options
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_frames<'py>(
    py: Python<'py>,
    frames: PyReadonlyArray4<'py, f32>,
    fps: f64,
    audio: PyReadonlyArray2<'py, f32>,
    sample_rate: u32,
    console: bool,
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
    cancel: Option<&Bound<'py, PyCancelToken>>,
    tick: f64,
    nice: i32,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let [count, height, width, channels] = *frames.shape() else {
        unreachable!("a 4-d array")
    };
    if count == 0 || height == 0 || width == 0 || !matches!(channels, 1 | 3 | 4) {
        return Err(PyValueError::new_err(format!(
            "frames: expected [frames, height, width, channels] with at least one frame and 1, 3 or 4 channels, got {:?}",
            frames.shape()
        )));
    }
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(PyValueError::new_err(format!(
            "frames: {width}x{height} is too large"
        )));
    };
    let pixels = frames.as_slice().map_err(|_| {
        PyValueError::new_err(
            "frames: expected a C-contiguous float32 array (np.ascontiguousarray)",
        )
    })?;
    let [audio_channels, samples] = *audio.shape() else {
        unreachable!("a 2-d array")
    };
    let audio_channels = u16::try_from(audio_channels).unwrap_or(0);
    if audio_channels == 0 || samples == 0 || sample_rate == 0 {
        return Err(PyValueError::new_err(format!(
            "audio: expected [channels, samples] with at least one sample at a positive rate, got {:?} at {sample_rate} Hz",
            audio.shape()
        )));
    }
    let wave = audio.as_slice().map_err(|_| {
        PyValueError::new_err("audio: expected a C-contiguous float32 array (np.ascontiguousarray)")
    })?;
    if !(fps.is_finite() && fps > 0.0) {
        return Err(PyValueError::new_err(format!(
            "fps={fps}: expected a positive number"
        )));
    }
    let host = (console, on_event, interrupted, cancel, tick, nice);
    let options = self::options(host, options)?;
    let fps = if fps.fract() == 0.0 {
        Rational::new(fps as u32, 1)
    } else {
        Rational::new((fps * 1000.0).round() as u32, 1000)
    };
    // The pipeline's own rule (`run_with`): as long as the audio, or the shorter with `trim`.
    let audio_frames = ((samples as f64 / f64::from(sample_rate) * fps.as_f64()) - 1e-6)
        .ceil()
        .max(1.0) as usize;
    let planned = match options.config.options.length {
        LengthPolicy::Loop => audio_frames,
        LengthPolicy::Trim => audio_frames.min(count),
    };
    // Zeroed pages from the allocator: untouched until a frame is written into them.
    let out = PyArray4::<f32>::zeros(py, [planned, height as usize, width as usize, 3], false);
    let written = {
        let mut out_rw = out.readwrite();
        let out_slice = out_rw.as_slice_mut().expect("a new array is contiguous");
        let source = FloatFrames::new(pixels, width, height, channels, fps);
        let sink = FloatOutput::new(out_slice, width, height);
        run_job(py, options, move |config, job| {
            run_arrays(config, job, source, sink, wave, audio_channels, sample_rate)
        })?
    };
    if written == planned {
        Ok(out)
    } else {
        let view = out.call_method1(
            "__getitem__",
            (pyo3::types::PySlice::new(py, 0, written as isize, 1),),
        )?;
        Ok(view.cast_into::<PyArray4<f32>>()?)
    }
}

/// The worker's half of `run_frames`: the pipeline from `source` into `sink`; returns the frames written.
fn run_arrays(
    config: &PipelineConfig,
    job: &Phase,
    mut source: FloatFrames<'_>,
    sink: FloatOutput<'_>,
    wave: &[f32],
    channels: u16,
    sample_rate: u32,
) -> Result<usize, PipelineError> {
    let mut audio = RawAudio::planar(wave, channels, sample_rate, "audio")?;
    let written = sink.counter();
    pipeline::run_with(config, &mut source, &mut audio, Box::new(sink), job)?;
    Ok(written.get())
}

/// Writes `audio`, a C-contiguous float32 array `[channels, samples]` in -1..1, as a 16-bit
/// WAV at `path` (written under a temporary name, then renamed), with the GIL released.
/// 16-bit PCM because every reader takes it: a float WAV carries a channel mask that ffmpeg's
/// AAC encoder refuses for mono.
#[pyfunction]
pub(crate) fn write_wav(
    py: Python<'_>,
    path: PathBuf,
    audio: PyReadonlyArray2<'_, f32>,
    sample_rate: u32,
) -> PyResult<()> {
    let [channels, samples] = *audio.shape() else {
        unreachable!("a 2-d array")
    };
    let Ok(channels) = u16::try_from(channels) else {
        return Err(PyValueError::new_err(format!(
            "audio: {channels} channels is too many"
        )));
    };
    if channels == 0 || sample_rate == 0 {
        return Err(PyValueError::new_err(format!(
            "audio: expected at least one channel at a positive rate, got {channels} at {sample_rate} Hz"
        )));
    }
    let wave = audio.as_slice().map_err(|_| {
        PyValueError::new_err("audio: expected a C-contiguous float32 array (np.ascontiguousarray)")
    })?;
    py.detach(|| wav_file(&path, wave, channels, samples, sample_rate))
        .map_err(to_py_err)
}

fn wav_file(
    path: &Path,
    wave: &[f32],
    channels: u16,
    samples: usize,
    sample_rate: u32,
) -> Result<(), PipelineError> {
    let wav_error = |e: hound::Error| {
        PipelineError::Media(MediaError::Wav {
            path: path.into(),
            reason: e.to_string(),
        })
    };
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".facesync-")
        .suffix(".wav")
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, e))?;
    {
        let mut writer = hound::WavWriter::new(std::io::BufWriter::new(temp.as_file()), spec)
            .map_err(wav_error)?;
        for t in 0..samples {
            for ch in 0..usize::from(channels) {
                let value = wave[ch * samples + t].clamp(-1.0, 1.0) * 32767.0;
                writer
                    .write_sample(value.round() as i16)
                    .map_err(wav_error)?;
            }
        }
        writer.finalize().map_err(wav_error)?;
    }
    temp.persist(path).map_err(|e| io_error(path, e.error))?;
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> PipelineError {
    PipelineError::Io {
        path: path.into(),
        source,
    }
}

/// Writes the built-in sample (a real face photo moved by a smooth head motion, with
/// speech-like audio) as `sample.y4m` + `sample.wav` in `dir`; returns their paths.
#[pyfunction]
#[pyo3(signature = (dir, *, seconds=4.0, size=512, fps=25))]
pub(crate) fn write_sample(
    py: Python<'_>,
    dir: PathBuf,
    seconds: f64,
    size: u32,
    fps: u32,
) -> PyResult<(String, String)> {
    if !(seconds.is_finite() && seconds * f64::from(fps) >= 1.0) || size < 16 {
        return Err(PyValueError::new_err(format!(
            "write_sample: seconds={seconds}, size={size}, fps={fps}: expected at least one frame of at least 16x16"
        )));
    }
    let spec = pipeline::sample::SampleSpec {
        width: size,
        height: size,
        seconds,
        fps,
        ..Default::default()
    };
    let files = py
        .detach(|| pipeline::sample::write_sample(&dir, &spec))
        .map_err(to_py_err)?;
    Ok((
        files.video.to_string_lossy().into_owned(),
        files.audio.to_string_lossy().into_owned(),
    ))
}
