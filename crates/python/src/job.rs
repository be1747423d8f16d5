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

/// How often the waiting thread wakes up to look for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

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
struct Options {
    config: PipelineConfig,
    sinks: SinkOptions,
    cancel: CancelToken,
    tick: Duration,
}

#[allow(clippy::too_many_arguments)]
fn options(
    resolution: u32,
    steps: u32,
    chunk: usize,
    no_face: &str,
    backend: &str,
    length: &str,
    console: bool,
    on_event: Option<Py<PyAny>>,
    comfy: Option<&Bound<'_, PyDict>>,
    cancel: Option<&Bound<'_, PyCancelToken>>,
    tick: f64,
) -> PyResult<Options> {
    let bad = |name: &str, e: &dyn std::fmt::Display| PyValueError::new_err(format!("{name}: {e}"));
    let config = PipelineConfig {
        resolution,
        steps,
        chunk,
        no_face: no_face.parse().map_err(|e| bad("no_face", &e))?,
        backend: backend.parse().map_err(|e| bad("backend", &e))?,
        length: length.parse().map_err(|e| bad("length", &e))?,
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
            on_event,
            comfy: comfy.map(ComfyOptions::from_dict).transpose()?,
        },
        cancel: cancel.map(|c| c.get().token.clone()).unwrap_or_default(),
        tick: Duration::from_secs_f64(tick),
    })
}

/// Runs `work` under a "Lip sync" phase on a Rust thread, the GIL released, and waits for it
/// on the calling thread in short slices, checking for signals between them: on
/// `KeyboardInterrupt` the run is cancelled, finishes cleanly, and the interrupt is re-raised.
fn run_job<T: Send + 'static>(
    py: Python<'_>,
    options: Options,
    work: impl FnOnce(&PipelineConfig, &Phase) -> Result<T, PipelineError> + Send + 'static,
) -> PyResult<T> {
    let errors = ErrorSlot::default();
    let progress = crate::sink::start(
        options.sinks,
        &OnError::Cancel(errors.clone()),
        &options.cancel,
        options.tick,
    );
    let job = progress.phase("Lip sync", None, "frames");
    let config = options.config;
    let (tx, rx) = flume::bounded(1);
    let worker = std::thread::Builder::new()
        .name("facesync-run".into())
        .spawn(move || {
            let result = work(&config, &job);
            match &result {
                Ok(_) => job.finish(),
                Err(e) => job.fail(e),
            }
            let _ = tx.send(());
            result
        })
        .map_err(|e| FacesyncError::new_err(format!("cannot start the run's thread: {e}")))?;
    let mut interrupt = None;
    while py.detach(|| rx.recv_timeout(SIGNAL_POLL)) == Err(flume::RecvTimeoutError::Timeout) {
        if interrupt.is_none()
            && let Err(e) = py.check_signals()
        {
            options.cancel.cancel();
            interrupt = Some(e);
        }
    }
    let result = py.detach(|| {
        let result = worker.join();
        // Joins the sink threads, which take the GIL for the Python callbacks.
        progress.shutdown();
        result
    });
    if let Some(e) = interrupt {
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
    length="loop", console=false, on_event=None, comfy=None, cancel=None, tick=0.1
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
    comfy: Option<&Bound<'py, PyDict>>,
    cancel: Option<&Bound<'py, PyCancelToken>>,
    tick: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let options = options(
        resolution, steps, chunk, no_face, backend, length, console, on_event, comfy, cancel, tick,
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
        resolution, steps, chunk, no_face, backend, length, console, on_event, comfy, cancel, tick,
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
