//! FaceMesh: MediaPipe's face landmark model (468 points and a face-presence score) on a
//! 192×192 crop of the face, run by the same CPU executor as BlazeFace (the folded plan, with
//! PRelu fused into its convolutions).
//!
//! The crop is MediaPipe's: the face's square region rotated upright by the eye line and
//! enlarged 1.5× ([`region_from_detection`], or [`region_from_mesh`] from the previous frame's
//! points when tracking). [`CpuFaceMesh::landmarks`] resamples it, runs the network and maps
//! the points back into source pixels.

use std::sync::Arc;

use frame::Frame;

use crate::blazeface::{Detection, Letterbox, Range, resample};
use crate::cpu_net::CpuNet;
use crate::plan::{self, Plan, PlanError};

/// MediaPipe's face landmark model, converted to ONNX (`assets/facemesh/`).
const FACEMESH_ONNX: &[u8] = include_bytes!("../assets/facemesh/face_landmark.onnx");

/// Side of the square network input.
pub const INPUT_SIDE: usize = 192;
/// Floats in one network input (NHWC, RGB in [0, 1]).
pub const INPUT_LEN: usize = INPUT_SIDE * INPUT_SIDE * 3;
/// Points of the mesh.
pub const NUM_LANDMARKS: usize = 468;
/// MediaPipe's margin: the crop's side is this times the face's size.
pub const MARGIN: f32 = 1.5;

/// Indices into the 468 points of MediaPipe's canonical face mesh ("left" and "right" are the
/// image's: the subject's right eye is on the image left).
pub mod idx {
    /// Outer corner of the eye on the image left.
    pub const EYE_LEFT_OUTER: usize = 33;
    /// Inner corner of the eye on the image left.
    pub const EYE_LEFT_INNER: usize = 133;
    /// Inner corner of the eye on the image right.
    pub const EYE_RIGHT_INNER: usize = 362;
    /// Outer corner of the eye on the image right.
    pub const EYE_RIGHT_OUTER: usize = 263;
    /// Mouth corner on the image left.
    pub const MOUTH_LEFT: usize = 61;
    /// Mouth corner on the image right.
    pub const MOUTH_RIGHT: usize = 291;
    /// Middle of the upper lip's inner edge.
    pub const UPPER_LIP_INNER: usize = 13;
    /// Middle of the lower lip's inner edge.
    pub const LOWER_LIP_INNER: usize = 14;
    /// Nose tip.
    pub const NOSE_TIP: usize = 1;
    /// Chin (bottom of the face oval).
    pub const CHIN: usize = 152;
    /// Forehead (top of the face oval).
    pub const FOREHEAD: usize = 10;
    /// The lips' outer contour, clockwise from the image-left corner over the upper lip.
    pub const LIPS_OUTER: [usize; 20] = [
        61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146,
    ];
    /// The lips' inner contour (the mouth opening), in the same order.
    pub const LIPS_INNER: [usize; 20] = [
        78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
    ];
    /// The lower part of the face oval, from the image-right cheek at the nose's height down
    /// round the chin to the image-left one: with [`LIPS_OUTER`], the lower-face region (the
    /// jaw and the lips) that a mouth edit may touch.
    pub const LOWER_FACE: [usize; 19] = [
        323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93,
    ];
    /// The face oval, clockwise from the forehead.
    pub const FACE_OVAL: [usize; 36] = [
        10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
        152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
    ];
}

/// One face's mesh in source pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// The 468 points `(x, y, z)`: x, y in source pixels, z the model's relative depth in the
    /// same scale (smaller is nearer the camera).
    pub points: Vec<[f32; 3]>,
    /// Face presence in [0, 1] (the sigmoid of the model's logit).
    pub presence: f32,
}

impl Mesh {
    /// The `(x, y)` of point `i`.
    pub fn xy(&self, i: usize) -> [f32; 2] {
        [self.points[i][0], self.points[i][1]]
    }

    /// How open the mouth is: the gap between the lips' inner edges (points 13 and 14) over the
    /// mouth's width (corners 61 and 291); about 0 closed, 0.3–0.6 wide open.
    pub fn mouth_open(&self) -> f32 {
        let d = |a: usize, b: usize| {
            let (p, q) = (self.xy(a), self.xy(b));
            ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt()
        };
        let width = d(idx::MOUTH_LEFT, idx::MOUTH_RIGHT);
        if width > 0.0 {
            d(idx::UPPER_LIP_INNER, idx::LOWER_LIP_INNER) / width
        } else {
            0.0
        }
    }
}

/// MediaPipe's landmark region for a BlazeFace detection: the detection box's centre, rotated
/// by the eye line (keypoints 0 and 1) so that the face is upright, side [`MARGIN`] × the
/// box's longer side.
pub fn region_from_detection(d: &Detection) -> Letterbox {
    let [cx, cy] = d.bbox.centre();
    let angle = match d.landmarks.as_slice() {
        [a, b, ..] => (b[1] - a[1]).atan2(b[0] - a[0]),
        _ => 0.0,
    };
    Letterbox::centred(cx, cy, MARGIN * d.bbox.w.max(d.bbox.h), angle)
}

/// MediaPipe's landmark region from a mesh (tracking from the previous frame): the bounding
/// box of the points in the frame rotated upright by the outer eye corners, its centre, side
/// [`MARGIN`] × its longer side.
pub fn region_from_mesh(mesh: &Mesh) -> Letterbox {
    let (a, b) = (mesh.xy(idx::EYE_LEFT_OUTER), mesh.xy(idx::EYE_RIGHT_OUTER));
    let angle = (b[1] - a[1]).atan2(b[0] - a[0]);
    let (s, c) = angle.sin_cos();
    // Bounds in the upright frame (rotate by −angle).
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    for p in &mesh.points {
        let u = [c * p[0] + s * p[1], -s * p[0] + c * p[1]];
        for k in 0..2 {
            lo[k] = lo[k].min(u[k]);
            hi[k] = hi[k].max(u[k]);
        }
    }
    let mid = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let centre = [c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]];
    let side = MARGIN * (hi[0] - lo[0]).max(hi[1] - lo[1]);
    Letterbox::centred(centre[0], centre[1], side, angle)
}

/// Fills `out` (NHWC 192×192×3, RGB in [0, 1]) from `region` of `image`, with the resampler
/// BlazeFace uses (a mean of bilinear taps per input pixel; black outside the frame).
pub fn preprocess(image: &Frame, region: &Letterbox, out: &mut [f32]) {
    resample(image, region, INPUT_SIDE, Range::ZeroToOne, out);
}

/// The network's raw output for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMesh {
    /// 468 × (x, y, z), x and y in input pixels (0..192).
    pub landmarks: Vec<f32>,
    /// The face-presence logit.
    pub presence_logit: f32,
}

/// FaceMesh on the CPU. Clones made by [`Self::clone_shared`] share the plan and have their
/// own buffers (one per thread).
#[derive(Debug, Clone)]
pub struct CpuFaceMesh {
    net: CpuNet,
    input: Vec<f32>,
}

fn load_plan() -> Result<Arc<Plan>, PlanError> {
    let plan = plan::plan_from_onnx(FACEMESH_ONNX)?;
    let sizes = plan.outputs.as_slice();
    if sizes != [NUM_LANDMARKS as u32 * 3, 1] {
        return Err(PlanError::Decode(format!(
            "facemesh outputs of {sizes:?} floats, expected [1404, 1]"
        )));
    }
    Ok(Arc::new(plan))
}

impl CpuFaceMesh {
    /// Folds the committed model (a few milliseconds).
    pub fn new() -> Result<Self, PlanError> {
        Ok(Self {
            net: CpuNet::new(load_plan()?),
            input: vec![0.0; INPUT_LEN],
        })
    }

    /// Another instance on the same plan, with buffers of its own.
    pub fn clone_shared(&self) -> Self {
        Self {
            net: self.net.clone_shared(),
            input: vec![0.0; INPUT_LEN],
        }
    }

    /// Runs one NHWC 192×192×3 input (see [`preprocess`]). Panics when `input` is not
    /// [`INPUT_LEN`] floats long.
    pub fn run(&mut self, input: &[f32]) -> RawMesh {
        self.net.forward(input);
        let out = self.net.outputs();
        RawMesh {
            landmarks: out[0].clone(),
            presence_logit: out[1][0],
        }
    }

    /// The mesh of the face in `region` of `image`, in source pixels.
    pub fn landmarks(&mut self, image: &Frame, region: &Letterbox) -> Mesh {
        let mut input = std::mem::take(&mut self.input);
        preprocess(image, region, &mut input);
        let raw = self.run(&input);
        self.input = input;
        let scale = INPUT_SIDE as f32;
        let depth = region.side / scale;
        let points = raw
            .landmarks
            .chunks_exact(3)
            .map(|p| {
                let [x, y] = region.to_source([p[0] / scale, p[1] / scale]);
                [x, y, p[2] * depth]
            })
            .collect();
        Mesh {
            points,
            presence: 1.0 / (1.0 + (-raw.presence_logit.clamp(-100.0, 100.0)).exp()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blazeface::CpuBlazeFace;
    use crate::testutil::astronaut;

    /// onnxruntime's outputs of the committed model on three inputs made from
    /// `crates/pipeline/assets/astronaut.png` (`tests/golden/make_facemesh_golden.py`): every
    /// landmark coordinate (input pixels, 0..192) within 2e-3 · max(1, |value|) and the presence
    /// logit within 1e-3, for both builds of the CPU kernels.
    #[test]
    fn cpu_network_matches_onnxruntime_on_every_output() {
        let golden: Vec<f32> = include_bytes!("../tests/golden/facemesh_golden.bin")
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let per_input = NUM_LANDMARKS * 3 + 1;
        assert_eq!(golden.len(), 3 * per_input);
        let img = astronaut();
        let plan = load_plan().unwrap();
        for net in [CpuNet::new(plan.clone()).without_fma(), CpuNet::new(plan)] {
            let mut mesh = CpuFaceMesh {
                net,
                input: vec![0.0; INPUT_LEN],
            };
            for (k, want) in golden.chunks(per_input).enumerate() {
                let input = golden_input(&img, k);
                let raw = mesh.run(&input);
                for (i, (got, want)) in raw.landmarks.iter().zip(want).enumerate() {
                    assert!(
                        (got - want).abs() < 2e-3 * want.abs().max(1.0),
                        "input {k} coordinate {i}: {got} vs {want}"
                    );
                }
                let want = want[NUM_LANDMARKS * 3];
                assert!(
                    (raw.presence_logit - want).abs() < 1e-3,
                    "input {k} presence: {} vs {want}",
                    raw.presence_logit
                );
            }
        }
    }

    /// The golden inputs (as `make_facemesh_golden.py` builds them): nearest-neighbour squares
    /// `(x0, y0, side, mirrored)` of the photo, each pixel `v / 255`: the face with
    /// MediaPipe's margin, the same mirrored, and the whole photo (a small face).
    fn golden_input(img: &Frame, k: usize) -> Vec<f32> {
        let (x0, y0, side, mirror) = [
            (148u32, 44u32, 150u32, false),
            (148, 44, 150, true),
            (0, 0, 512, false),
        ][k];
        let n = INPUT_SIDE as u32;
        let mut out = Vec::with_capacity(INPUT_LEN);
        for y in 0..n {
            for x in 0..n {
                let xs = if mirror { n - 1 - x } else { x };
                let sx = (x0 + (xs * side + side / 2) / n).min(img.width() - 1);
                let sy = (y0 + (y * side + side / 2) / n).min(img.height() - 1);
                out.extend(img.pixel(sx, sy).map(|v| f32::from(v) / 255.0));
            }
        }
        out
    }

    /// On the real photo, from BlazeFace's detection: a confident mesh whose eye corners,
    /// nose tip and mouth corners lie where BlazeFace's keypoints are (within a tenth of the
    /// face's size), in the right order; and a flat grey frame has a low presence.
    #[test]
    fn the_mesh_of_the_astronaut_agrees_with_blazeface() {
        let img = astronaut();
        let mut det = CpuBlazeFace::new().unwrap();
        let region = Letterbox::whole(img.width(), img.height());
        let mut input = vec![0.0; crate::blazeface::INPUT_LEN];
        crate::blazeface::preprocess(&img, &region, &mut input);
        let faces = crate::blazeface::decode(
            &det.run(&input),
            &crate::blazeface::anchors(),
            &region,
            0.75,
            0.3,
        );
        let face = &faces[0];
        let mut net = CpuFaceMesh::new().unwrap();
        let mesh = net.landmarks(&img, &region_from_detection(face));
        assert!(mesh.presence > 0.9, "presence {}", mesh.presence);
        let tol = face.bbox.w / 10.0;
        let mid = |a: usize, b: usize| {
            let (p, q) = (mesh.xy(a), mesh.xy(b));
            [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0]
        };
        let pairs = [
            (
                mid(idx::EYE_LEFT_OUTER, idx::EYE_LEFT_INNER),
                face.landmarks[0],
            ),
            (
                mid(idx::EYE_RIGHT_OUTER, idx::EYE_RIGHT_INNER),
                face.landmarks[1],
            ),
            (mesh.xy(idx::NOSE_TIP), face.landmarks[2]),
            (mid(idx::MOUTH_LEFT, idx::MOUTH_RIGHT), face.landmarks[3]),
        ];
        for (k, (m, b)) in pairs.iter().enumerate() {
            let d = ((m[0] - b[0]).powi(2) + (m[1] - b[1]).powi(2)).sqrt();
            assert!(
                d < tol,
                "keypoint {k}: mesh {m:?} vs blazeface {b:?} ({d} px)"
            );
        }
        assert!(mesh.xy(idx::EYE_LEFT_OUTER)[0] < mesh.xy(idx::EYE_RIGHT_OUTER)[0]);
        assert!(mesh.xy(idx::FOREHEAD)[1] < mesh.xy(idx::CHIN)[1]);
        // Tracking from the mesh lands on the same face.
        let again = net.landmarks(&img, &region_from_mesh(&mesh));
        let d = (again.xy(idx::NOSE_TIP)[0] - mesh.xy(idx::NOSE_TIP)[0]).abs();
        assert!(again.presence > 0.9 && d < tol, "{d} px");
        let flat = Frame::filled(320, 240, [128, 128, 128]);
        let grey = net.landmarks(&flat, &Letterbox::centred(160.0, 120.0, 200.0, 0.0));
        assert!(grey.presence < 0.5, "presence on grey {}", grey.presence);
    }
}
