//! The BlazeFace model bytes, its folded layer plan (shared by the CPU and GPU networks), the
//! SSD anchors and the input preprocessing shared by both back-ends.

use std::sync::Arc;

use frame::Frame;

use crate::plan::{self, Plan, PlanError};

/// MediaPipe's short-range ("front") BlazeFace, ONNX (tf2onnx, opset 12), NHWC [1,128,128,3].
pub(crate) const BLAZEFACE_ONNX: &[u8] =
    include_bytes!("../assets/blazeface/face_detection_front_128x128_barracuda.onnx");

/// Side of the square network input.
pub(crate) const INPUT_SIDE: usize = 128;
/// Floats in one network input (NHWC, one frame).
pub(crate) const INPUT_LEN: usize = INPUT_SIDE * INPUT_SIDE * 3;
/// Number of SSD anchors (16×16×2 + 8×8×6).
pub(crate) const NUM_ANCHORS: usize = 896;
/// Regression values per anchor: box (cx, cy, w, h) + 6 keypoints (x, y).
pub(crate) const NUM_COORDS: usize = 16;

/// Decodes the committed ONNX file and folds it into layers (a few milliseconds; done once
/// per detector, and shared by its clones).
pub(crate) fn load_plan() -> Result<Arc<Plan>, PlanError> {
    plan::plan_from_onnx(BLAZEFACE_ONNX).map(Arc::new)
}

/// Raw network output for one input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawOutput {
    /// 896 score logits.
    pub(crate) scores: Vec<f32>,
    /// 896 × 16 regressors, in input pixels (0..128) relative to the anchor centre.
    pub(crate) regressors: Vec<f32>,
}

/// The 896 anchor centres `(x, y)` in [0, 1], MediaPipe's `SsdAnchorsCalculator` for the front
/// model (4 layers, strides 8, 16, 16, 16, offset 0.5, fixed size 1): layers with equal stride
/// merge, giving 2 anchors per cell on the 16×16 grid then 6 per cell on the 8×8 grid,
/// in (y, x, anchor) order.
pub(crate) fn anchors() -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(NUM_ANCHORS);
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..grid {
            for x in 0..grid {
                let c = [
                    (x as f32 + 0.5) / grid as f32,
                    (y as f32 + 0.5) / grid as f32,
                ];
                out.extend(std::iter::repeat_n(c, per_cell));
            }
        }
    }
    out
}

/// A square region of the source frame mapped onto the 128×128 input (a letterbox when it
/// reaches outside the frame), in frame coordinates (pixel centres at integers): input pixel
/// `i` samples the source at `left + (i + 0.5) * side / 128`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Letterbox {
    /// Left edge in source pixels (continuous coordinates: pixel `x` covers `[x-0.5, x+0.5)`).
    pub(crate) left: f32,
    /// Top edge.
    pub(crate) top: f32,
    /// Side length in source pixels.
    pub(crate) side: f32,
    /// Rotation about the region's centre, radians: the input's x axis points along
    /// `(cos, sin)` in the source (so a face whose eye line has this angle comes out upright).
    pub(crate) angle: f32,
}

impl Letterbox {
    /// The whole frame, centred, padded to a square.
    pub(crate) fn whole(width: u32, height: u32) -> Self {
        let side = width.max(height) as f32;
        Self {
            left: (width as f32 - side) / 2.0 - 0.5,
            top: (height as f32 - side) / 2.0 - 0.5,
            side,
            angle: 0.0,
        }
    }

    /// A square of `side` centred at `(cx, cy)`, rotated by `angle`.
    pub(crate) fn centred(cx: f32, cy: f32, side: f32, angle: f32) -> Self {
        Self {
            left: cx - side / 2.0,
            top: cy - side / 2.0,
            side,
            angle,
        }
    }

    /// Maps a normalised input point (0..1) to source pixel coordinates.
    pub(crate) fn to_source(self, p: [f32; 2]) -> [f32; 2] {
        if self.angle == 0.0 {
            return [self.left + p[0] * self.side, self.top + p[1] * self.side];
        }
        let half = self.side / 2.0;
        let (lx, ly) = ((p[0] - 0.5) * self.side, (p[1] - 0.5) * self.side);
        let (s, c) = self.angle.sin_cos();
        [
            self.left + half + c * lx - s * ly,
            self.top + half + s * lx + c * ly,
        ]
    }

    /// [`Self::to_source`] as `origin + u * du + v * dv` for the input point `(u, v)`: the
    /// trigonometry done once per region instead of once per sample.
    fn affine(self) -> ([f32; 2], [f32; 2], [f32; 2]) {
        let (s, c) = if self.angle == 0.0 {
            (0.0, 1.0)
        } else {
            self.angle.sin_cos()
        };
        let (side, half) = (self.side, self.side / 2.0);
        let origin = [
            self.left + half - (c - s) * half,
            self.top + half - (s + c) * half,
        ];
        (origin, [c * side, s * side], [-s * side, c * side])
    }
}

/// Fills `out` (NHWC [128,128,3], values in [-1, 1] as MediaPipe's `(v / 127.5) - 1`) from the
/// `region` of `image`. Downscaling averages an `n×n` grid of bilinear taps per input pixel
/// (`n = ceil(side / 128)`, at most 4) so that small faces in big frames do not alias. Outside
/// the frame the input is black (-1), as MediaPipe's letterbox.
pub(crate) fn preprocess(image: &Frame, region: &Letterbox, out: &mut [f32]) {
    assert_eq!(out.len(), INPUT_LEN, "blazeface input buffer length");
    let step = region.side / INPUT_SIDE as f32;
    let taps = (step.ceil() as usize).clamp(1, 4);
    let (w, h) = (image.width() as i64, image.height() as i64);
    let data = image.data();
    let row = (w * 3) as usize;
    // A bilinear sample at (sx, sy): the four texels, black (0) outside the frame.
    let sample = |sx: f32, sy: f32, acc: &mut [f32; 3]| {
        let (x0, fx) = floor_frac(sx);
        let (y0, fy) = floor_frac(sy);
        if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
            // Inside: no bounds checks per texel.
            let i = ((y0 * w + x0) * 3) as usize;
            let (top, bot) = (&data[i..i + 6], &data[i + row..i + row + 6]);
            let px = |s: &[u8]| [f32::from(s[0]), f32::from(s[1]), f32::from(s[2])];
            let quad = [px(top), px(&top[3..]), px(bot), px(&bot[3..])];
            return blend(&quad, fx, fy, acc);
        }
        let texel = |x: i64, y: i64| -> [f32; 3] {
            if x < 0 || y < 0 || x >= w || y >= h {
                return [0.0; 3];
            }
            let i = ((y * w + x) * 3) as usize;
            [data[i] as f32, data[i + 1] as f32, data[i + 2] as f32]
        };
        let quad = [
            texel(x0, y0),
            texel(x0 + 1, y0),
            texel(x0, y0 + 1),
            texel(x0 + 1, y0 + 1),
        ];
        blend(&quad, fx, fy, acc);
    };
    let norm = 1.0 / (taps * taps) as f32;
    let (origin, du, dv) = region.affine();
    // The tap positions along each axis, `(i + (t + 0.5) / taps) / 128`, times the region's
    // axes: the same products as computing them per sample, so the same sums.
    let along = |d: [f32; 2]| -> Vec<[f32; 2]> {
        (0..INPUT_SIDE * taps)
            .map(|k| {
                let (i, t) = (k / taps, k % taps);
                let u = (i as f32 + (t as f32 + 0.5) / taps as f32) / INPUT_SIDE as f32;
                [u * d[0], u * d[1]]
            })
            .collect()
    };
    let (us, vs) = (along(du), along(dv));
    for iy in 0..INPUT_SIDE {
        for ix in 0..INPUT_SIDE {
            let mut acc = [0.0f32; 3];
            for v in &vs[iy * taps..(iy + 1) * taps] {
                for u in &us[ix * taps..(ix + 1) * taps] {
                    let sx = origin[0] + u[0] + v[0];
                    let sy = origin[1] + u[1] + v[1];
                    sample(sx, sy, &mut acc);
                }
            }
            let o = (iy * INPUT_SIDE + ix) * 3;
            for c in 0..3 {
                out[o + c] = acc[c] * norm / 127.5 - 1.0;
            }
        }
    }
}

/// Adds the bilinear blend of the texels `[p00, p10, p01, p11]` at fraction (`fx`, `fy`).
#[inline(always)]
fn blend(q: &[[f32; 3]; 4], fx: f32, fy: f32, acc: &mut [f32; 3]) {
    for c in 0..3 {
        let t = q[0][c] + (q[1][c] - q[0][c]) * fx;
        let b = q[2][c] + (q[3][c] - q[2][c]) * fx;
        acc[c] += t + (b - t) * fy;
    }
}

/// `(floor(v), v - floor(v))` without a libm call (baseline x86-64 has no rounding
/// instruction, and `f32::floor` becomes one there); exact for |v| < 2^23, i.e. any pixel
/// coordinate.
#[inline(always)]
fn floor_frac(v: f32) -> (i64, f32) {
    let t = v as i64;
    let t = t - i64::from((t as f32) > v);
    (t, v - t as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_net::CpuNet;
    use crate::testutil::{astronaut, nearest_crop};

    /// onnxruntime's outputs of the committed model on four real inputs
    /// (`tests/golden/make_golden.py`): every score logit within 1e-3 and every regressor
    /// (input pixels, up to about ±130) within 1e-3 · max(1, |value|), for both builds of the
    /// CPU kernels (plain, and AVX2 + FMA where the CPU has them).
    #[test]
    fn cpu_network_matches_onnxruntime_on_every_output() {
        let golden: Vec<f32> = include_bytes!("../tests/golden/blazeface_golden.bin")
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let per_input = NUM_ANCHORS * (1 + NUM_COORDS);
        assert_eq!(golden.len(), 4 * per_input);
        let img = astronaut();
        // Crop x 96..352, y 0..256 sampled 2×2 at pixel centres: exactly its 2×2 mean.
        let region = Letterbox {
            left: 95.5,
            top: -0.5,
            side: 256.0,
            angle: 0.0,
        };
        let mut mean = vec![0.0; INPUT_LEN];
        preprocess(&img, &region, &mut mean);
        let inputs = [
            mean,
            nearest_crop(&img, 122, 17, 200, false),
            nearest_crop(&img, 0, 0, 512, false),
            nearest_crop(&img, 150, 45, 150, true),
        ];
        let plan = load_plan().unwrap();
        for net in [CpuNet::new(plan.clone()).without_fma(), CpuNet::new(plan)] {
            let mut net = net;
            for (k, (input, want)) in inputs.iter().zip(golden.chunks(per_input)).enumerate() {
                let raw = net.run(input);
                let (scores, regressors) = want.split_at(NUM_ANCHORS);
                for (a, (got, want)) in raw.scores.iter().zip(scores).enumerate() {
                    assert!(
                        (got - want).abs() < 1e-3,
                        "input {k} anchor {a}: {got} vs {want}"
                    );
                }
                for (i, (got, want)) in raw.regressors.iter().zip(regressors).enumerate() {
                    assert!(
                        (got - want).abs() < 1e-3 * want.abs().max(1.0),
                        "input {k} regressor {i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_precomputed_affine_maps_like_to_source() {
        for region in [
            Letterbox::whole(640, 360),
            Letterbox::centred(222.0, 118.0, 250.0, 0.3),
            Letterbox::centred(900.5, 40.0, 96.0, -2.9),
        ] {
            let (origin, du, dv) = region.affine();
            for p in [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.37, 0.81], [1.0, 1.0]] {
                let got = [
                    origin[0] + p[0] * du[0] + p[1] * dv[0],
                    origin[1] + p[0] * du[1] + p[1] * dv[1],
                ];
                let want = region.to_source(p);
                for k in 0..2 {
                    assert!(
                        (got[k] - want[k]).abs() < 1e-3,
                        "{region:?} {p:?}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn floor_frac_is_floor_and_its_remainder(v in -1.0e6f32..1.0e6) {
            let (i, f) = floor_frac(v);
            proptest::prop_assert_eq!(i as f32, v.floor());
            proptest::prop_assert_eq!(f, v - v.floor());
        }
    }

    #[test]
    fn whole_frame_letterbox_centres_the_frame() {
        let lb = Letterbox::whole(640, 360);
        assert_eq!(lb.to_source([0.5, 0.5]), [319.5, 179.5]);
        assert_eq!(lb.to_source([0.0, 0.0]), [-0.5, -140.5]);
        let turned = Letterbox::centred(100.0, 50.0, 20.0, std::f32::consts::FRAC_PI_2);
        let p = turned.to_source([1.0, 0.5]);
        assert!(
            (p[0] - 100.0).abs() < 1e-4 && (p[1] - 60.0).abs() < 1e-4,
            "{p:?}"
        );
    }
}
