//! What the stage gives restore about each frame.

use frame::{Affine2, Frame};

use crate::detect::Rect;
use face_net::facemesh;

/// Everything restore needs about one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceRecord {
    /// Index of the frame in the stream.
    pub index: u64,
    /// Whether a face was detected in this frame.
    pub found: bool,
    /// The R×R aligned crop (`None` when the frame passes through).
    pub crop: Option<Frame>,
    /// Source → crop pixel coordinates (identity when there is no crop); restore inverts it.
    pub to_crop: Affine2,
    /// Face box in source pixels (the detection's; zero when none).
    pub bbox: Rect,
    /// Landmarks in source pixels after smoothing (empty when none).
    pub landmarks: Vec<[f32; 2]>,
    /// Detection score (0 when none).
    pub score: f32,
    /// The 468 face-mesh points in source pixels after smoothing (empty without a mesh; see
    /// `face_net::facemesh::idx` for what the indices are).
    pub mesh: Vec<[f32; 2]>,
    /// How open the mouth is, from the mesh (see [`mouth_open`]); `None` without a mesh.
    pub mouth_open: Option<f32>,
    /// The mesh's face-presence score (0..1); `None` without a mesh.
    pub presence: Option<f32>,
}

/// How open the mouth is: the gap between the inner lips (mesh points 13 and 14) over the
/// mouth's width (corners 61 and 291); about 0 closed, 0.3–0.6 wide open. `None` unless `mesh`
/// holds the 468 points.
pub fn mouth_open(mesh: &[[f32; 2]]) -> Option<f32> {
    use facemesh::idx;
    if mesh.len() < facemesh::NUM_LANDMARKS {
        return None;
    }
    let d = |a: usize, b: usize| {
        let (p, q) = (mesh[a], mesh[b]);
        ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt()
    };
    let width = d(idx::MOUTH_LEFT, idx::MOUTH_RIGHT);
    (width > 0.0).then(|| d(idx::UPPER_LIP_INNER, idx::LOWER_LIP_INNER) / width)
}
