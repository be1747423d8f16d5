//! The "Processing faces" stage of facesync: find the face in every frame, align it to a
//! canonical template and cut out an R×R crop, with progress per frame.
//!
//! # Why
//! The reference pipeline (LatentSync) detects with InsightFace, warps then resizes on the CPU
//! and aborts the whole run when one frame has no face. Here:
//! - **Detection**: MediaPipe's BlazeFace (short-range, 128×128, Apache-2.0) from the
//!   `face-net` crate (the ONNX reader, the folded plan, the CPU kernels and the WGSL network,
//!   and the only `unsafe` code of the workspace): run on the CPU by its executor (AVX2 + FMA
//!   kernels chosen at run time, portable loops elsewhere; every output checked against
//!   onnxruntime's), or as its WGSL network
//!   batched over faces on the GPU ([`DetectBackend`]; `Auto` takes the WGSL network only on a
//!   hardware adapter, because lavapipe runs it far slower than the CPU network). The first frame is
//!   letterboxed whole (plus overlapping squares along the long side of wide frames when that
//!   finds nothing). Every face is then refined in its *face-canonical region*: the square
//!   that the similarity from its keypoints to the template maps to a fixed square of template
//!   space, so the network sees the face at the same place, size and roll whatever its motion;
//!   [`DecodeConfig::refine_passes`] passes (default 8) iterate region → keypoints → region
//!   and average all passes but the first. Later frames start from the previous face's
//!   canonical region (tracking) and fall back to the whole frame when the face is lost. Any
//!   other source plugs in through [`FaceDetector`], e.g. [`LandmarkFile`] (landmarks from an
//!   external detector's JSON). Where several faces are found the largest box wins.
//! - **Accuracy** (the stage tests, R = 256, a real photo under known similarities): every eye
//!   of every frame within 2 px of where the exact transform puts it (measured worst 1.3 px,
//!   mean 0.7 px, with the default 8 passes; 4 passes give 3.2 px and are 1.7× faster, see
//!   `cargo xtask bench face --passes 4`).
//! - **Face mesh**: MediaPipe's FaceMesh (`face-net`, 468 points, Apache-2.0) runs on every
//!   tracked face after BlazeFace, on MediaPipe's landmark region (the detection box ×1.5,
//!   rotated upright by the eye line). [`FaceRecord::mesh`] holds the 468 points in source
//!   pixels, One-Euro smoothed in the face's own frame: the head's motion (a similarity fitted
//!   to the brow, eye, nose and forehead points) passes through without lag and only the
//!   shape within the face is filtered; filtering image coordinates lagged by 2.5 px on a
//!   fast clip. [`FaceRecord::mouth_open`] holds the inner-lip
//!   gap over the mouth width (also in every [`FaceStatus`], with the presence); a presence
//!   below [`MeshConfig::min_presence`] makes the frame "no face" under the policy, with reason
//!   `low_presence`. On the test clips (a talking head, and a fast one: up to 20 px and 3° per
//!   frame) every mesh eye and mouth corner stays within 0.5 px of the exact motion (0.7 px on
//!   the bench's clip, `cargo xtask bench face`). [`FaceConfig::mesh`] = `None` turns it off.
//! - **Alignment**: [`Alignment::LatentSync`] aligns on LatentSync's three points instead
//!   (brow means and nose mean of the mesh's 68 points, see [`landmarks_68`]) onto its template
//!   `[[17, 20], [58, 20], [37.5, 40]]`; by default, a 2-D closed-form Umeyama similarity
//!   from BlazeFace's eyes, nose tip and mouth centre onto a template placed in the reference's 75×100 crop (see `align.rs` for how
//!   it was derived), composed with the crop → R×R scale so ONE bilinear warp (border 127)
//!   goes from the source frame to the crop ([`Alignment::LatentSync`]: the reference's own
//!   similarity, scaled by the ratio of the point sets' spreads, and its two Lanczos-4 passes,
//!   a warp into its 210×280 crop and a resize, on the CPU; [`Alignment::Ffhq512`]:
//!   FaceFusion's five points onto its `ffhq_512` template, edge replicated). Landmarks are smoothed with a One-Euro filter
//!   (or the reference's translation EMA).
//! - **Warp**: on the CPU (2 threads) or as a batched WGSL compute shader
//!   (`crates/face-proc/shaders/face_warp.wgsl`, one dispatch per batch, reused buffers) when `compute` is a GPU;
//!   both give the same bytes within 1 LSB.
//! - **Face status**: one [`FaceStatus`] per frame (faces found, what was done, mouth open,
//!   presence, why there is no face), sent on the stage's phase as a progress-core record
//!   (kind `face_status`): progress-core knows nothing of faces, so the type lives here.
//! - **No face**: by default the frame passes through untouched with a face status;
//!   [`NoFacePolicy::Error`] and [`NoFacePolicy::Interpolate`] are options.
//! - **Detection rate**: every frame by default ([`FaceConfig::detect_every`] = 1), on
//!   [`FaceConfig::threads`] threads (each thread tracks its contiguous part of the batch).
//!   With `detect_every` = k, the frames in between track the face with a single pass from the
//!   previous frame's canonical region: cheaper, but noisier (on the talking-head clip of the
//!   tests, 2.9 px worst instead of 1.2 px for k = 4), so every frame is the default.
//!
//! # Example
//! ```no_run
//! use face_proc::{FaceConfig, FaceProcessor};
//! use progress_core::Phase;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let frames = vec![frame::Frame::filled(640, 360, [0, 0, 0])];
//! let phase = Phase::detached("Processing faces", Some(frames.len() as u64), "frames");
//! let mut stage = FaceProcessor::new(&gpu::Compute::Cpu, FaceConfig::default())?;
//! let records = stage.process_batch(&frames, &phase)?;
//! assert!(!records[0].found); // a black frame has no face: passed through
//! phase.finish();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// The networks and their SIMD kernels live in `face-net`, the one crate with `unsafe` code.
#![forbid(unsafe_code)]

mod align;
mod batcher;
mod config;
mod detect;
mod face_record;
mod landmarks;
mod stage;
mod status;
#[cfg(test)]
mod testutil;
mod tracking;
mod warp;

use std::path::PathBuf;

pub use align::{
    Alignment, MESH_TO_68, OneEuroConfig, Smoothing, landmarks_5_from_68, landmarks_68,
};
pub use config::{DetectBackend, FaceConfig, MeshConfig, NoFacePolicy};
pub use detect::{BlazeFace, DecodeConfig, Detection, FaceDetector, Rect};
/// The face mesh's types and point indices (`facemesh::idx`), from `face-net`.
pub use face_net::facemesh;
pub use face_record::{FaceRecord, mouth_open};
pub use landmarks::LandmarkFile;
pub use stage::FaceProcessor;
pub use status::{FaceAction, FaceStatus, NoFaceReason};

impl From<face_net::blazeface::BlazeFaceGpuError> for FaceError {
    fn from(e: face_net::blazeface::BlazeFaceGpuError) -> Self {
        match e {
            face_net::blazeface::BlazeFaceGpuError::Plan(p) => FaceError::Model(p.to_string()),
            other => FaceError::Gpu(other.to_string()),
        }
    }
}

/// Errors of the face stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaceError {
    /// The BlazeFace model failed to load or run.
    #[error("blazeface model: {0}")]
    Model(String),
    /// A GPU operation failed.
    #[error("face warp on gpu: {0}")]
    Gpu(String),
    /// The alignment transform cannot be inverted.
    #[error("face alignment transform is singular")]
    SingularTransform,
    /// No usable face and the policy is [`NoFacePolicy::Error`].
    #[error("no face found in frame {frame}")]
    NoFace {
        /// Index of the frame in the stream.
        frame: u64,
    },
    /// A landmark file could not be read or parsed.
    #[error("landmark file {}{}: {why}", path.display(), frame.as_ref().map(|f| format!(", frame {f}")).unwrap_or_default())]
    LandmarkFile {
        /// The file.
        path: PathBuf,
        /// The frame entry at fault, if any.
        frame: Option<String>,
        /// What is wrong.
        why: String,
    },
    /// The configuration is invalid.
    #[error("face config: {0}")]
    Config(String),
    /// The run was cancelled.
    #[error(transparent)]
    Cancelled(#[from] progress_core::Cancelled),
}
