//! Per-face geometry and the mask arithmetic shared by the compute paths.

use frame::Frame;

use crate::{FacePaste, PasteMask, RestoreError};

/// A half-open pixel rectangle `[x0, x1) × [y0, y1)` inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) x0: usize,
    pub(crate) y0: usize,
    pub(crate) x1: usize,
    pub(crate) y1: usize,
}

impl Rect {
    pub(crate) fn width(&self) -> usize {
        self.x1 - self.x0
    }
    pub(crate) fn height(&self) -> usize {
        self.y1 - self.y0
    }
    pub(crate) fn contains(&self, x: isize, y: isize) -> bool {
        x >= self.x0 as isize
            && x < self.x1 as isize
            && y >= self.y0 as isize
            && y < self.y1 as isize
    }
    /// Grown by `by` on every side and clipped to `w × h`.
    pub(crate) fn padded(&self, by: usize, w: usize, h: usize) -> Rect {
        Rect {
            x0: self.x0.saturating_sub(by),
            y0: self.y0.saturating_sub(by),
            x1: (self.x1 + by).min(w),
            y1: (self.y1 + by).min(h),
        }
    }
}

/// What a compute path needs for one face.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Frame → face map, row-major 2×3, f32.
    pub(crate) a: [f32; 6],
    /// Face side R.
    pub(crate) r: u32,
    /// Frame pixels where the warped mask can be non-zero (with a 1-pixel zero margin).
    pub(crate) bbox: Rect,
    /// The paste mask's edges `[ax, ay, ux, uy]` (a corner and the unit vector to the next
    /// one, face pixels); empty without a mask.
    pub(crate) edges: Vec<[f32; 4]>,
    /// `1 / feather` of the paste mask (unused without one).
    pub(crate) inv_feather: f32,
}

/// The edges of a paste mask as [`Plan::edges`] holds them, after checking that the polygon
/// is convex and in `infer::convex_hull`'s order (every corner on the inner side of, or on,
/// every edge line, and the corners' mean strictly inside) and the feather positive.
pub(crate) fn mask_edges(
    index: usize,
    m: &PasteMask,
) -> Result<(Vec<[f32; 4]>, f32), RestoreError> {
    let bad = |why: String| RestoreError::Mask { index, why };
    let n = m.polygon.len();
    if n < 3 {
        return Err(bad(format!("a polygon of {n} corners (at least 3 needed)")));
    }
    if !(m.feather.is_finite() && m.feather > 0.0) {
        return Err(bad(format!(
            "feather {} is not a positive number",
            m.feather
        )));
    }
    if m.polygon.iter().flatten().any(|v| !v.is_finite()) {
        return Err(bad("a corner is not finite".into()));
    }
    let mut edges = Vec::with_capacity(n);
    for (i, a) in m.polygon.iter().enumerate() {
        let b = m.polygon[(i + 1) % n];
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        let len = (ex * ex + ey * ey).sqrt();
        if len <= 0.0 {
            return Err(bad(format!("corners {i} and {} coincide", (i + 1) % n)));
        }
        edges.push([a[0], a[1], ex / len, ey / len]);
    }
    let mean = m
        .polygon
        .iter()
        .fold([0.0f32; 2], |s, p| [s[0] + p[0], s[1] + p[1]]);
    let mean = [mean[0] / n as f32, mean[1] / n as f32];
    let convex = edges.iter().all(|e| {
        signed_distance(e, mean[0], mean[1]) > 0.0
            && m.polygon
                .iter()
                .all(|p| signed_distance(e, p[0], p[1]) > -1e-3)
    });
    if !convex {
        return Err(bad(
            "the polygon is not convex and counter-clockwise in image coordinates".into(),
        ));
    }
    Ok((edges, 1.0 / m.feather))
}

/// Distance of `(u, v)` from an edge's line, positive on the polygon's side; the order of
/// operations is `restore_warp.wgsl`'s.
#[inline]
fn signed_distance(e: &[f32; 4], u: f32, v: f32) -> f32 {
    e[2] * (v - e[1]) - e[3] * (u - e[0])
}

/// The paste mask's weight at face coordinates `(u, v)`: 1 without edges, else the distance
/// to the nearest edge line times `inv_feather`, clamped to 0..=1.
#[inline]
pub(crate) fn mask_weight(edges: &[[f32; 4]], inv_feather: f32, u: f32, v: f32) -> f32 {
    if edges.is_empty() {
        return 1.0;
    }
    let mut d = f32::INFINITY;
    for e in edges {
        d = d.min(signed_distance(e, u, v));
    }
    (d * inv_feather).clamp(0.0, 1.0)
}

/// Validates one face and computes its bounding box; `None` when the face lands entirely
/// outside the frame (the frame is then left untouched).
pub(crate) fn plan(
    index: usize,
    frame: &Frame,
    paste: &FacePaste,
) -> Result<Option<Plan>, RestoreError> {
    let (fw, fh) = (paste.face.width(), paste.face.height());
    if fw != fh {
        return Err(RestoreError::NotSquare {
            index,
            width: fw,
            height: fh,
        });
    }
    let inv = paste
        .to_crop
        .inverse()
        .filter(|m| m.m.iter().flatten().all(|v| v.is_finite()))
        .ok_or(RestoreError::SingularTransform { index })?;
    let r = f64::from(fw);
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for corner in [[-1.0, -1.0], [r, -1.0], [-1.0, r], [r, r]] {
        let p = inv.apply(corner);
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let (w, h) = (f64::from(frame.width()), f64::from(frame.height()));
    let clip = |v: f64, max: f64| v.clamp(0.0, max) as usize;
    let bbox = Rect {
        x0: clip(lo[0].floor() - 1.0, w),
        y0: clip(lo[1].floor() - 1.0, h),
        x1: clip(hi[0].ceil() + 2.0, w),
        y1: clip(hi[1].ceil() + 2.0, h),
    };
    let (edges, inv_feather) = match &paste.mask {
        Some(m) => mask_edges(index, m)?,
        None => (Vec::new(), 1.0),
    };
    if bbox.width() == 0 || bbox.height() == 0 {
        return Ok(None);
    }
    Ok(Some(Plan {
        a: paste.to_crop.to_f32(),
        r: fw,
        bbox,
        edges,
        inv_feather,
    }))
}

/// Face coordinates of frame pixel `(x, y)`; the order of operations is the shaders'.
#[inline]
pub(crate) fn map(a: &[f32; 6], x: f32, y: f32) -> (f32, f32) {
    (a[0] * x + a[1] * y + a[2], a[3] * x + a[4] * y + a[5])
}

/// Bilinear weight of an all-ones row of length `r` (zero outside) at coordinate `u`.
#[inline]
pub(crate) fn ones_weight(u: f32, r: u32) -> f32 {
    let i = u.floor();
    let f = u - i;
    let inside = |k: f32| k >= 0.0 && k < r as f32;
    let mut w = 0.0;
    if inside(i) {
        w += 1.0 - f;
    }
    if inside(i + 1.0) {
        w += f;
    }
    w
}

/// `w_edge` from the sum of the 2×2-eroded mask: `floor(sqrt(sum)) / 20`.
pub(crate) fn edge_width(sum: f64) -> usize {
    (sum.max(0.0).sqrt().floor() as usize) / 20
}

/// Offsets `lo..=hi` of the centre erosion for `w_edge` (OpenCV: kernel `2·w_edge` with
/// anchor `w_edge`; an empty kernel, `w_edge = 0`, means the default 3×3).
pub(crate) fn centre_offsets(w_edge: usize) -> (isize, isize) {
    if w_edge == 0 {
        return (-1, 1);
    }
    let w = w_edge as isize;
    (-w, w - 1)
}

/// `cv2.getGaussianKernel(k, 0)` as f32: fixed tables for k ≤ 7, else the sigma formula.
pub(crate) fn gaussian_kernel(k: usize) -> Vec<f32> {
    match k {
        1 => vec![1.0],
        3 => vec![0.25, 0.5, 0.25],
        5 => vec![0.0625, 0.25, 0.375, 0.25, 0.0625],
        7 => vec![
            0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
        ],
        _ => {
            let sigma = 0.3 * ((k as f64 - 1.0) * 0.5 - 1.0) + 0.8;
            let c = (k as f64 - 1.0) * 0.5;
            let raw: Vec<f64> = (0..k)
                .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
                .collect();
            let sum: f64 = raw.iter().sum();
            raw.iter().map(|v| (v / sum) as f32).collect()
        }
    }
}

/// OpenCV `BORDER_REFLECT_101` of index `i` into `0..n`.
#[inline]
pub(crate) fn reflect101(i: isize, n: isize) -> isize {
    if n == 1 {
        return 0;
    }
    let mut i = i;
    while i < 0 || i >= n {
        if i < 0 {
            i = -i;
        }
        if i >= n {
            i = 2 * (n - 1) - i;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_opencv() {
        // k = 9 -> sigma = 0.3 * (4 - 1) + 0.8 = 1.7; normalised exp(-(i-4)^2 / (2 * 1.7^2)).
        let k9 = gaussian_kernel(9);
        let expected = [0.01484, 0.04982, 0.11832, 0.19883, 0.23638];
        for (got, want) in k9.iter().zip(expected) {
            assert!((got - want).abs() < 5e-4, "{k9:?}");
        }
        for k in [1, 3, 5, 7, 9, 23, 41] {
            let sum: f32 = gaussian_kernel(k).iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "k={k}: {sum}");
        }
    }

    #[test]
    fn reflect_and_offsets() {
        let cases = [
            (-1, 5, 1),
            (-2, 5, 2),
            (5, 5, 3),
            (6, 5, 2),
            (0, 5, 0),
            (4, 5, 4),
        ];
        for (i, n, want) in cases {
            assert_eq!(reflect101(i, n), want, "reflect101({i}, {n})");
        }
        assert_eq!(centre_offsets(0), (-1, 1));
        assert_eq!(centre_offsets(1), (-1, 0));
        assert_eq!(centre_offsets(5), (-5, 4));
        assert_eq!(edge_width(399.0 * 399.0), 19);
        assert_eq!(edge_width(400.0 * 400.0), 20);
        assert_eq!(edge_width(10.0), 0);
    }

    #[test]
    fn ones_weights() {
        for (u, want) in [
            (-1.0, 0.0),
            (-0.5, 0.5),
            (0.0, 1.0),
            (3.0, 1.0),
            (3.25, 0.75),
            (3.5, 0.5),
            (4.0, 0.0),
        ] {
            assert_eq!(ones_weight(u, 4), want, "u={u}");
        }
    }
}
