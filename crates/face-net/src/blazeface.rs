//! BlazeFace: the model bytes, its folded layer plan (shared by the CPU and GPU networks), the
//! SSD anchors, the input preprocessing (the resampler) and the decoding of the raw outputs
//! into detections (sigmoid scores, anchors, MediaPipe's weighted non-max suppression).

use std::sync::Arc;

use frame::Frame;

use crate::cpu_net::CpuNet;
use crate::plan::{self, Plan, PlanError};

/// MediaPipe's short-range ("front") BlazeFace, ONNX (tf2onnx, opset 12), NHWC [1,128,128,3].
pub(crate) const BLAZEFACE_ONNX: &[u8] =
    include_bytes!("../assets/blazeface/face_detection_front_128x128_barracuda.onnx");

/// Side of the square network input.
pub const INPUT_SIDE: usize = 128;
/// Floats in one network input (NHWC, one frame).
pub const INPUT_LEN: usize = INPUT_SIDE * INPUT_SIDE * 3;
/// Number of SSD anchors (16×16×2 + 8×8×6).
pub const NUM_ANCHORS: usize = 896;
/// Regression values per anchor: box (cx, cy, w, h) + 6 keypoints (x, y).
pub const NUM_COORDS: usize = 16;

/// Decodes the committed ONNX file and folds it into layers (a few milliseconds; done once
/// per detector, and shared by its clones).
pub(crate) fn load_plan() -> Result<Arc<Plan>, PlanError> {
    plan::plan_from_onnx(BLAZEFACE_ONNX).map(Arc::new)
}

pub use crate::gpu::{BlazeFaceGpuError, GpuBlazeFace};

/// BlazeFace on the CPU (the folded plan run by our kernels: AVX2 + FMA where the CPU has
/// them, portable loops elsewhere). Clones made by [`Self::clone_shared`] share the plan and
/// have their own activation buffers (one per thread).
#[derive(Debug, Clone)]
pub struct CpuBlazeFace {
    net: CpuNet,
}

impl CpuBlazeFace {
    /// Folds the committed model (a few milliseconds).
    pub fn new() -> Result<Self, PlanError> {
        Ok(Self {
            net: CpuNet::new(load_plan()?),
        })
    }

    /// Another instance on the same plan, with buffers of its own.
    pub fn clone_shared(&self) -> Self {
        Self {
            net: self.net.clone_shared(),
        }
    }

    /// Runs one NHWC 128×128×3 input (see [`preprocess`]). Panics when `input` is not
    /// [`INPUT_LEN`] floats long.
    pub fn run(&mut self, input: &[f32]) -> RawOutput {
        self.net.run(input)
    }
}

/// Raw network output for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOutput {
    /// 896 score logits.
    pub scores: Vec<f32>,
    /// 896 × 16 regressors, in input pixels (0..128) relative to the anchor centre.
    pub regressors: Vec<f32>,
}

/// The 896 anchor centres `(x, y)` in [0, 1], MediaPipe's `SsdAnchorsCalculator` for the front
/// model (4 layers, strides 8, 16, 16, 16, offset 0.5, fixed size 1): layers with equal stride
/// merge, giving 2 anchors per cell on the 16×16 grid then 6 per cell on the 8×8 grid,
/// in (y, x, anchor) order.
pub fn anchors() -> Vec<[f32; 2]> {
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

/// An axis-aligned box in source-frame pixels (pixel centres at integer coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Rect {
    /// Area (`w * h`).
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Centre point.
    pub fn centre(&self) -> [f32; 2] {
        [self.x + self.w / 2.0, self.y + self.h / 2.0]
    }

    /// Intersection over union with `other` (0 when both are empty).
    pub fn iou(&self, other: &Rect) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// One detected face in source-frame pixels.
///
/// `landmarks` follow BlazeFace's order: eye on the image left (the subject's right eye), eye
/// on the image right, nose tip, mouth centre, ear on the image left, ear on the image right.
/// Alignment uses the first four.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Face box.
    pub bbox: Rect,
    /// Keypoints, at least four (see above).
    pub landmarks: Vec<[f32; 2]>,
    /// Confidence in [0, 1].
    pub score: f32,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}

/// Decodes one raw output into detections: the candidates whose sigmoid score reaches
/// `min_score`, boxes and keypoints taken from the anchors (see [`anchors`]) and mapped
/// through `letterbox` into source pixels, merged by [`weighted_nms`] at `iou`.
pub fn decode(
    raw: &RawOutput,
    anchors: &[[f32; 2]],
    letterbox: &Letterbox,
    min_score: f32,
    iou: f32,
) -> Vec<Detection> {
    debug_assert_eq!(raw.scores.len(), NUM_ANCHORS);
    let scale = INPUT_SIDE as f32;
    let mut candidates: Vec<Detection> = Vec::new();
    for (i, (&logit, anchor)) in raw.scores.iter().zip(anchors).enumerate() {
        let score = sigmoid(logit);
        if score < min_score {
            continue;
        }
        let r = &raw.regressors[i * NUM_COORDS..(i + 1) * NUM_COORDS];
        let cx = r[0] / scale + anchor[0];
        let cy = r[1] / scale + anchor[1];
        let (w, h) = (r[2] / scale, r[3] / scale);
        // The box is axis-aligned in the (possibly rotated) region: keep its size, map its centre.
        let centre = letterbox.to_source([cx, cy]);
        let (bw, bh) = (w * letterbox.side, h * letterbox.side);
        let landmarks = (0..6)
            .map(|k| {
                letterbox.to_source([
                    r[4 + 2 * k] / scale + anchor[0],
                    r[5 + 2 * k] / scale + anchor[1],
                ])
            })
            .collect();
        candidates.push(Detection {
            bbox: Rect {
                x: centre[0] - bw / 2.0,
                y: centre[1] - bh / 2.0,
                w: bw,
                h: bh,
            },
            landmarks,
            score,
        });
    }
    weighted_nms(candidates, iou)
}

type Numbered = (usize, Detection);

/// MediaPipe's weighted non-max suppression: take the best remaining candidate, gather every
/// remaining candidate overlapping it by more than `iou`, replace the group by the
/// score-weighted mean of its boxes and keypoints (keeping the best score).
pub fn weighted_nms(mut candidates: Vec<Detection>, iou: f32) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = candidates.first().cloned() {
        let (group, rest): (Vec<Numbered>, Vec<Numbered>) = candidates
            .into_iter()
            .enumerate()
            .partition(|(i, c)| *i == 0 || c.bbox.iou(&best.bbox) > iou);
        candidates = rest.into_iter().map(|(_, c)| c).collect();
        let group: Vec<Detection> = group.into_iter().map(|(_, c)| c).collect();
        let total: f32 = group.iter().map(|d| d.score).sum();
        let mut merged = Detection {
            bbox: Rect::default(),
            landmarks: vec![[0.0; 2]; best.landmarks.len()],
            score: best.score,
        };
        for d in &group {
            let w = d.score / total;
            merged.bbox.x += d.bbox.x * w;
            merged.bbox.y += d.bbox.y * w;
            merged.bbox.w += d.bbox.w * w;
            merged.bbox.h += d.bbox.h * w;
            for (m, p) in merged.landmarks.iter_mut().zip(&d.landmarks) {
                m[0] += p[0] * w;
                m[1] += p[1] * w;
            }
        }
        out.push(merged);
    }
    out
}

/// A square region of the source frame mapped onto the 128×128 input (a letterbox when it
/// reaches outside the frame), in frame coordinates (pixel centres at integers): input pixel
/// `i` samples the source at `left + (i + 0.5) * side / 128`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Left edge in source pixels (continuous coordinates: pixel `x` covers `[x-0.5, x+0.5)`).
    pub left: f32,
    /// Top edge.
    pub top: f32,
    /// Side length in source pixels.
    pub side: f32,
    /// Rotation about the region's centre, radians: the input's x axis points along
    /// `(cos, sin)` in the source (so a face whose eye line has this angle comes out upright).
    pub angle: f32,
}

impl Letterbox {
    /// The whole frame, centred, padded to a square.
    pub fn whole(width: u32, height: u32) -> Self {
        let side = width.max(height) as f32;
        Self {
            left: (width as f32 - side) / 2.0 - 0.5,
            top: (height as f32 - side) / 2.0 - 0.5,
            side,
            angle: 0.0,
        }
    }

    /// A square of `side` centred at `(cx, cy)`, rotated by `angle`.
    pub fn centred(cx: f32, cy: f32, side: f32, angle: f32) -> Self {
        Self {
            left: cx - side / 2.0,
            top: cy - side / 2.0,
            side,
            angle,
        }
    }

    /// Maps a normalised input point (0..1) to source pixel coordinates.
    pub fn to_source(self, p: [f32; 2]) -> [f32; 2] {
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
/// the frame the input is black (-1), as MediaPipe's letterbox. On x86-64 with AVX2 (chosen at
/// run time) 8 input pixels are sampled at once, with the same operations in the same order
/// per pixel, so the result is bit for bit the portable one.
pub fn preprocess(image: &Frame, region: &Letterbox, out: &mut [f32]) {
    assert_eq!(out.len(), INPUT_LEN, "blazeface input buffer length");
    resample(image, region, INPUT_SIDE, Range::MinusOneToOne, out);
}

/// The value range a network wants its input in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// `v / 127.5 − 1` (BlazeFace).
    MinusOneToOne,
    /// `v / 255` (FaceMesh).
    ZeroToOne,
}

impl Range {
    /// `(divisor, offset)`: the input is `mean / divisor − offset`.
    fn scale(self) -> (f32, f32) {
        match self {
            Range::MinusOneToOne => (127.5, 1.0),
            Range::ZeroToOne => (255.0, 0.0),
        }
    }
}

/// [`preprocess`] for a `side`×`side` input (a multiple of 8) in `range`.
pub(crate) fn resample(
    image: &Frame,
    region: &Letterbox,
    side: usize,
    range: Range,
    out: &mut [f32],
) {
    assert!(
        side.is_multiple_of(8),
        "resampler side {side} is not a multiple of 8"
    );
    assert_eq!(out.len(), side * side * 3, "network input buffer length");
    let grid = Grid::new(region, side, range);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && image.data().len() < i32::MAX as usize {
        // SAFETY: the CPU reports AVX2, the target feature of `avx::preprocess`; byte
        // offsets into the frame fit an i32 (checked above), as that kernel requires.
        unsafe { avx::preprocess(image, &grid, out) };
        return;
    }
    preprocess_portable(image, &grid, out);
}

/// Where a region's taps fall: input pixel `(ix, iy)`'s tap `(tu, tv)` samples the source at
/// `(origin + u[ix][tu]) + v[iy][tv]` (per coordinate, in that order).
struct Grid {
    /// Input side in pixels.
    side: usize,
    /// See [`Range::scale`].
    divisor: f32,
    offset: f32,
    taps: usize,
    origin: [f32; 2],
    /// `[ix][tu]` offsets along the input's x axis.
    us: Vec<[f32; 2]>,
    /// `[iy][tv]` offsets along the input's y axis.
    vs: Vec<[f32; 2]>,
}

impl Grid {
    fn new(region: &Letterbox, side: usize, range: Range) -> Self {
        let step = region.side / side as f32;
        let taps = (step.ceil() as usize).clamp(1, 4);
        let (origin, du, dv) = region.affine();
        // The tap positions along each axis, `(i + (t + 0.5) / taps) / 128`, times the
        // region's axes: the same products as computing them per sample, so the same sums.
        let along = |d: [f32; 2]| -> Vec<[f32; 2]> {
            (0..side * taps)
                .map(|k| {
                    let (i, t) = (k / taps, k % taps);
                    let u = (i as f32 + (t as f32 + 0.5) / taps as f32) / side as f32;
                    [u * d[0], u * d[1]]
                })
                .collect()
        };
        let (divisor, offset) = range.scale();
        Self {
            side,
            divisor,
            offset,
            taps,
            origin,
            us: along(du),
            vs: along(dv),
        }
    }

    /// `1 / taps²`: the weight of one tap in a pixel's mean.
    fn norm(&self) -> f32 {
        1.0 / (self.taps * self.taps) as f32
    }
}

/// The input value of an accumulated sum of `taps²` samples.
#[inline(always)]
fn normalise(acc: f32, norm: f32, g: &Grid) -> f32 {
    acc * norm / g.divisor - g.offset
}

fn preprocess_portable(image: &Frame, grid: &Grid, out: &mut [f32]) {
    let Grid {
        taps, origin, side, ..
    } = *grid;
    let norm = grid.norm();
    for iy in 0..side {
        for ix in 0..side {
            let mut acc = [0.0f32; 3];
            for v in &grid.vs[iy * taps..(iy + 1) * taps] {
                for u in &grid.us[ix * taps..(ix + 1) * taps] {
                    let sx = origin[0] + u[0] + v[0];
                    let sy = origin[1] + u[1] + v[1];
                    let s = sample(image, sx, sy);
                    for c in 0..3 {
                        acc[c] += s[c];
                    }
                }
            }
            let o = (iy * side + ix) * 3;
            for c in 0..3 {
                out[o + c] = normalise(acc[c], norm, grid);
            }
        }
    }
}

/// The bilinear sample of `image` at `(sx, sy)`: the four texels, black (0) outside the frame.
#[inline(always)]
fn sample(image: &Frame, sx: f32, sy: f32) -> [f32; 3] {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let data = image.data();
    let row = (w * 3) as usize;
    let (x0, fx) = floor_frac(sx);
    let (y0, fy) = floor_frac(sy);
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // Inside: no bounds checks per texel.
        let i = ((y0 * w + x0) * 3) as usize;
        let (top, bot) = (&data[i..i + 6], &data[i + row..i + row + 6]);
        let px = |s: &[u8]| [f32::from(s[0]), f32::from(s[1]), f32::from(s[2])];
        let quad = [px(top), px(&top[3..]), px(bot), px(&bot[3..])];
        return blend(&quad, fx, fy);
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
    blend(&quad, fx, fy)
}

/// The bilinear blend of the texels `[p00, p10, p01, p11]` at fraction (`fx`, `fy`).
#[inline(always)]
fn blend(q: &[[f32; 3]; 4], fx: f32, fy: f32) -> [f32; 3] {
    std::array::from_fn(|c| {
        let t = q[0][c] + (q[1][c] - q[0][c]) * fx;
        let b = q[2][c] + (q[3][c] - q[2][c]) * fx;
        t + (b - t) * fy
    })
}

/// `(floor(v), v - floor(v))` without a libm call (baseline x86-64 has no rounding
/// instruction, and `f32::floor` becomes one there); exact for |v| < 2^23, i.e. any pixel
/// coordinate.
#[inline(always)]
fn floor_frac(v: f32) -> (i64, f32) {
    let t = floor_i64(v);
    (t, v - t as f32)
}

/// `v.floor()` as an integer without a libm call (see [`floor_frac`]): exact for finite `v`
/// within the `i64` range; NaN gives 0, as `v.floor() as i64` does.
#[inline(always)]
pub fn floor_i64(v: f32) -> i64 {
    let t = v as i64;
    t - i64::from((t as f32) > v)
}

/// The AVX2 resampler: 8 consecutive input pixels of a row per step, each lane doing what
/// [`preprocess_portable`] does for its pixel (no FMA: separate products and sums round as
/// the scalar code does). A tap whose 8 bilinear quads all lie inside the frame reads them
/// with 4 gathers of 4 bytes (R, G, B and one byte more, which is why the last texel of the
/// frame takes the other way); otherwise each lane takes [`sample`].
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_add_epi32, _mm256_add_ps, _mm256_and_si256, _mm256_castsi256_ps,
        _mm256_cmpgt_epi32, _mm256_cvtepi32_ps, _mm256_cvttps_epi32, _mm256_div_ps,
        _mm256_floor_ps, _mm256_i32gather_epi32, _mm256_movemask_ps, _mm256_mul_ps,
        _mm256_mullo_epi32, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_srli_epi32, _mm256_storeu_ps, _mm256_sub_ps,
    };

    use super::{Frame, Grid, sample};
    use crate::cpu_net::avx::load;

    /// Lanes per step.
    const L: usize = 8;

    /// The 8 lanes of `v`.
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    unsafe fn lanes(v: __m256) -> [f32; L] {
        let mut a = [0.0; L];
        // SAFETY: `a` holds 8 floats, and the caller guarantees AVX.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        a
    }

    /// See the module docs.
    ///
    /// # Safety
    /// The CPU must have AVX2, and every byte offset into the frame must fit an `i32`
    /// (`image.data().len() < i32::MAX`): the gathers' bounds are checked in `i32` lanes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn preprocess(image: &Frame, g: &Grid, out: &mut [f32]) {
        let data = image.data();
        let (w, h) = (image.width() as i32, image.height() as i32);
        let (taps, side) = (g.taps, g.side);
        // `[tu][ix]`: the x-axis offsets of tap `tu` for consecutive pixels, contiguous.
        let column = |k: usize| -> Vec<f32> {
            (0..taps * side)
                .map(|j| g.us[(j % side) * taps + j / side][k])
                .collect()
        };
        let (ux, uy) = (column(0), column(1));
        let (ox, oy) = (_mm256_set1_ps(g.origin[0]), _mm256_set1_ps(g.origin[1]));
        let (wv, row) = (_mm256_set1_epi32(w), _mm256_set1_epi32(w * 3));
        let (x_max, y_max) = (_mm256_set1_epi32(w - 1), _mm256_set1_epi32(h - 1));
        let (minus_one, three) = (_mm256_set1_epi32(-1), _mm256_set1_epi32(3));
        // The last byte a quad's gathers read, `+ row + 6`, must lie before `data.len()`.
        let last = _mm256_set1_epi32(data.len() as i32 - 6);
        let byte = _mm256_set1_epi32(0xff);
        let (norm, scale, offset) = (
            _mm256_set1_ps(g.norm()),
            _mm256_set1_ps(g.divisor),
            _mm256_set1_ps(g.offset),
        );
        for iy in 0..side {
            for x in (0..side).step_by(L) {
                let mut acc = [_mm256_setzero_ps(); 3];
                for v in &g.vs[iy * taps..(iy + 1) * taps] {
                    let (vx, vy) = (_mm256_set1_ps(v[0]), _mm256_set1_ps(v[1]));
                    for tu in 0..taps {
                        let at = tu * side + x;
                        // SAFETY: the CPU has AVX2 (this function's target feature); `load`
                        // checks the length.
                        let (dx, dy) = unsafe { (load(&ux[at..]), load(&uy[at..])) };
                        let sx = _mm256_add_ps(_mm256_add_ps(ox, dx), vx);
                        let sy = _mm256_add_ps(_mm256_add_ps(oy, dy), vy);
                        let (fx0, fy0) = (_mm256_floor_ps(sx), _mm256_floor_ps(sy));
                        let (fx, fy) = (_mm256_sub_ps(sx, fx0), _mm256_sub_ps(sy, fy0));
                        let (x0, y0) = (_mm256_cvttps_epi32(fx0), _mm256_cvttps_epi32(fy0));
                        let idx = _mm256_mullo_epi32(
                            _mm256_add_epi32(_mm256_mullo_epi32(y0, wv), x0),
                            three,
                        );
                        // (No iterator adaptors or array `map`s in this function: their
                        // closures would not inherit its target feature and stay calls.)
                        let inside = _mm256_and_si256(
                            _mm256_and_si256(
                                _mm256_cmpgt_epi32(x0, minus_one),
                                _mm256_cmpgt_epi32(y0, minus_one),
                            ),
                            _mm256_and_si256(
                                _mm256_and_si256(
                                    _mm256_cmpgt_epi32(x_max, x0),
                                    _mm256_cmpgt_epi32(y_max, y0),
                                ),
                                _mm256_cmpgt_epi32(last, _mm256_add_epi32(idx, row)),
                            ),
                        );
                        let s = if _mm256_movemask_ps(_mm256_castsi256_ps(inside)) == 0xff {
                            let gather = |off: __m256i| -> __m256i {
                                // SAFETY: every lane's quad lies inside the frame and its
                                // last gathered byte before `data.len()` (`inside`), so each
                                // 4-byte read at `idx (+ 3) (+ row)` is within `data`.
                                unsafe { _mm256_i32gather_epi32::<1>(data.as_ptr().cast(), off) }
                            };
                            let q = [
                                gather(idx),
                                gather(_mm256_add_epi32(idx, three)),
                                gather(_mm256_add_epi32(idx, row)),
                                gather(_mm256_add_epi32(_mm256_add_epi32(idx, row), three)),
                            ];
                            let channel = |word: __m256i, c: usize| -> __m256 {
                                let shifted = match c {
                                    0 => word,
                                    1 => _mm256_srli_epi32::<8>(word),
                                    _ => _mm256_srli_epi32::<16>(word),
                                };
                                _mm256_cvtepi32_ps(_mm256_and_si256(shifted, byte))
                            };
                            let mut s = [_mm256_setzero_ps(); 3];
                            for (c, s) in s.iter_mut().enumerate() {
                                let (q00, q10) = (channel(q[0], c), channel(q[1], c));
                                let (q01, q11) = (channel(q[2], c), channel(q[3], c));
                                let t = _mm256_sub_ps(q10, q00);
                                let t = _mm256_add_ps(q00, _mm256_mul_ps(t, fx));
                                let b = _mm256_sub_ps(q11, q01);
                                let b = _mm256_add_ps(q01, _mm256_mul_ps(b, fx));
                                *s = _mm256_add_ps(t, _mm256_mul_ps(_mm256_sub_ps(b, t), fy));
                            }
                            s
                        } else {
                            // SAFETY: the CPU has AVX2 (this function's target feature).
                            let (sx, sy) = unsafe { (lanes(sx), lanes(sy)) };
                            let mut per = [[0.0f32; L]; 3];
                            for j in 0..L {
                                let s = sample(image, sx[j], sy[j]);
                                for c in 0..3 {
                                    per[c][j] = s[c];
                                }
                            }
                            // SAFETY: as above; each `per[c]` holds 8 floats.
                            unsafe { [load(&per[0]), load(&per[1]), load(&per[2])] }
                        };
                        for c in 0..3 {
                            acc[c] = _mm256_add_ps(acc[c], s[c]);
                        }
                    }
                }
                let mut vals = [[0.0f32; L]; 3];
                for (v, a) in vals.iter_mut().zip(acc) {
                    let a = _mm256_div_ps(_mm256_mul_ps(a, norm), scale);
                    // SAFETY: the CPU has AVX2 (this function's target feature).
                    *v = unsafe { lanes(_mm256_sub_ps(a, offset)) };
                }
                let o = &mut out[(iy * side + x) * 3..][..L * 3];
                for (j, px) in o.chunks_exact_mut(3).enumerate() {
                    for c in 0..3 {
                        px[c] = vals[c][j];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// A `w`×`h` frame of pseudo-random bytes.
    fn noise(w: u32, h: u32, seed: u32) -> Frame {
        let mut x = seed | 1;
        let data = (0..w * h * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        Frame::new(w, h, data).unwrap()
    }

    /// An independent reference of [`preprocess`], written from its definition in f64: input
    /// pixel `(ix, iy)` is the mean of `taps × taps` bilinear samples (black outside the frame)
    /// at the points `((ix + (tu + ½) / taps) / 128, (iy + (tv + ½) / taps) / 128)` of the
    /// region (rotated by its angle about its centre), scaled to `v / 127.5 − 1`.
    fn reference_preprocess(image: &Frame, region: &Letterbox) -> Vec<f32> {
        let side = f64::from(region.side);
        let taps = ((side / INPUT_SIDE as f64).ceil() as usize).clamp(1, 4);
        let (sin, cos) = f64::from(region.angle).sin_cos();
        let centre = [
            f64::from(region.left) + side / 2.0,
            f64::from(region.top) + side / 2.0,
        ];
        let texel = |x: i64, y: i64, c: usize| -> f64 {
            if x < 0 || y < 0 || x >= i64::from(image.width()) || y >= i64::from(image.height()) {
                return 0.0;
            }
            f64::from(image.pixel(x as u32, y as u32)[c])
        };
        let mut out = Vec::with_capacity(INPUT_LEN);
        for iy in 0..INPUT_SIDE {
            for ix in 0..INPUT_SIDE {
                let mut acc = [0.0f64; 3];
                for tv in 0..taps {
                    for tu in 0..taps {
                        let u = (ix as f64 + (tu as f64 + 0.5) / taps as f64) / 128.0 - 0.5;
                        let v = (iy as f64 + (tv as f64 + 0.5) / taps as f64) / 128.0 - 0.5;
                        let sx = centre[0] + (cos * u - sin * v) * side;
                        let sy = centre[1] + (sin * u + cos * v) * side;
                        let (x0, y0) = (sx.floor(), sy.floor());
                        let (fx, fy) = (sx - x0, sy - y0);
                        let (x0, y0) = (x0 as i64, y0 as i64);
                        for (c, a) in acc.iter_mut().enumerate() {
                            let top = texel(x0, y0, c) * (1.0 - fx) + texel(x0 + 1, y0, c) * fx;
                            let bot =
                                texel(x0, y0 + 1, c) * (1.0 - fx) + texel(x0 + 1, y0 + 1, c) * fx;
                            *a += top * (1.0 - fy) + bot * fy;
                        }
                    }
                }
                let n = (taps * taps) as f64;
                out.extend(acc.map(|a| (a / n / 127.5 - 1.0) as f32));
            }
        }
        out
    }

    proptest::proptest! {
        /// The resampler against [`reference_preprocess`] (whichever kernel this CPU runs, so
        /// that the test means something without AVX2 too): every value within 1e-3, on
        /// regions of every tap count, turned, reaching past every edge of a small frame.
        #[test]
        fn resampling_matches_an_independent_reference(
            w in 1u32..200, h in 1u32..200, seed: u32,
            cx in -60f32..260.0, cy in -60f32..260.0, side in 1f32..520.0,
            angle in -3.2f32..3.2,
        ) {
            let img = noise(w, h, seed);
            let region = Letterbox::centred(cx, cy, side, angle);
            let mut got = vec![0.0; INPUT_LEN];
            preprocess(&img, &region, &mut got);
            let want = reference_preprocess(&img, &region);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                proptest::prop_assert!((g - w).abs() < 1e-3, "value {}: {} vs {}", i, g, w);
            }
        }

        /// The AVX2 resampler (where the CPU has it) against the portable one, bit for bit:
        /// regions of every tap count (side up to 4 × 128), turned, reaching past every edge
        /// of a frame small enough that many taps straddle a border or its last texel.
        #[test]
        fn resampling_is_the_portable_one_bit_for_bit(
            w in 1u32..300, h in 1u32..300, seed: u32,
            cx in -100f32..400.0, cy in -100f32..400.0, side in 1f32..520.0,
            angle in -3.2f32..3.2,
        ) {
            let img = noise(w, h, seed);
            let region = Letterbox::centred(cx, cy, side, angle);
            let mut got = vec![0.0; INPUT_LEN];
            preprocess(&img, &region, &mut got);
            let mut want = vec![0.0; INPUT_LEN];
            preprocess_portable(&img, &Grid::new(&region, INPUT_SIDE, Range::MinusOneToOne), &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                proptest::prop_assert_eq!(g.to_bits(), w.to_bits(), "value {}", i);
            }
        }

        #[test]
        fn floor_frac_is_floor_and_its_remainder(v in -1.0e6f32..1.0e6) {
            let (i, f) = floor_frac(v);
            proptest::prop_assert_eq!(i as f32, v.floor());
            proptest::prop_assert_eq!(f, v - v.floor());
        }
    }

    #[test]
    fn nms_merges_overlaps_weighted_by_score() {
        let d = |x: f32, score: f32| Detection {
            bbox: Rect {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            landmarks: vec![[x, 0.0]],
            score,
        };
        let out = weighted_nms(vec![d(0.0, 0.9), d(2.0, 0.3), d(50.0, 0.8)], 0.3);
        assert_eq!(out.len(), 2);
        assert!((out[0].bbox.x - 0.5).abs() < 1e-5 && out[0].score == 0.9);
        assert_eq!(out[1].bbox.x, 50.0);
    }

    #[test]
    fn anchors_match_mediapipe_layout() {
        let a = anchors();
        assert_eq!(a.len(), NUM_ANCHORS);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [1.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[517], a[512]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
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
