//! The streaming lip-sync pipeline: decode → face processing → inference → restoration → encode.
//!
//! Why: the reference pipeline decodes the whole video into memory, shows no progress for
//! minutes and cannot be stopped. Here every stage runs on its own thread and hands chunks of
//! frames (16 by default) to the next through a bounded channel of one chunk, so decoding the
//! next chunk overlaps work on this one and memory stays flat however long the video is (the
//! audio, too, is streamed into its mel features rather than decoded whole). Every
//! stage has its own progress phase (frames as units, all created up front with their totals so
//! the whole-run ETA works) and checks the cancel token between chunks, and inside one where a
//! chunk's work is long (decoding, face detection, restoring on the CPU and encoding look
//! before each frame, inference before each step). The output is
//! committed only when everything succeeded (a file is written under a temporary name and
//! renamed).
//!
//! Two entry points:
//! - [`run`]: files in, a file out (Y4M, PNG folders, anything ffmpeg reads or writes).
//! - [`run_with`]: frames from any [`FrameSource`], audio from any [`AudioSource`], frames to
//!   any [`FrameSink`]; what an embedder with frames in memory calls (no temporary file).
//!   [`run`] is a wrapper over it with media-io's [`VideoReader`] and [`VideoWriter`], which
//!   implement the traits; [`RawSource`] and [`RawSink`] do for raw RGB8 memory. The sink's
//!   `finish` is called only after every stage succeeded; on an error or a cancellation it is
//!   dropped unfinished, which discards what it holds. Frame buffers travel back from the
//!   encoder to the decoder, so a source that copies into the buffer it is given does not
//!   allocate per frame.
//!
//! Length policy (as in LatentSync): the output lasts as long as the audio. With
//! [`LengthPolicy::Loop`] (default) a shorter video is played forwards, backwards, forwards…
//! (ping-pong, the frames kept in an anonymous temporary file, not in memory) until the audio
//! ends, and a longer one is cut; with [`LengthPolicy::Trim`] the output stops at the shorter
//! of the two.
//!
//! ```no_run
//! use facesync_pipeline::{Inputs, PipelineConfig, run};
//! use progress_core::Progress;
//!
//! let progress = Progress::new(); // add the sinks of your choice with Progress::builder()
//! let job = progress.phase("Lip sync", None, "frames");
//! let inputs = Inputs { video: "in.y4m".into(), audio: "in.wav".into() };
//! let summary = run(&PipelineConfig::default(), &inputs, "out.mp4".as_ref(), &job)?;
//! job.finish();
//! # Ok::<(), facesync_pipeline::PipelineError>(())
//! ```
//!
//! Frames and samples in memory:
//!
//! ```no_run
//! use facesync_pipeline::{PipelineConfig, RawAudio, RawSink, RawSource, run_with};
//! use facesync_pipeline::media_io::Rational;
//! use progress_core::Phase;
//!
//! let (width, height) = (256, 256);
//! let frames = vec![0u8; 25 * width as usize * height as usize * 3]; // 25 RGB8 frames
//! let samples = vec![0.0f32; 16_000]; // one second of mono audio at 16 kHz
//! let mut source = RawSource::new(&frames, width, height, Rational::new(25, 1), "frames")?;
//! let mut audio = RawAudio::interleaved(&samples, 1, 16_000, "speech")?;
//! let mut out = Vec::new();
//! let job = Phase::detached("Lip sync", None, "frames");
//! let stats = run_with(
//!     &PipelineConfig::default(),
//!     &mut source,
//!     &mut audio,
//!     Box::new(RawSink::new(&mut out)),
//!     &job,
//! )?;
//! assert_eq!(out.len() as u64, stats.frames * 256 * 256 * 3);
//! # Ok::<(), facesync_pipeline::PipelineError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod decode;
mod frames;
mod landmarks;
mod model;
mod options;
pub mod sample;
mod stages;
mod threads;

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use frame::Frame;
use media_io::{
    MediaError, Rational, ReaderOptions, VideoInfo, VideoReader, VideoWriter, WriterOptions,
};
use progress_core::{Level, Phase};

use decode::Decoder;
use threads::{Exit, encode, panicked, pick_error, stage_loop};

/// How faces are aligned to the crop (`face_proc`'s option: the default template, or
/// LatentSync's three mesh points).
pub use face_proc::Alignment;
pub use frames::{AudioSource, FrameSink, FrameSource, RawAudio, RawSink, RawSource};
pub use media_io;
pub use model::{
    ModelError, ModelSpec, PROVIDER_ENV, ParseModelError, build_model, session_options,
};
pub use onnx_models;
pub use options::{
    DEFAULT_SILENCE_DBFS, LengthPolicy, MAX_CHUNK, MAX_STEPS, MIN_SILENCE_DBFS, NoFacePolicy,
    OptionInfo, OptionKind, OptionValue, OptionsError, ParseOptionError, RunOptions,
    SilenceThreshold,
};

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading or writing media failed (names the file).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The run was cancelled; `phase` is the phase that noticed first.
    #[error("cancelled during {phase}")]
    Cancelled {
        /// The phase that stopped.
        phase: String,
    },
    /// A stage failed.
    #[error("{stage}: {message}")]
    Stage {
        /// The stage's phase name.
        stage: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An option is out of its limits ([`RunOptions::validate`]).
    #[error("invalid configuration: {0}")]
    Options(#[from] OptionsError),
    /// The lip-sync model cannot be loaded (names the file and the problem: missing, not
    /// ONNX, wrong inputs, runtime missing or too old, provider unavailable); typed, so that a
    /// caller can tell e.g. a missing ONNX Runtime ([`ModelError::onnx`]) from a bad file.
    #[error("lip-sync model: {0}")]
    Model(#[from] ModelError),
    /// A frame source or sink other than a file failed, or holds unusable frames (names it).
    #[error("{name}: {message}")]
    Frames {
        /// The source's or sink's name ([`FrameSource::name`]).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A file-system error outside media decoding.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl PipelineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Which compute device the stages use: the one backend type of the workspace, owned by `gpu`
/// (`auto` (default): a hardware GPU adapter if one exists, else the CPU, skipping a software
/// adapter such as lavapipe; `gpu`: any adapter, software included, or an error; `cpu`: the CPU
/// paths). Parses from and prints as `auto`, `gpu`, `cpu`.
pub use gpu::{BackendChoice as Backend, ParseBackendError};

/// Settings of a run: the [`RunOptions`] every front end takes, and what only the host that
/// runs it knows (its files, its ONNX Runtime).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The run's options (model, crop size, steps, chunk, policies, backend).
    pub options: RunOptions,
    /// Frame rate assumed for a PNG-folder input.
    pub png_fps: Rational,
    /// Chroma layout when writing Y4M.
    pub y4m_chroma: media_io::Y4mChroma,
    /// The ONNX Runtime library for learned models (default: `ORT_DYLIB_PATH`, else an
    /// installed `onnxruntime` Python package).
    pub onnx_runtime: Option<PathBuf>,
    /// Where to write the faces the run used (one JSON line per frame: box, score, frame →
    /// crop map, and FaceFusion's 5, the 68 and the 468 mesh points in frame pixels), renamed
    /// into place only when the run succeeds; `None` (default): not written.
    pub landmarks_out: Option<PathBuf>,
    /// How faces are aligned to the crop (default: the template). A `latentsync:` model always
    /// gets [`Alignment::LatentSync`], the alignment it was trained on, and `wav2lip:` and
    /// `edtalk:` models FaceFusion's [`Alignment::Ffhq512`] at R = 512, what FaceFusion feeds
    /// them.
    pub alignment: Alignment,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        RunOptions::default().into()
    }
}

impl From<RunOptions> for PipelineConfig {
    /// The options with the host's defaults: PNG folders at 25 fps, 4:2:0 Y4M, ONNX Runtime
    /// found as [`PipelineConfig::onnx_runtime`] says, no landmark file, the template alignment.
    fn from(options: RunOptions) -> Self {
        Self {
            options,
            png_fps: Rational::new(25, 1),
            y4m_chroma: media_io::Y4mChroma::C420,
            onnx_runtime: None,
            landmarks_out: None,
            alignment: Alignment::Template,
        }
    }
}

impl PipelineConfig {
    /// Checks the settings that [`run`] would reject ([`RunOptions::validate`]), without
    /// touching any file: a caller can refuse bad options before doing any work.
    pub fn validate(&self) -> Result<(), PipelineError> {
        Ok(self.options.validate()?)
    }
}

/// The job's inputs.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// A video file (Y4M, or any container ffmpeg reads) or a folder of PNG frames.
    pub video: PathBuf,
    /// An audio file (WAV, or any format ffmpeg reads).
    pub audio: PathBuf,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Where the output is.
    pub output: PathBuf,
    /// Frames written.
    pub frames: u64,
    /// Frames per second of the output (the input's).
    pub fps: Rational,
    /// Frames in the input video (decoded, before looping or trimming).
    pub input_frames: u64,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
}

/// What [`run_with`] streamed.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// Frames written to the sink.
    pub frames: u64,
    /// Frames per second of the output (the source's).
    pub fps: Rational,
    /// Frames read from the source (before looping or trimming).
    pub input_frames: u64,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
}

/// A run of consecutive frames travelling through the stages together.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Output index of the first frame.
    pub(crate) start: u64,
    pub(crate) frames: Vec<Frame>,
    pub(crate) faces: Vec<stages::FaceInfo>,
}

/// Phase names, in pipeline order.
pub(crate) const DECODING: &str = "Decoding";
pub(crate) const FACES: &str = "Processing faces";
pub(crate) const INFERENCE: &str = "Doing inference";
pub(crate) const RESTORING: &str = "Restoring faces";
pub(crate) const ENCODING: &str = "Encoding";

/// Runs the whole job on files, reporting under `parent` (one child phase per stage) and
/// honouring its cancel token. On any error or cancellation nothing is left at `output`.
///
/// The convenient wrapper over [`run_with`]: opens `inputs.video` as a [`VideoReader`], streams
/// `inputs.audio` into its features ([`audio_features`]), writes `output` with a
/// [`VideoWriter`] (the audio muxed in for an ffmpeg container).
pub fn run(
    config: &PipelineConfig,
    inputs: &Inputs,
    output: &Path,
    parent: &Phase,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    config.validate()?;
    let mut reader = VideoReader::open(
        &inputs.video,
        &ReaderOptions {
            png_fps: config.png_fps,
        },
    )?;
    let mut audio = media_io::AudioReader::open(&inputs.audio)?;
    let writer = VideoWriter::create(
        output,
        &VideoInfo {
            frame_count: None,
            ..reader.info().clone()
        },
        &WriterOptions {
            y4m_chroma: config.y4m_chroma,
            audio: Some(inputs.audio.clone()),
        },
    )?;
    let stats = run_with(config, &mut reader, &mut audio, Box::new(writer), parent)?;
    Ok(Summary {
        output: output.to_path_buf(),
        frames: stats.frames,
        fps: stats.fps,
        input_frames: stats.input_frames,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// Runs the whole job from `source` to `sink` with the model `config.options.model` names, reporting
/// under `parent` (one child phase per stage) and honouring its cancel token.
///
/// Picks the compute device (see [`gpu::GpuOptions::resolve`] for the backend's precedence),
/// loads the model ([`build_model`], cached per process), then calls [`run_with_model`].
/// `audio` is read to its end, block by block, into the features the built-in stages and the
/// model need (its samples are never held whole); the output lasts as long as the audio (see
/// the crate docs for the length policy) at the source's frame rate and size.
/// `sink.finish()` is called only after every stage succeeded; on an error or a cancellation
/// the sink is dropped unfinished. `config.png_fps` and `config.y4m_chroma` are the file
/// wrapper's and play no part here.
pub fn run_with(
    config: &PipelineConfig,
    source: &mut dyn FrameSource,
    audio: &mut dyn AudioSource,
    sink: Box<dyn FrameSink + '_>,
    parent: &Phase,
) -> Result<RunStats, PipelineError> {
    config.validate()?;
    let compute = stages::compute(config, parent)?;
    let model = build_model(config, &compute, parent)?;
    run_with_model(config, source, audio, sink, parent, &compute, model)
}

/// [`run_with`] with the lip-sync model given as a value: any [`infer::LipSyncModel`] wrapped
/// in an [`infer::Inferencer`] (see [`build_model`] for the ones `config.options.model` names), on the
/// compute device the other stages use. `config.options.model` is read only for the crop the model
/// needs (LatentSync's alignment, or FaceFusion's `ffhq_512` crop at 512 for Wav2Lip and
/// EDTalk): name the model there too.
pub fn run_with_model(
    config: &PipelineConfig,
    source: &mut dyn FrameSource,
    audio: &mut dyn AudioSource,
    sink: Box<dyn FrameSink + '_>,
    parent: &Phase,
    compute: &gpu::Compute,
    model: Box<dyn infer::ChunkRunner>,
) -> Result<RunStats, PipelineError> {
    let started = Instant::now();
    config.validate()?;
    let info = source.info();
    if info.width == 0 || info.height == 0 || info.fps.num == 0 || info.fps.den == 0 {
        return Err(PipelineError::Frames {
            name: source.name(),
            message: format!(
                "{}x{} frames at {} fps cannot be processed",
                info.width, info.height, info.fps
            ),
        });
    }
    let audio = stages::audio_features(audio, model.as_ref())?;
    let fps = info.fps.as_f64();
    let audio_frames = ((audio.duration_secs() * fps) - 1e-6).ceil().max(1.0) as u64;
    let planned = match (config.options.length, info.frame_count) {
        (LengthPolicy::Loop, _) => audio_frames,
        (LengthPolicy::Trim, Some(n)) => n.min(audio_frames),
        (LengthPolicy::Trim, None) => audio_frames,
    };
    // Decoding and encoding are cheap next to the three stages: weigh them less in the run ETA.
    let phases: Vec<Phase> = [
        (DECODING, 0.2),
        (FACES, 1.0),
        (INFERENCE, 1.0),
        (RESTORING, 1.0),
        (ENCODING, 0.3),
    ]
    .iter()
    .map(|&(name, weight)| parent.child_weighted(name, Some(planned), "frames", weight))
    .collect();

    let landmarks = match &config.landmarks_out {
        Some(path) => Some(std::sync::Arc::new(std::sync::Mutex::new(
            landmarks::LandmarkLog::create(path)?,
        ))),
        None => None,
    };
    let mut faces = stages::FaceStage::new(compute, config)?;
    faces.log_to(landmarks.clone());
    let mut infer =
        stages::InferStage::new(model, audio, fps, planned, config.options.silence_threshold)?;
    if let (Some(gate), SilenceThreshold::Dbfs(db)) =
        (infer.silence(), config.options.silence_threshold)
    {
        parent.message(
            Level::Info,
            format!(
                "silence gate: {} of {} frames silent (speech band below {db} dBFS): the model \
                 gets its silence input there",
                gate.silent_frames(),
                gate.len()
            ),
        );
    }
    let mut restore = stages::RestoreStage::new(compute, config)?;

    let (tx_dec, rx_face) = sync_channel::<Chunk>(1);
    let (tx_face, rx_infer) = sync_channel::<Chunk>(1);
    let (tx_infer, rx_restore) = sync_channel::<Chunk>(1);
    let (tx_restore, rx_enc) = sync_channel::<Chunk>(1);
    // Written frames go back to the decoder to be filled again (one chunk's worth waits at
    // most; the rest are dropped), so a source that copies into its buffer does not allocate.
    let (tx_spare, rx_spare) = sync_channel::<Vec<Frame>>(1);
    let decode_job = Decoder {
        name: source.name(),
        source,
        info: info.clone(),
        spare: rx_spare,
        planned,
        policy: config.options.length,
        chunk: config.options.chunk,
    };
    let mut finished_sink = None;
    let results = std::thread::scope(|s| {
        let p = &phases;
        let dec = s.spawn(move || decode_job.run(&p[0], tx_dec));
        let fc = s.spawn(move || {
            stage_loop(FACES, &p[1], rx_face, tx_face, |c, ph| faces.process(c, ph))
        });
        let inf = s.spawn(move || {
            stage_loop(INFERENCE, &p[2], rx_infer, tx_infer, |c, ph| {
                infer.process(c, ph)
            })
        });
        let rst = s.spawn(move || {
            stage_loop(RESTORING, &p[3], rx_restore, tx_restore, |c, ph| {
                restore.process(c, ph)
            })
        });
        let enc = s.spawn(move || encode(&p[4], rx_enc, sink, tx_spare));
        [dec, fc, inf, rst]
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked())))
            .into_iter()
            .chain(std::iter::once(
                enc.join()
                    .unwrap_or_else(|_| Err(panicked()))
                    .map(|(frames, sink)| {
                        finished_sink = Some(sink);
                        frames
                    }),
            ))
            .collect::<Vec<Result<u64, Exit>>>()
    });
    let counts = pick_error(results, &phases, parent)?;
    // Committed only once every stage succeeded: a stage that failed part-way (a video corrupt
    // after some frames) closes its channel like a finished one, and the encoder alone cannot
    // tell the two apart.
    let sink = finished_sink.expect("the encoder succeeded");
    match sink.finish() {
        Ok(()) => {
            phases[4].set_total(Some(counts[4]));
            phases[4].finish();
        }
        Err(e) => {
            phases[4].fail(&e);
            return Err(e);
        }
    }
    if let Some(log) = landmarks {
        let log = std::sync::Arc::try_unwrap(log)
            .expect("the face stage has ended")
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        log.commit()?;
    }
    let (input_frames, frames) = (counts[0], counts[4]);
    Ok(RunStats {
        frames,
        fps: info.fps,
        input_frames,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}
