//! The face stage's configuration.

use crate::align::{Alignment, OneEuroConfig, Smoothing};
use crate::detect::DecodeConfig;

/// What to do with a frame where no usable face is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NoFacePolicy {
    /// Leave the frame untouched (no crop) and emit a `PassedThrough` face status (default).
    #[default]
    PassThrough,
    /// Stop with [`FaceError::NoFace`](crate::FaceError::NoFace) naming the frame.
    Error,
    /// Give face-less frames a transform from their neighbours, for gaps of at most `max_gap`
    /// frames (longer gaps pass through): linear between the last frame with a face and the
    /// next one when both are known in the same batch (the stage streams one batch at a time,
    /// with no look-ahead beyond it), else the last frame's transform held.
    Interpolate {
        /// Longest run of face-less frames that reuses the last transform.
        max_gap: u32,
    },
}

/// Where BlazeFace runs. See the crate docs for the rule behind [`DetectBackend::Auto`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DetectBackend {
    /// The WGSL network when `compute` is a hardware GPU (any wgpu device type but `Cpu`),
    /// the CPU network otherwise (default). A software adapter such as lavapipe runs the WGSL
    /// network far slower than the CPU one (`cargo xtask bench face 1 --gpu-detector`: 0.6
    /// against 72.7 frames/s for the whole stage), so it keeps the CPU detector.
    #[default]
    Auto,
    /// The CPU network (the reference implementation, checked against onnxruntime).
    Cpu,
    /// The WGSL network on the stage's GPU whatever the adapter (falls back to the CPU network when
    /// `compute` is the CPU).
    Gpu,
}
/// The face mesh (MediaPipe FaceMesh, 468 points) run on every tracked face after BlazeFace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshConfig {
    /// A frame whose mesh presence score is below this has no usable face (MediaPipe: 0.5);
    /// the no-face policy applies and its face status says `low_presence`.
    pub min_presence: f32,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self { min_presence: 0.5 }
    }
}

/// Stage configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceConfig {
    /// Side of the output crop, R (256 or 512 in the reference).
    pub resolution: u32,
    /// Frames without a face.
    pub no_face: NoFacePolicy,
    /// Full detection every k-th frame (1 = every frame, the default). A full detection
    /// follows the last face with [`DecodeConfig::refine_passes`] passes (or searches the frame
    /// when there is none). In between, BlazeFace tracks the face with a single pass in its
    /// canonical region from the previous frame (one inference instead of `refine_passes`;
    /// keypoints noisier, see the crate docs); a custom [`FaceDetector`] reuses the last
    /// detection there (the face is assumed still).
    pub detect_every: u32,
    /// Side of the tracking region, in multiples of the last face box's larger side.
    pub roi_scale: f32,
    /// BlazeFace decoding thresholds.
    pub decode: DecodeConfig,
    /// Temporal smoothing.
    pub smoothing: Smoothing,
    /// One-Euro parameters (when `smoothing` is `OneEuro`).
    pub one_euro: OneEuroConfig,
    /// Worker threads for detection and the CPU warp.
    pub threads: usize,
    /// Where BlazeFace runs.
    pub detect_backend: DetectBackend,
    /// The face mesh after detection (default on); `None` skips it (no mesh points, no
    /// mouth-open measure, no presence check).
    pub mesh: Option<MeshConfig>,
    /// How faces are aligned to the crop ([`Alignment::LatentSync`] needs the mesh).
    pub alignment: Alignment,
}

impl Default for FaceConfig {
    fn default() -> Self {
        Self {
            resolution: 256,
            no_face: NoFacePolicy::PassThrough,
            detect_every: 1,
            roi_scale: 2.2,
            decode: DecodeConfig::default(),
            smoothing: Smoothing::OneEuro,
            one_euro: OneEuroConfig::default(),
            threads: 2,
            detect_backend: DetectBackend::Auto,
            mesh: Some(MeshConfig::default()),
            alignment: Alignment::Template,
        }
    }
}
