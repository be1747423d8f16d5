//! `run`, `run_frames`, `write_sample` and the cancel handle: the pipeline from Python.

use std::path::{Path, PathBuf};
use std::time::Duration;

use frame::Frame;
use pipeline::media_io::{self, MediaError, Rational, ReaderOptions, VideoInfo, VideoReader};
use pipeline::{
    Backend, Inputs, LengthPolicy, NoFacePolicy, PipelineConfig, PipelineError, Summary,
};
use progress_core::{CancelToken, Phase};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::sink::{ComfyOptions, ErrorSlot, OnError, SinkOptions};
use crate::{Cancelled, FacesyncError};

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
}

/// What the calling thread does while the run goes on: deliver events to `on_event`, poll
/// `interrupted`.
struct Watch {
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn options(
    resolution: u32,
    steps: u32,
    chunk: usize,
    no_face: &str,
    backend: &str,
    length: &str,
    console: bool,
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
    comfy: Option<&Bound<'_, PyDict>>,
    cancel: Option<&Bound<'_, PyCancelToken>>,
    tick: f64,
) -> PyResult<Options> {
    let bad = |name: &str, value: &str, expected: &str| {
        PyValueError::new_err(format!("{name}='{value}': expected {expected}"))
    };
    let config = PipelineConfig {
        resolution,
        steps,
        chunk,
        no_face: match no_face {
            "pass" => NoFacePolicy::Pass,
            "error" => NoFacePolicy::Error,
            "interpolate" => NoFacePolicy::Interpolate,
            other => return Err(bad("no_face", other, "'pass', 'error' or 'interpolate'")),
        },
        backend: match backend {
            "auto" => Backend::Auto,
            "gpu" => Backend::Gpu,
            "cpu" => Backend::Cpu,
            other => return Err(bad("backend", other, "'auto', 'gpu' or 'cpu'")),
        },
        length: match length {
            "loop" => LengthPolicy::Loop,
            "trim" => LengthPolicy::Trim,
            other => return Err(bad("length", other, "'loop' or 'trim'")),
        },
        ..PipelineConfig::default()
    };
    config.validate().map_err(to_py_err)?;
    if !(tick.is_finite() && tick > 0.0) {
        return Err(PyValueError::new_err(format!(
            "tick={tick}: expected a positive number of seconds"
        )));
    }
    Ok(Options {
        config,
        sinks: SinkOptions {
            console,
            on_event: None,
            comfy: comfy.map(ComfyOptions::from_dict).transpose()?,
            channel: None,
        },
        watch: Watch {
            on_event,
            interrupted,
        },
        cancel: cancel.map(|c| c.get().token.clone()).unwrap_or_default(),
        tick: Duration::from_secs_f64(tick),
    })
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
    };
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("facesync-run".into())
                .spawn_scoped(s, || {
                    let result = work(&config, &job);
                    match &result {
                        Ok(_) => job.finish(),
                        Err(e) => job.fail(e),
                    }
                    drop(job);
                    result
                })
                .map_err(|e| FacesyncError::new_err(format!("cannot start the run's thread: {e}")))?;
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
                    if self.error.is_some() {
                        break;
                    }
                    let result = crate::convert::event_to_py(py, event)
                        .and_then(|dict| callback.bind(py).call1((dict,)));
                    if let Err(e) = result {
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
        PipelineError::Config(_) => PyValueError::new_err(e.to_string()),
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
#[pyfunction]
#[pyo3(signature = (
    video, audio, out, *, resolution=256, steps=20, chunk=16, no_face="pass", backend="auto",
    length="loop", console=false, on_event=None, interrupted=None, comfy=None, cancel=None,
    tick=0.1
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<'py>(
    py: Python<'py>,
    video: PathBuf,
    audio: PathBuf,
    out: PathBuf,
    resolution: u32,
    steps: u32,
    chunk: usize,
    no_face: &str,
    backend: &str,
    length: &str,
    console: bool,
    on_event: Option<Py<PyAny>>,
    interrupted: Option<Py<PyAny>>,
    comfy: Option<&Bound<'py, PyDict>>,
    cancel: Option<&Bound<'py, PyCancelToken>>,
    tick: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let options = options(
        resolution,
        steps,
        chunk,
        no_face,
        backend,
        length,
        console,
        on_event,
        interrupted,
        comfy,
        cancel,
        tick,
    )?;
    let inputs = Inputs { video, audio };
    let summary = run_job(py, options, move |config, job| {
        pipeline::run(config, &inputs, &out, job)
    })?;
    summary_dict(py, &summary)
}

/// The pipeline on frames in memory (what a ComfyUI node has): `frames` is `count` RGB8
/// frames of `height`×`width` (row-major, `count*height*width*3` bytes), `audio` is
/// `channels`-interleaved float32 samples (native byte order). Returns
/// `(frames_bytes, count)` in the same layout, as long as the audio (see `length`).
///
/// The frames go through a lossless temporary PNG folder and the audio through a float WAV
/// in a temporary directory, removed afterwards: the pipeline streams from files.
#[pyfunction]
#[pyo3(signature = (
    frames, count, height, width, fps, audio, channels, sample_rate, *, resolution=256,
    steps=20, chunk=16, no_face="pass", backend="auto", length="loop", console=false,
    on_event=None, comfy=None, cancel=None, tick=0.1
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_frames<'py>(
    py: Python<'py>,
    frames: Vec<u8>,
    count: usize,
    height: u32,
    width: u32,
    fps: f64,
    audio: Vec<u8>,
    channels: u16,
    sample_rate: u32,
    resolution: u32,
    steps: u32,
    chunk: usize,
    no_face: &str,
    backend: &str,
    length: &str,
    console: bool,
    on_event: Option<Py<PyAny>>,
    comfy: Option<&Bound<'py, PyDict>>,
    cancel: Option<&Bound<'py, PyCancelToken>>,
    tick: f64,
) -> PyResult<(Bound<'py, PyBytes>, u64)> {
    let frame_len = width as usize * height as usize * 3;
    if count == 0 || frame_len == 0 {
        return Err(PyValueError::new_err(format!(
            "frames: expected at least one frame of at least 1x1 pixels, got {count} of {width}x{height}"
        )));
    }
    if frames.len() != count * frame_len {
        return Err(PyValueError::new_err(format!(
            "frames: {count} frames of {width}x{height} RGB8 need {} bytes, got {}",
            count * frame_len,
            frames.len()
        )));
    }
    if channels == 0
        || sample_rate == 0
        || audio.is_empty()
        || !audio.len().is_multiple_of(4 * usize::from(channels))
    {
        return Err(PyValueError::new_err(format!(
            "audio: expected a whole number of float32 samples for {channels} channel(s) at {sample_rate} Hz, got {} bytes",
            audio.len()
        )));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(PyValueError::new_err(format!(
            "fps={fps}: expected a positive number"
        )));
    }
    let options = options(
        resolution, steps, chunk, no_face, backend, length, console, on_event, None, comfy, cancel,
        tick,
    )?;
    let memory = InMemory {
        frames,
        width,
        height,
        fps: if fps.fract() == 0.0 {
            Rational::new(fps as u32, 1)
        } else {
            Rational::new((fps * 1000.0).round() as u32, 1000)
        },
        audio,
        channels,
        sample_rate,
    };
    let (out, n) = run_job(py, options, move |config, job| memory.run(config, job))?;
    Ok((PyBytes::new(py, &out), n))
}

/// Frames and samples handed over by `run_frames`.
struct InMemory {
    frames: Vec<u8>,
    width: u32,
    height: u32,
    fps: Rational,
    audio: Vec<u8>,
    channels: u16,
    sample_rate: u32,
}

impl InMemory {
    fn run(self, config: &PipelineConfig, job: &Phase) -> Result<(Vec<u8>, u64), PipelineError> {
        let dir = tempfile::Builder::new()
            .prefix("facesync-frames-")
            .tempdir()
            .map_err(|e| io_error(&std::env::temp_dir(), e))?;
        let video = dir.path().join("in/");
        let audio = dir.path().join("in.wav");
        let out = dir.path().join("out/");
        let info = VideoInfo {
            width: self.width,
            height: self.height,
            fps: self.fps,
            frame_count: None,
        };
        let mut writer = media_io::VideoWriter::create(&video, &info, &Default::default())?;
        let frame_len = self.width as usize * self.height as usize * 3;
        for data in self.frames.chunks_exact(frame_len) {
            let frame =
                Frame::new(self.width, self.height, data.to_vec()).expect("the length was checked");
            writer.write_frame(&frame)?;
        }
        writer.finish()?;
        self.write_wav(&audio)?;
        drop(self.frames);
        let config = PipelineConfig {
            png_fps: self.fps,
            ..config.clone()
        };
        let inputs = Inputs {
            video,
            audio: audio.clone(),
        };
        let summary = pipeline::run(&config, &inputs, &out, job)?;
        let mut reader = VideoReader::open(&summary.output, &ReaderOptions { png_fps: self.fps })?;
        let mut bytes = Vec::with_capacity(summary.frames as usize * frame_len);
        while let Some(frame) = reader.next_frame()? {
            bytes.extend_from_slice(frame.data());
        }
        Ok((bytes, summary.frames))
    }

    fn write_wav(&self, path: &Path) -> Result<(), PipelineError> {
        let spec = hound::WavSpec {
            channels: self.channels,
            sample_rate: self.sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let wav_error = |e: hound::Error| {
            PipelineError::Media(MediaError::Wav {
                path: path.into(),
                reason: e.to_string(),
            })
        };
        let mut writer = hound::WavWriter::create(path, spec).map_err(wav_error)?;
        for sample in self.audio.chunks_exact(4) {
            let value = f32::from_ne_bytes(sample.try_into().expect("4 bytes"));
            writer.write_sample(value).map_err(wav_error)?;
        }
        writer.finalize().map_err(wav_error)
    }
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
