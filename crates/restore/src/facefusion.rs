//! FaceFusion's paste (`facefusion/face_helper.py`, `paste_back` and `calculate_paste_area`)
//! and the two masks its lip syncer pastes with (`facefusion/face_masker.py`,
//! `create_area_mask` and `create_box_mask`), on the CPU with OpenCV's own arithmetic
//! ([`frame::cv`]), so that a learned model's output lands in the frame as FaceFusion puts it.

use std::sync::Arc;

use frame::cv::{self, Border};
use frame::{Affine2, Frame};

use crate::{FacePaste, RestoreError};

/// A weight per face pixel (0..1, row-major R×R): where and how much of the face
/// [`FacePaste::weights`] pastes.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceWeights {
    size: u32,
    values: Vec<f32>,
}

/// FaceFusion's `lower-face` area: the 68 landmarks' jaw from 3 to 13 and the nostrils 31 to
/// 35 (`facefusion/choices.py`, `face_mask_area_set`).
const LOWER_FACE: [usize; 16] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31];

impl FaceWeights {
    /// Weights of an R×R face, checked: `values.len()` is R², every value finite.
    pub fn new(size: u32, values: Vec<f32>) -> Result<Self, String> {
        if values.len() != size as usize * size as usize {
            return Err(format!("{} weights for a {size}x{size} face", values.len()));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err("a weight is not finite".into());
        }
        Ok(Self { size, values })
    }

    /// The face's side R.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The weights, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// FaceFusion's `lower-face` area mask of an R×R face from its 68 landmarks (face
    /// pixels): the points truncated to integers (`astype(int32)`), their convex hull filled
    /// with 1 (`cv2.fillConvexPoly`), blurred (`cv2.GaussianBlur`, σ 5), then
    /// `(clip(m, ½, 1) − ½)·2`. `None` with fewer than 68 points.
    pub fn facefusion_lower_face(size: u32, landmarks_68: &[[f32; 2]]) -> Option<Self> {
        if landmarks_68.len() < 68 {
            return None;
        }
        let r = size as usize;
        let points: Vec<[i32; 2]> = LOWER_FACE
            .iter()
            .map(|&i| landmarks_68[i].map(|v| v as i32))
            .collect();
        let hull = cv::convex_hull_i32(&points);
        let mut mask = vec![0.0f32; r * r];
        cv::fill_convex_poly(&mut mask, r, r, &hull, 1.0);
        // The blur reaches half a kernel beyond the hull; elsewhere the mask stays 0, so only
        // that rectangle is filtered (the same values there as a whole-image blur).
        let reach = cv::gaussian_ksize_f32(5.0) as i64 / 2 + 1;
        let lo = |k: usize| {
            let v = hull.iter().map(|p| i64::from(p[k])).min().unwrap_or(0);
            (v - reach).clamp(0, r as i64) as usize
        };
        let hi = |k: usize| {
            let v = hull.iter().map(|p| i64::from(p[k])).max().unwrap_or(0);
            (v + reach + 1).clamp(0, r as i64) as usize
        };
        let (x0, y0, x1, y1) = (lo(0), lo(1), hi(0), hi(1));
        let rect = cv::Rect {
            x: x0,
            y: y0,
            width: x1.saturating_sub(x0),
            height: y1.saturating_sub(y0),
        };
        let mut values = vec![0.0f32; r * r];
        if rect.width > 0 && rect.height > 0 {
            let blurred = cv::gaussian_blur_f32_rect(&mask, r, r, 5.0, rect);
            for (row, src) in blurred.chunks_exact(rect.width).enumerate() {
                let at = (rect.y + row) * r + rect.x;
                for (v, m) in values[at..at + rect.width].iter_mut().zip(src) {
                    *v = (m.clamp(0.5, 1.0) - 0.5) * 2.0;
                }
            }
        }
        Some(Self { size, values })
    }

    /// FaceFusion's box mask of an R×R face (`create_box_mask` with its default
    /// `face_mask_blur` 0.3 and no padding): `blur = trunc(R·0.5·0.3)`, a border of
    /// `max(blur / 2, 1)` pixels set to 0, then `cv2.GaussianBlur` with σ = `blur / 4`.
    pub fn facefusion_box(size: u32) -> Self {
        let r = size as usize;
        let blur_amount = (f64::from(size) * 0.5 * 0.3) as usize;
        let blur_area = (blur_amount / 2).max(1).min(r);
        let mut mask = vec![1.0f32; r * r];
        for y in 0..r {
            for x in 0..r {
                if y < blur_area || y >= r - blur_area || x < blur_area || x >= r - blur_area {
                    mask[y * r + x] = 0.0;
                }
            }
        }
        let values = if blur_amount > 0 {
            cv::gaussian_blur_f32(&mask, r, r, blur_amount as f64 * 0.25)
        } else {
            mask
        };
        Self { size, values }
    }
}

/// The box mask of an R×R face, made once per size.
pub fn facefusion_box_shared(size: u32) -> Arc<FaceWeights> {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<Vec<Arc<FaceWeights>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = cache.iter().find(|w| w.size == size) {
        return Arc::clone(w);
    }
    let w = Arc::new(FaceWeights::facefusion_box(size));
    cache.push(Arc::clone(&w));
    w
}

/// Checks a weighted paste before any frame is touched.
pub(crate) fn check(
    index: usize,
    paste: &FacePaste,
    weights: &FaceWeights,
) -> Result<(), RestoreError> {
    let bad = |why: String| RestoreError::Mask { index, why };
    if paste.mask.is_some() {
        return Err(bad("a face has both weights and a polygon mask".into()));
    }
    if weights.size != paste.face.width() || weights.size != paste.face.height() {
        return Err(bad(format!(
            "{0}x{0} weights for a {1}x{2} face",
            weights.size,
            paste.face.width(),
            paste.face.height()
        )));
    }
    if paste.to_crop.inverse().is_none() {
        return Err(bad("the frame → face transform is singular".into()));
    }
    Ok(())
}

/// FaceFusion's `paste_back` of `face` (R×R) into `frame` with `weights`, `to_crop` the frame →
/// face map (FaceFusion's `affine_matrix`): over the frame rectangle that the face's corners
/// map to (each rounded to whole pixels, as FaceFusion's `cv2.transform` of integer points
/// does, clipped to the frame), the weights and the face are warped into the
/// frame with `cv2.warpAffine` (bilinear; the weights with a zero border and clipped to 0..1,
/// the face with its edge replicated) and blended in f32, `frame·(1 − m) + face·m`, truncated
/// to 8 bits as numpy's `astype(uint8)`. Where the warped weight is 0 the frame keeps its
/// value bit for bit.
pub(crate) fn paste_back(
    frame: &mut Frame,
    face: &Frame,
    weights: &FaceWeights,
    to_crop: &Affine2,
) {
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let r = face.width() as usize;
    let inverse = cv::invert_affine(to_crop.m);
    // FaceFusion maps the crop's integer corners with `cv2.transform`, which keeps their
    // integer type: each mapped corner is rounded (`cvRound`, ties to even) before its
    // floor/ceil, so the area is the rounded corners' bounding box.
    let corners = [
        [0.0, 0.0],
        [r as f64, 0.0],
        [r as f64, r as f64],
        [0.0, r as f64],
    ];
    let mapped = corners.map(|[x, y]| {
        [
            (inverse[0][0] * x + inverse[0][1] * y + inverse[0][2]).round_ties_even() as i64,
            (inverse[1][0] * x + inverse[1][1] * y + inverse[1][2]).round_ties_even() as i64,
        ]
    });
    let min = |k: usize| mapped.iter().map(|p| p[k]).min().unwrap_or(0);
    let max = |k: usize| mapped.iter().map(|p| p[k]).max().unwrap_or(0);
    let x1 = min(0).clamp(0, fw);
    let y1 = min(1).clamp(0, fh);
    let x2 = max(0).clamp(0, fw);
    let y2 = max(1).clamp(0, fh);
    let (pw, ph) = ((x2 - x1) as usize, (y2 - y1) as usize);
    if pw == 0 || ph == 0 {
        return;
    }
    let mut paste_matrix = inverse;
    paste_matrix[0][2] -= x1 as f64;
    paste_matrix[1][2] -= y1 as f64;
    let mask = cv::warp_affine_f32(
        &weights.values,
        r,
        r,
        paste_matrix,
        false,
        pw,
        ph,
        Border::Constant(0.0),
    );
    let warped = cv::warp_affine_u8(
        face.data(),
        r,
        r,
        3,
        paste_matrix,
        false,
        pw,
        ph,
        Border::Replicate,
    );
    let stride = frame.width() as usize * 3;
    let data = frame.data_mut();
    for y in 0..ph {
        for x in 0..pw {
            let m = mask[y * pw + x].clamp(0.0, 1.0);
            if m == 0.0 {
                continue;
            }
            let at = (y1 as usize + y) * stride + (x1 as usize + x) * 3;
            let from = (y * pw + x) * 3;
            for c in 0..3 {
                let f = f32::from(data[at + c]);
                let v = f * (1.0 - m) + f32::from(warped[from + c]) * m;
                data[at + c] = v as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A face's 68 landmarks in a 512 crop: the jaw a half ellipse through the chin, the
    /// nostrils at y = 300 (only 3–13 and 31–35 make the lower-face area).
    fn landmarks() -> Vec<[f32; 2]> {
        let mut p = vec![[256.0f32, 200.0]; 68];
        for (i, q) in p.iter_mut().enumerate().take(17) {
            let t = std::f32::consts::PI * i as f32 / 16.0;
            *q = [256.0 - 180.0 * t.cos(), 240.0 + 220.0 * t.sin()];
        }
        for (k, i) in (31..36).enumerate() {
            p[i] = [226.0 + 15.0 * k as f32, 300.0];
        }
        p
    }

    #[test]
    fn the_lower_face_mask_is_zero_outside_its_hull_and_one_deep_inside() {
        let m = FaceWeights::facefusion_lower_face(512, &landmarks()).unwrap();
        let at = |x: usize, y: usize| m.values()[y * 512 + x];
        assert_eq!(at(256, 380), 1.0, "deep inside");
        assert_eq!(at(256, 290), 0.0, "above the nostrils");
        assert_eq!(at(20, 470), 0.0, "outside the jaw");
        assert_eq!(at(256, 470), 0.0, "below the chin");
        assert!(m.values().iter().all(|v| (0.0..=1.0).contains(v)));
        // The ramp at the top edge: 0 at the nostril line, rising to 1 within the blur's reach
        // (σ 5: 20 px).
        assert!(at(256, 301) < at(256, 306) && at(256, 306) < at(256, 312));
        assert!(at(256, 321) > 0.999, "{}", at(256, 321));
        assert!(FaceWeights::facefusion_lower_face(512, &landmarks()[..60]).is_none());
    }

    #[test]
    fn the_box_mask_is_symmetric_and_soft_at_the_border() {
        let m = facefusion_box_shared(512);
        assert!(Arc::ptr_eq(&m, &facefusion_box_shared(512)), "made once");
        let at = |x: usize, y: usize| m.values()[y * 512 + x];
        assert!((at(256, 256) - 1.0).abs() < 1e-6);
        assert!(at(0, 256) > 0.0 && at(0, 256) < 0.1, "{}", at(0, 256));
        for x in 1..256 {
            assert!(
                at(x, 256) >= at(x - 1, 256),
                "rises towards the centre at {x}"
            );
            // OpenCV's SIMD and scalar columns round differently: symmetric to float rounding.
            assert!(
                (at(x, 256) - at(511 - x, 256)).abs() < 1e-6,
                "symmetric at {x}"
            );
            // Rows are filtered before columns, so the transpose agrees to float rounding.
            assert!((at(256, x) - at(x, 256)).abs() < 1e-6, "square at {x}");
        }
    }

    /// The paste: where the warped weight is 0 the frame keeps every byte; deep inside the
    /// mask the face's value lands (a pure translation: no resampling error).
    #[test]
    fn paste_back_changes_only_where_the_mask_reaches() {
        let mut data = Vec::with_capacity(900 * 700 * 3);
        for i in 0..900 * 700 {
            data.extend([(i % 251) as u8, (i % 241) as u8, (i % 239) as u8]);
        }
        let before = Frame::new(900, 700, data).unwrap();
        let face = Frame::filled(512, 512, [10, 200, 30]);
        let weights = FaceWeights::facefusion_lower_face(512, &landmarks()).unwrap();
        let to_crop = Affine2::similarity(1.0, 0.0, -100.0, -50.0);
        let mut frame = before.clone();
        paste_back(&mut frame, &face, &weights, &to_crop);
        let (mut changed, mut inside) = (0, 0);
        for y in 0..700u32 {
            for x in 0..900u32 {
                let (cx, cy) = (x as i64 - 100, y as i64 - 50);
                let w = if (0..512).contains(&cx) && (0..512).contains(&cy) {
                    weights.values()[cy as usize * 512 + cx as usize]
                } else {
                    0.0
                };
                if w == 0.0 {
                    assert_eq!(frame.pixel(x, y), before.pixel(x, y), "({x}, {y})");
                } else {
                    changed += 1;
                    if w == 1.0 {
                        assert_eq!(frame.pixel(x, y), [10, 200, 30], "({x}, {y})");
                        inside += 1;
                    }
                }
            }
        }
        assert!(inside > 10_000 && changed > inside, "{inside} of {changed}");
    }
}
