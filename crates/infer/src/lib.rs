//! facesync's inference stage: audio features and a chunked, step-wise lip-sync model.
//!
//! # Why
//! The original pipeline (LatentSync) runs "Doing inference" as chunks of 16 aligned faces,
//! each refined over 20 diffusion steps, with a console bar and no way to stop it. This crate
//! splits that into three parts that can be used and replaced one by one:
//!
//! - [`Mono16k`]: any-rate, any-channel samples → 16 kHz mono (downmix, then rubato's FFT
//!   resampler), block by block: the one audio front end of every model's features here
//!   and in `facesync-onnx-models`.
//! - [`AudioFeatures`]: [`Mono16k`]'s output →
//!   log-mel frames (25 ms Hann window, 10 ms hop, 80 HTK-mel bands, `ln(max(mel, 1e-10))`) →
//!   a window of 16 mel frames centred on every video frame (silence beyond the audio).
//!   [`FeatureStream`] builds the same features from audio pushed block by block, holding
//!   only the mel frames, for audio too long to decode whole.
//! - [`WindowedFft`]: the short-time spectrum (window, zero padding, real FFT, power) under
//!   every audio feature here and in `facesync-onnx-models` (Whisper's log-mel), each with
//!   its own framing, mel basis and logarithm.
//! - [`LipSyncModel`]: the model interface, chunk-wise and step-wise (`begin_chunk`, `step`,
//!   `preview`, `finish_chunk`), so a learned model (a diffusion UNet behind ONNX or another
//!   runtime) plugs in without touching the scheduler.
//! - [`Inferencer`]: the scheduler. It owns progress (the caller's "Doing inference" phase
//!   counts **frames**; a child phase "steps" per chunk counts that chunk's steps exactly),
//!   previews (one RGB preview per chunk, plus intermediate ones at most every
//!   [`InferConfig::preview_interval`]) and cancellation (`phase.check()` before every step, so
//!   a cancel stops the work within one step).
//!
//! The built-in model, [`MouthModel`], is real: it opens the mouth of each aligned crop in
//! proportion to the audio's speech-band energy (a smooth displacement field moving the lower
//! lip and chin down, and a darkened inner-mouth gap), then blends the edit into the crop by
//! Poisson (gradient-domain) blending. The refinement steps are the solver's iterations
//! (red-black SOR, [`MouthParams::inner_iterations`] sweeps per step), in the WGSL shader
//! `crates/infer/shaders/infer_poisson.wgsl` batched over the chunk, or on the CPU with the same f32
//! arithmetic in the same order (there each row is stored as its even columns then its odd
//! ones, so that one colour's updates are a contiguous, vectorised loop; the GPU compiler may fuse multiply-adds, so the two agree
//! within 1 LSB per channel on at most 0.1 % of the bytes, and per-step residuals within
//! 1e-3 relative; the tests check exactly that). Each step's initial state is the previous
//! step's result, starting from the edited crop, so previews show the blend converging.
//! Mouth placement in the crop is [`MouthGeometry`].
//!
//! # Example
//! ```
//! use frame::Frame;
//! use facesync_infer::{
//!     AudioFeatures, ChunkExtras, InferConfig, Inferencer, MouthModel, MouthParams,
//! };
//! use progress_core::Phase;
//!
//! let rate = 16_000;
//! let audio: Vec<f32> = vec![0.0; rate as usize]; // one second of silence
//! let features = AudioFeatures::from_samples(&audio, 1, rate, 25.0, 4).unwrap();
//! let faces = vec![Frame::filled(64, 64, [180, 120, 100]); 4];
//! let model = MouthModel::new(gpu::Compute::Cpu, MouthParams::default());
//! let config = InferConfig { steps: 2, ..InferConfig::default() };
//! let mut inferencer = Inferencer::new(model, config);
//! let phase = Phase::detached("Doing inference", Some(4), "frames");
//! let out = inferencer
//!     .run_chunk(&faces, 0, &features, ChunkExtras::default(), &phase)
//!     .unwrap();
//! assert_eq!(out, faces); // silence: the faces are unchanged
//! assert_eq!(phase.pos(), 4);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod audio;
mod lip_mel;
mod mouth;
mod poisson;
mod poisson_gpu;
mod scheduler;
mod silence;
mod spectrum;

pub use audio::{
    AudioFeatures, FeatureStream, HOP, MEL_BANDS, Mono16k, SILENCE, WINDOW, WINDOW_FRAMES,
};
pub use lip_mel::{LIP_MEL_COLUMNS, LIP_MEL_SILENCE, LipMel, LipMelStream, lip_mel_window_end};
pub use mouth::{Mask, MouthGeometry, MouthModel, MouthParams, MouthState};
pub use scheduler::{ChunkRunner, InferConfig, Inferencer};
pub use silence::{HANG_OVER_SECS, SilenceGate};
pub use spectrum::WindowedFft;

use frame::Frame;
use progress_core::Cancelled;

/// What went wrong in the inference stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// The audio samples or their description are unusable.
    #[error("audio input: {0}")]
    Audio(String),
    /// A face crop or chunk does not fit the model or the features.
    #[error("chunk input: {0}")]
    Input(String),
    /// The run was cancelled (between steps).
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// The GPU failed.
    #[error("inference on the gpu: {0}")]
    Gpu(#[from] gpu::GpuError),
    /// A learned model (behind a runtime such as ONNX Runtime) failed; the message names the
    /// model file.
    #[error("{0}")]
    Model(String),
}

/// One chunk of aligned faces, as the scheduler hands it to a [`LipSyncModel`].
#[derive(Debug, Clone, Copy)]
pub struct ChunkInput<'a> {
    /// Index (in the whole video) of the first face of the chunk.
    pub first_frame: usize,
    /// The aligned R×R face crops.
    pub faces: &'a [Frame],
    /// The clip's audio features: `audio.window(first_frame + i)` is face `i`'s window.
    pub audio: &'a AudioFeatures,
    /// The region the model may regenerate (the lower face), R×R.
    pub mask: &'a Mask,
    /// The model's own audio features, when it asked for them
    /// ([`LipSyncModel::feature_builder`]); `None` for models that read `audio`.
    pub features: Option<&'a dyn FrameFeatures>,
    /// Where each face's mouth is, in crop pixels (from a face mesh), one per face, or empty
    /// when unknown (the model then assumes its default geometry).
    pub mouths: &'a [Option<MouthPlacement>],
    /// The clip's silence gate (whole-video frame indices), when the run has one: a model gives
    /// a silent frame its own silence input ([`ChunkInput::is_silent`]).
    pub silence: Option<&'a SilenceGate>,
}

impl ChunkInput<'_> {
    /// Whether face `i` of the chunk (video frame `first_frame + i`) is silent by the gate.
    pub fn is_silent(&self, i: usize) -> bool {
        self.silence
            .is_some_and(|gate| gate.is_silent(self.first_frame + i))
    }
}

/// What a chunk may bring to [`Inferencer::run_chunk`] besides its faces and the built-in
/// audio features; `ChunkExtras::default()` for neither.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkExtras<'a> {
    /// The model's own audio features, from its [`LipSyncModel::feature_builder`] (a model
    /// that asked for them fails without them).
    pub features: Option<&'a dyn FrameFeatures>,
    /// Each face's mouth placement, one per face, or empty (see [`ChunkInput::mouths`]).
    pub mouths: &'a [Option<MouthPlacement>],
    /// The clip's silence gate, if any (see [`ChunkInput::silence`]).
    pub silence: Option<&'a SilenceGate>,
}

impl<'a> ChunkExtras<'a> {
    /// The model's own audio features alone.
    pub fn with_features(features: &'a dyn FrameFeatures) -> Self {
        Self {
            features: Some(features),
            ..Self::default()
        }
    }

    /// The faces' mouth placements alone.
    pub fn with_mouths(mouths: &'a [Option<MouthPlacement>]) -> Self {
        Self {
            mouths,
            ..Self::default()
        }
    }
}

/// Where a face's mouth is in its R×R crop (pixels), from a face mesh's lip contours.
#[derive(Debug, Clone, PartialEq)]
pub struct MouthPlacement {
    /// The lower-face region (a convex polygon, e.g. the hull of the jaw line and the lips,
    /// see [`convex_hull`]) the edit stays inside; empty: no limit but the mask.
    pub region: Vec<[f32; 2]>,
    /// The mouth corners, image-left then image-right.
    pub corners: [[f32; 2]; 2],
    /// The middle of the upper lip's inner edge.
    pub upper_inner: [f32; 2],
    /// The middle of the lower lip's inner edge.
    pub lower_inner: [f32; 2],
    /// The chin's lowest point.
    pub chin: [f32; 2],
    /// Half the jaw's width at the mouth (the region the displacement moves).
    pub jaw_half_width: f32,
    /// The face's 68 landmarks in the dlib / iBUG 300-W layout (from the mesh: face-proc's
    /// `MESH_TO_68`), crop pixels; empty when the caller has none. Wav2Lip's face box and its
    /// lower-face paste mask come from them, as in FaceFusion.
    pub landmarks_68: Vec<[f32; 2]>,
}

/// Where the pipeline lets restore change the frame for a model's faces
/// ([`LipSyncModel::paste_region`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PasteRegion {
    /// The face mesh's lower face (the hull of the jaw line and the lips, [`MouthPlacement`]'s
    /// region) when the frame has a mesh, the whole crop otherwise (default): for models that
    /// edit only the mouth region, so the rest of the face is not resampled through the warps.
    #[default]
    LowerFace,
    /// The whole crop under restore's own eroded and feathered mask (LatentSync's semantics:
    /// the model regenerates with its own mask and the reference pastes the whole face back).
    WholeCrop,
    /// FaceFusion's lip-sync paste with its `lower-face` area mask: the convex hull of the
    /// 68 landmarks 3–13 and 31–35 ([`MouthPlacement::landmarks_68`]), filled, blurred
    /// (Gaussian σ 5) and remapped `(clip(m, ½, 1) − ½)·2`; the crop and the mask are warped
    /// into the frame and blended there (FaceFusion's `paste_back`). Wav2Lip's.
    FaceFusionLowerFace,
    /// FaceFusion's lip-sync paste with its box mask (`b = trunc(0.15·R)`: the crop with a
    /// `b/2` border zeroed, blurred with σ = `b/4`; 38 px and 19 at 512: FaceFusion's default
    /// `face_mask_blur` 0.3, no padding),
    /// blended in the frame as [`PasteRegion::FaceFusionLowerFace`]. EDTalk's.
    FaceFusionBox,
}

/// The convex hull of `points`, counter-clockwise in image coordinates (y down: clockwise on
/// screen), without collinear points (Andrew's monotone chain). Fewer than 3 distinct points
/// give what there is.
pub fn convex_hull(points: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let mut p: Vec<[f32; 2]> = points.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [f32; 2], a: [f32; 2], b: [f32; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f32; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f32; 2]>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// A soft mask of a convex polygon (as [`convex_hull`] gives it): 1 inside at least
/// `feather` pixels from every edge, 0 outside, linear in between (the distance to the
/// nearest edge line). 1 everywhere for fewer than 3 points.
pub fn polygon_weight(polygon: &[[f32; 2]], feather: f32, x: f32, y: f32) -> f32 {
    if polygon.len() < 3 {
        return 1.0;
    }
    let mut inside = f32::MAX;
    for (i, a) in polygon.iter().enumerate() {
        let b = polygon[(i + 1) % polygon.len()];
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        let len = (ex * ex + ey * ey).sqrt();
        if len <= 0.0 {
            continue;
        }
        // Positive on the polygon's side (counter-clockwise in image coordinates).
        let d = (ex * (y - a[1]) - ey * (x - a[0])) / len;
        inside = inside.min(d);
    }
    (inside / feather.max(1e-3)).clamp(0.0, 1.0)
}

/// Per-video-frame audio windows of a model's own features (Wav2Lip's 80×16 mel windows...).
pub trait FrameFeatures: Send + Sync + std::fmt::Debug {
    /// Values in one frame's window.
    fn window_len(&self) -> usize;
    /// Writes video frame `frame`'s window (row-major) into `out` (`window_len()` values);
    /// frames beyond the audio get the model's silence.
    fn window_into(&self, frame: usize, out: &mut [f32]);
}

/// Builds a model's [`FrameFeatures`] from audio pushed block by block (the decoded audio is
/// never held whole).
pub trait FeatureBuilder: Send {
    /// Adds the next interleaved samples (whole frames).
    fn push(&mut self, interleaved: &[f32]) -> Result<(), InferError>;
    /// The features of `n_frames` video frames at `fps`.
    fn finish(
        self: Box<Self>,
        fps: f64,
        n_frames: usize,
    ) -> Result<Box<dyn FrameFeatures>, InferError>;
}

/// How the scheduler drives a model over one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `n` refinement steps over the whole chunk, counted by a child phase "steps".
    Refine(usize),
    /// A one-shot model: `n` steps (one per face with a batch of 1, one per chunk with a
    /// dynamic batch), no "steps" phase; the frames each step finishes
    /// ([`StepStats::frames`]) advance "Doing inference" as they finish. A step is one model
    /// call, or the wait for one of several running side by side (the faces may finish out of
    /// order; [`LipSyncModel::finish_chunk`] returns them in order). `phase.check()` runs
    /// before every step: a cancel starts no further call.
    OneShot(usize),
}

/// What one refinement step reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepStats {
    /// A convergence measure of the step, when the model has one (the built-in model: the RMS
    /// Poisson residual over the masked pixels, in 8-bit levels).
    pub residual: Option<f64>,
    /// Faces this step finished (one-shot models); 0 for refinement steps.
    pub frames: usize,
}

/// A lip-sync model that regenerates the masked lower face of a chunk of aligned faces over a
/// fixed number of steps. The scheduler ([`Inferencer`]) calls, per chunk,
/// `begin_chunk`, then `step(state, k, n)` for `k` in `0..n` (possibly stopping early on
/// cancellation), `preview` at any point, and `finish_chunk`.
pub trait LipSyncModel {
    /// Per-chunk working state (latents, device buffers, ...).
    type State;

    /// The region of an R×R aligned face (`size` = R) this model regenerates; the scheduler
    /// computes it once per size and passes it in every [`ChunkInput`].
    fn mask(&self, size: u32) -> Mask;

    /// Where restore may change the frame for this model's faces (default:
    /// [`PasteRegion::LowerFace`]).
    fn paste_region(&self) -> PasteRegion {
        PasteRegion::LowerFace
    }

    /// How a chunk of `chunk_len` faces runs, given the configured number of steps. The
    /// default: [`Schedule::Refine`] with the configured steps.
    fn schedule(&self, configured_steps: usize, chunk_len: usize) -> Schedule {
        let _ = chunk_len;
        Schedule::Refine(configured_steps)
    }

    /// A builder of the model's own audio features for audio of `channels` channels at
    /// `sample_rate` Hz, or `None` (the default) when the model reads the built-in
    /// [`AudioFeatures`].
    fn feature_builder(
        &self,
        channels: u16,
        sample_rate: u32,
    ) -> Result<Option<Box<dyn FeatureBuilder>>, InferError> {
        let _ = (channels, sample_rate);
        Ok(None)
    }

    /// Prepares a chunk (encode, upload, initial guess).
    fn begin_chunk(&mut self, chunk: &ChunkInput<'_>) -> Result<Self::State, InferError>;

    /// Runs refinement step `step` of `n_steps`.
    fn step(
        &mut self,
        state: &mut Self::State,
        step: usize,
        n_steps: usize,
    ) -> Result<StepStats, InferError>;

    /// Whether an intermediate preview is worth its cost now (default: always). A model whose
    /// preview costs a decode of the whole chunk says no while that would take more than a
    /// small share of the compute time; the chunk's final preview is always sent.
    fn preview_ready(&self, state: &Self::State) -> bool {
        let _ = state;
        true
    }

    /// The current estimate of face `index` of the chunk (for previews).
    fn preview(&mut self, state: &Self::State, index: usize) -> Result<Frame, InferError>;

    /// The chunk's final faces, in order, same size as the input.
    fn finish_chunk(&mut self, state: Self::State) -> Result<Vec<Frame>, InferError>;
}
