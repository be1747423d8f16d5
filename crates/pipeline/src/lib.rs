//! The streaming lip-sync pipeline: decode → face processing → inference → restoration → encode.
//!
//! Why: the reference pipeline decodes the whole video into memory, shows no progress for
//! minutes and cannot be stopped. Here every stage runs on its own thread and hands chunks of
//! frames (16 by default) to the next through a bounded channel of one chunk, so decoding the
//! next chunk overlaps work on this one and memory stays flat however long the video is (the
//! audio, too, is streamed into its mel features rather than decoded whole). Every
//! stage has its own progress phase (frames as units, all created up front with their totals so
//! the whole-run ETA works) and checks the cancel token between chunks. The output is written
//! under a temporary name and renamed only when everything succeeded.
//!
//! Length policy (as in LatentSync): the output lasts as long as the audio. With
//! [`LengthPolicy::Loop`] (default) a shorter video is played forwards, backwards, forwards…
//! (ping-pong) until the audio ends, and a longer one is cut; with [`LengthPolicy::Trim`] the
//! output stops at the shorter of the two.
//!
//! ```no_run
//! use pipeline::{Inputs, PipelineConfig, run};
//! use progress_core::Progress;
//!
//! let progress = Progress::new(); // add the sinks of your choice with Progress::builder()
//! let job = progress.phase("Lip sync", None, "frames");
//! let inputs = Inputs { video: "in.y4m".into(), audio: "in.wav".into() };
//! let summary = run(&PipelineConfig::default(), &inputs, "out.mp4".as_ref(), &job)?;
//! job.finish();
//! # Ok::<(), pipeline::PipelineError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod sample;
mod stages;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use frame::Frame;
use media_io::{
    MediaError, Rational, ReaderOptions, VideoInfo, VideoReader, VideoWriter, WriterOptions,
};
use progress_core::Phase;

/// How faces are aligned to the crop (`face_proc`'s option: the default template, or
/// LatentSync's three mesh points).
pub use face_proc::Alignment;
pub use media_io;

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

/// What to do with a frame in which no usable face is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoFacePolicy {
    /// Copy the frame through untouched (default).
    #[default]
    Pass,
    /// Stop the run with an error.
    Error,
    /// Give the frame a transform from its neighbours with a face, for gaps of up to 12
    /// frames (longer gaps pass through): blended linearly between the faces on either side
    /// when both are in the same chunk, else the last face's transform held.
    Interpolate,
}

/// Which compute device the stages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// A hardware GPU adapter if one exists, else the CPU (default). A software adapter
    /// (lavapipe) is skipped: the CPU paths are faster than shaders emulated on the same cores.
    #[default]
    Auto,
    /// The GPU (a software adapter such as lavapipe counts).
    Gpu,
    /// The CPU path.
    Cpu,
}

/// How video and audio lengths are reconciled; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthPolicy {
    /// Output as long as the audio: a shorter video plays ping-pong, a longer one is cut.
    #[default]
    Loop,
    /// Output as long as the shorter of video and audio.
    Trim,
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Face crop size: 256 or 512.
    pub resolution: u32,
    /// Refinement steps of the inference model.
    pub steps: u32,
    /// Frames per chunk (the unit of streaming, inference and cancellation).
    pub chunk: usize,
    /// Frames without a face.
    pub no_face: NoFacePolicy,
    /// Compute device.
    pub backend: Backend,
    /// Video/audio length policy.
    pub length: LengthPolicy,
    /// Frame rate assumed for a PNG-folder input.
    pub png_fps: Rational,
    /// Chroma layout when writing Y4M.
    pub y4m_chroma: media_io::Y4mChroma,
    /// How faces are aligned to the crop ([`Alignment::LatentSync`] for the LatentSync model).
    pub alignment: Alignment,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            resolution: 256,
            steps: 20,
            chunk: 16,
            no_face: NoFacePolicy::Pass,
            backend: Backend::Auto,
            length: LengthPolicy::Loop,
            png_fps: Rational::new(25, 1),
            y4m_chroma: media_io::Y4mChroma::C420,
            alignment: Alignment::Template,
        }
    }
}

impl PipelineConfig {
    /// Checks the settings that [`run`] would reject, without touching any file: a caller can
    /// refuse bad options before doing any work.
    pub fn validate(&self) -> Result<(), PipelineError> {
        if self.chunk == 0 {
            return Err(PipelineError::Config(
                "the chunk size must be at least 1".into(),
            ));
        }
        if self.resolution != 256 && self.resolution != 512 {
            return Err(PipelineError::Config(format!(
                "resolution {} is not supported (256 or 512)",
                self.resolution
            )));
        }
        Ok(())
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

/// Runs the whole job, reporting under `parent` (one child phase per stage) and honouring its
/// cancel token. On any error or cancellation nothing is left at `output`.
pub fn run(
    config: &PipelineConfig,
    inputs: &Inputs,
    output: &Path,
    parent: &Phase,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    config.validate()?;
    let reader = VideoReader::open(
        &inputs.video,
        &ReaderOptions {
            png_fps: config.png_fps,
        },
    )?;
    let info = reader.info().clone();
    let audio = stages::audio_features(&inputs.audio)?;
    let fps = info.fps.as_f64();
    let audio_frames = ((audio.duration_secs() * fps) - 1e-6).ceil().max(1.0) as u64;
    let planned = match (config.length, info.frame_count) {
        (LengthPolicy::Loop, _) => audio_frames,
        (LengthPolicy::Trim, Some(n)) => n.min(audio_frames),
        (LengthPolicy::Trim, None) => audio_frames,
    };
    let phases: Vec<Phase> = [DECODING, FACES, INFERENCE, RESTORING, ENCODING]
        .iter()
        .map(|name| parent.child(*name, Some(planned), "frames"))
        .collect();
    // Decoding and encoding are cheap next to the three stages: weigh them less in the run ETA.
    phases[0].set_weight(0.2);
    phases[4].set_weight(0.3);

    let compute = stages::compute(config, parent)?;
    let mut faces = stages::FaceStage::new(&compute, config)?;
    let mut infer = stages::InferStage::new(&compute, config, audio, fps, planned)?;
    let mut restore = stages::RestoreStage::new(&compute, config)?;
    let writer = VideoWriter::create(
        output,
        &VideoInfo {
            frame_count: None,
            ..info.clone()
        },
        &WriterOptions {
            y4m_chroma: config.y4m_chroma,
            audio: Some(inputs.audio.clone()),
        },
    )?;

    let (tx_dec, rx_face) = sync_channel::<Chunk>(1);
    let (tx_face, rx_infer) = sync_channel::<Chunk>(1);
    let (tx_infer, rx_restore) = sync_channel::<Chunk>(1);
    let (tx_restore, rx_enc) = sync_channel::<Chunk>(1);
    let decode_job = Decoder {
        reader,
        path: inputs.video.clone(),
        planned,
        policy: config.length,
        chunk: config.chunk,
    };
    let mut finished_writer = None;
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
        let enc = s.spawn(move || encode(&p[4], rx_enc, writer));
        [dec, fc, inf, rst]
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked())))
            .into_iter()
            .chain(std::iter::once(
                enc.join()
                    .unwrap_or_else(|_| Err(panicked()))
                    .map(|(frames, writer)| {
                        finished_writer = Some(writer);
                        frames
                    }),
            ))
            .collect::<Vec<Result<u64, Exit>>>()
    });
    let counts = pick_error(results, &phases, parent)?;
    // Committed only once every stage succeeded: a stage that failed part-way (a video corrupt
    // after some frames) closes its channel like a finished one, and the encoder alone cannot
    // tell the two apart.
    let writer = finished_writer.expect("the encoder succeeded");
    match writer.finish() {
        Ok(_) => {
            phases[4].set_total(Some(counts[4]));
            phases[4].finish();
        }
        Err(e) => {
            phases[4].fail(&e);
            return Err(e.into());
        }
    }
    let (input_frames, frames) = (counts[0], counts[4]);
    Ok(Summary {
        output: output.to_path_buf(),
        frames,
        fps: info.fps,
        input_frames,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

/// How a stage thread ended, other than normally.
#[derive(Debug)]
enum Exit {
    /// The neighbouring stage went away (it failed or was cancelled): not a cause in itself.
    Disconnected,
    Error(PipelineError),
}

impl From<PipelineError> for Exit {
    fn from(e: PipelineError) -> Self {
        Exit::Error(e)
    }
}

impl From<MediaError> for Exit {
    fn from(e: MediaError) -> Self {
        Exit::Error(e.into())
    }
}

fn panicked() -> Exit {
    Exit::Error(PipelineError::Stage {
        stage: "pipeline".into(),
        message: "a stage thread panicked".into(),
    })
}

fn cancelled(phase: &Phase, name: &str) -> Result<(), Exit> {
    phase.check().map_err(|_| {
        Exit::Error(PipelineError::Cancelled {
            phase: name.to_string(),
        })
    })
}

/// The root cause among the stages' results: cancellation first, then the earliest stage's
/// error. Marks failed phases.
fn pick_error(
    results: Vec<Result<u64, Exit>>,
    phases: &[Phase],
    parent: &Phase,
) -> Result<Vec<u64>, PipelineError> {
    let mut cancelled_in = None;
    for (result, phase) in results.iter().zip(phases) {
        if let Err(Exit::Error(e)) = result {
            phase.fail(e);
            if let (PipelineError::Cancelled { phase }, None) = (e, &cancelled_in) {
                cancelled_in = Some(phase.clone());
            }
        }
    }
    if parent.cancel_token().is_cancelled() {
        return Err(PipelineError::Cancelled {
            phase: cancelled_in.unwrap_or_else(|| "the run".into()),
        });
    }
    let mut counts = Vec::with_capacity(results.len());
    let mut disconnected = false;
    for result in results {
        match result {
            Ok(n) => counts.push(n),
            Err(Exit::Error(e)) => return Err(e),
            Err(Exit::Disconnected) => disconnected = true,
        }
    }
    if disconnected {
        return Err(PipelineError::Stage {
            stage: "pipeline".into(),
            message: "a stage stopped without an error".into(),
        });
    }
    Ok(counts)
}

/// Receives chunks, runs `work` on each, passes them on; cancel check between chunks.
fn stage_loop(
    name: &str,
    phase: &Phase,
    rx: Receiver<Chunk>,
    tx: SyncSender<Chunk>,
    mut work: impl FnMut(&mut Chunk, &Phase) -> Result<(), PipelineError>,
) -> Result<u64, Exit> {
    let mut n = 0;
    for mut chunk in rx {
        cancelled(phase, name)?;
        work(&mut chunk, phase)?;
        n += chunk.frames.len() as u64;
        tx.send(chunk).map_err(|_| Exit::Disconnected)?;
    }
    if n < phase.total().unwrap_or(0) && phase.cancel_token().is_cancelled() {
        return Err(Exit::Error(PipelineError::Cancelled { phase: name.into() }));
    }
    phase.set_total(Some(n));
    phase.finish();
    Ok(n)
}

/// Writes every chunk; returns the frame count and the writer, not yet finished (see `run`).
fn encode(
    phase: &Phase,
    rx: Receiver<Chunk>,
    mut writer: VideoWriter,
) -> Result<(u64, VideoWriter), Exit> {
    let mut n = 0;
    for chunk in rx {
        cancelled(phase, ENCODING)?;
        for frame in &chunk.frames {
            writer.write_frame(frame)?;
        }
        n += chunk.frames.len() as u64;
        phase.inc(chunk.frames.len() as u64);
    }
    let expected = phase.total().unwrap_or(0);
    if n == 0 || (n < expected && phase.cancel_token().is_cancelled()) {
        // Upstream stopped early; the writer's temporary output is dropped (removed).
        return Err(Exit::Disconnected);
    }
    cancelled(phase, ENCODING)?;
    Ok((n, writer))
}

/// The decoding stage: reads frames, applies the length policy, sends chunks.
struct Decoder {
    reader: VideoReader,
    path: PathBuf,
    planned: u64,
    policy: LengthPolicy,
    chunk: usize,
}

impl Decoder {
    /// Returns the number of frames decoded from the input.
    fn run(mut self, phase: &Phase, tx: SyncSender<Chunk>) -> Result<u64, Exit> {
        let info = self.reader.info().clone();
        // Looping needs the frames again, backwards: keep them on disk, not in memory.
        let needs_spool =
            self.policy == LengthPolicy::Loop && info.frame_count.is_none_or(|n| n < self.planned);
        let mut spool = needs_spool
            .then(|| Spool::new(&info))
            .transpose()
            .map_err(|e| Exit::Error(PipelineError::io(&std::env::temp_dir(), e)))?;
        let mut decoded: u64 = 0;
        let mut source_done = false;
        let mut out_index: u64 = 0;
        let mut chunk = Vec::with_capacity(self.chunk);
        let mut chunk_start = 0;
        while out_index < self.planned {
            let frame = if !source_done {
                match self.reader.next_frame()? {
                    Some(f) => {
                        decoded += 1;
                        if let Some(s) = spool.as_mut() {
                            s.push(&f)
                                .map_err(|e| Exit::Error(PipelineError::io(&self.path, e)))?;
                        }
                        Some(f)
                    }
                    None => {
                        source_done = true;
                        if decoded == 0 {
                            return Err(MediaError::NoFrames {
                                path: self.path.clone(),
                            }
                            .into());
                        }
                        None
                    }
                }
            } else {
                None
            };
            let frame = match (frame, spool.as_mut()) {
                (Some(f), _) => f,
                (None, Some(s)) if self.policy == LengthPolicy::Loop => {
                    // Ping-pong: 0 1 … L-1 L-1 … 0 0 1 …
                    let l = decoded;
                    let k = out_index % (2 * l);
                    let src = if k < l { k } else { 2 * l - 1 - k };
                    s.get(src)
                        .map_err(|e| Exit::Error(PipelineError::io(&self.path, e)))?
                }
                _ => break, // trim: the video ended first
            };
            chunk.push(frame);
            out_index += 1;
            phase.inc(1);
            if chunk.len() == self.chunk {
                cancelled(phase, DECODING)?;
                let frames = std::mem::replace(&mut chunk, Vec::with_capacity(self.chunk));
                tx.send(Chunk {
                    start: chunk_start,
                    frames,
                    faces: Vec::new(),
                })
                .map_err(|_| Exit::Disconnected)?;
                chunk_start = out_index;
            }
        }
        if !chunk.is_empty() {
            cancelled(phase, DECODING)?;
            tx.send(Chunk {
                start: chunk_start,
                frames: chunk,
                faces: Vec::new(),
            })
            .map_err(|_| Exit::Disconnected)?;
        }
        if out_index == 0 {
            return Err(MediaError::NoFrames {
                path: self.path.clone(),
            }
            .into());
        }
        phase.set_total(Some(out_index));
        phase.finish();
        Ok(decoded)
    }
}

/// Decoded frames kept in an anonymous temporary file for ping-pong looping.
struct Spool {
    file: File,
    width: u32,
    height: u32,
    count: u64,
}

impl Spool {
    fn new(info: &VideoInfo) -> std::io::Result<Self> {
        Ok(Self {
            file: tempfile_in_temp_dir()?,
            width: info.width,
            height: info.height,
            count: 0,
        })
    }

    fn frame_len(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * 3
    }

    fn push(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.file
            .seek(SeekFrom::Start(self.count * self.frame_len()))?;
        self.file.write_all(frame.data())?;
        self.count += 1;
        Ok(())
    }

    fn get(&mut self, index: u64) -> std::io::Result<Frame> {
        let mut data = vec![0; self.frame_len() as usize];
        self.file.seek(SeekFrom::Start(index * self.frame_len()))?;
        self.file.read_exact(&mut data)?;
        Ok(Frame::new(self.width, self.height, data).expect("sized"))
    }
}

/// A temporary file that is removed as soon as it is created (it lives while open).
fn tempfile_in_temp_dir() -> std::io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "facesync-spool-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}
