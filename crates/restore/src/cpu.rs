//! The CPU path: per face, mask → erosions → blur → blend over the bounding region only.
//! Frames of a batch are spread over `threads` scoped threads.

use frame::Frame;
use progress_core::CancelToken;

use crate::FacePaste;
use crate::mask::{self, Plan, Rect};

/// Reusable per-thread scratch (grows to the largest region seen, never shrinks).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    mask: Vec<f32>,
    eroded: Vec<f32>,
    tmp: Vec<f32>,
    centre: Vec<f32>,
    soft: Vec<f32>,
}

/// Restores every planned face; each thread looks at `cancel` before each frame and leaves
/// the rest of its frames untouched once it is set (the caller reports the cancellation).
pub(crate) fn restore_frames(
    frames: &mut [Frame],
    faces: &[Option<FacePaste>],
    plans: &[Option<Plan>],
    scratch: &mut [Scratch],
    cancel: &CancelToken,
) {
    let threads = scratch.len().max(1);
    let per = frames.len().div_ceil(threads).max(1);
    let run = |frames: &mut [Frame],
               faces: &[Option<FacePaste>],
               plans: &[Option<Plan>],
               scratch: &mut Scratch| {
        for ((frame, face), plan) in frames.iter_mut().zip(faces).zip(plans) {
            if cancel.is_cancelled() {
                return;
            }
            if let (Some(face), Some(plan)) = (face, plan) {
                restore_one(frame, &face.face, plan, scratch);
            }
        }
    };
    if threads == 1 || frames.len() <= 1 {
        run(frames, faces, plans, &mut scratch[0]);
        return;
    }
    std::thread::scope(|s| {
        for (((frames, faces), plans), scratch) in frames
            .chunks_mut(per)
            .zip(faces.chunks(per))
            .zip(plans.chunks(per))
            .zip(scratch.iter_mut())
        {
            s.spawn(move || run(frames, faces, plans, scratch));
        }
    });
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

/// `w_edge` of every planned face (0 for frames without one), spread over the scratch
/// threads like [`restore_frames`]. The GPU path needs it on the host before it records the
/// erosion and blur passes; computing it with the same code as the CPU path makes both paths
/// agree on the kernel sizes.
pub(crate) fn edge_widths(
    frames: &[Frame],
    plans: &[Option<Plan>],
    scratch: &mut [Scratch],
) -> Vec<usize> {
    let mut out = vec![0; plans.len()];
    let run = |frames: &[Frame], plans: &[Option<Plan>], out: &mut [usize], s: &mut Scratch| {
        for ((frame, plan), out) in frames.iter().zip(plans).zip(out) {
            if let Some(plan) = plan {
                let (w, h) = (frame.width() as usize, frame.height() as usize);
                *out = mask::edge_width(eroded_mask(plan, w, h, s));
            }
        }
    };
    let threads = scratch.len().max(1);
    let per = plans.len().div_ceil(threads).max(1);
    if threads == 1 || plans.len() <= 1 {
        run(frames, plans, &mut out, &mut scratch[0]);
        return out;
    }
    std::thread::scope(|s| {
        for (((frames, plans), out), scratch) in frames
            .chunks(per)
            .zip(plans.chunks(per))
            .zip(out.chunks_mut(per))
            .zip(scratch.iter_mut())
        {
            s.spawn(move || run(frames, plans, out, scratch));
        }
    });
    out
}

/// A face's bounding box in its frame: reads and erodes bbox-local arrays (row-major,
/// `bbox.width()` per row) at frame coordinates.
#[derive(Debug, Clone, Copy)]
struct BboxGrid {
    bbox: Rect,
    frame_w: usize,
    frame_h: usize,
}

impl BboxGrid {
    fn new(bbox: Rect, frame_w: usize, frame_h: usize) -> Self {
        Self {
            bbox,
            frame_w,
            frame_h,
        }
    }

    /// Value of bbox-local `arr` at frame coordinates: outside the frame -> None (does not
    /// erode), inside the frame but outside the bbox -> 0.
    fn at(self, arr: &[f32], x: isize, y: isize) -> Option<f32> {
        let b = self.bbox;
        if x < 0 || y < 0 || x >= self.frame_w as isize || y >= self.frame_h as isize {
            return None;
        }
        if !b.contains(x, y) {
            return Some(0.0);
        }
        Some(arr[(y as usize - b.y0) * b.width() + (x as usize - b.x0)])
    }

    /// One pass of a separable erosion (`erode_rows`/`erode_cols` of restore_erode.wgsl):
    /// every bbox pixel of `dst` gets the minimum of `src` over the offsets `lo..=hi` along
    /// `(dx, dy)`.
    fn erode_pass(
        self,
        src: &[f32],
        dst: &mut Vec<f32>,
        (lo, hi): (isize, isize),
        (dx, dy): (isize, isize),
    ) {
        let b = self.bbox;
        let bw = b.width();
        resize(dst, bw * b.height());
        for y in 0..b.height() {
            let fy = (b.y0 + y) as isize;
            for x in 0..bw {
                let fx = (b.x0 + x) as isize;
                let mut m = f32::INFINITY;
                for d in lo..=hi {
                    if let Some(v) = self.at(src, fx + d * dx, fy + d * dy) {
                        m = m.min(v);
                    }
                }
                dst[y * bw + x] = m;
            }
        }
    }
}

/// Steps 1 and 2 (warped mask of ones, 2×2 erosion) over the bounding box into `s.eroded`;
/// returns the sum of the eroded mask (f64).
fn eroded_mask(plan: &Plan, frame_w: usize, frame_h: usize, s: &mut Scratch) -> f64 {
    let b = plan.bbox;
    let (bw, bh) = (b.width(), b.height());
    // 1. warped mask of ones over the bbox.
    resize(&mut s.mask, bw * bh);
    for y in 0..bh {
        let fy = (b.y0 + y) as f32;
        for x in 0..bw {
            let (u, v) = mask::map(&plan.a, (b.x0 + x) as f32, fy);
            s.mask[y * bw + x] = mask::ones_weight(u, plan.r) * mask::ones_weight(v, plan.r);
        }
    }
    let grid = BboxGrid::new(b, frame_w, frame_h);
    // 2. 2×2 erosion, offsets {-1, 0}², and the sum.
    resize(&mut s.eroded, bw * bh);
    let mut sum = 0.0f64;
    for y in 0..bh {
        let fy = (b.y0 + y) as isize;
        for x in 0..bw {
            let fx = (b.x0 + x) as isize;
            let mut m = f32::INFINITY;
            for (dx, dy) in [(-1, -1), (0, -1), (-1, 0), (0, 0)] {
                if let Some(v) = grid.at(&s.mask, fx + dx, fy + dy) {
                    m = m.min(v);
                }
            }
            s.eroded[y * bw + x] = m;
            sum += f64::from(m);
        }
    }
    sum
}

/// The soft mask of one face over its region (`roi`), plus the region. Public to the crate
/// so the GPU path and the tests can compare against it.
pub(crate) fn soft_mask(plan: &Plan, frame_w: usize, frame_h: usize, s: &mut Scratch) -> Rect {
    let b = plan.bbox;
    let w_edge = mask::edge_width(eroded_mask(plan, frame_w, frame_h, s));
    let grid = BboxGrid::new(b, frame_w, frame_h);
    // 3. centre erosion, separable: rows then columns.
    let offsets = mask::centre_offsets(w_edge);
    grid.erode_pass(&s.eroded, &mut s.tmp, offsets, (1, 0));
    grid.erode_pass(&s.tmp, &mut s.centre, offsets, (0, 1));
    // 4. Gaussian blur over the region = bbox padded by the radius; rows then columns,
    // BORDER_REFLECT_101 at the frame edges.
    let roi = b.padded(w_edge, frame_w, frame_h);
    let kernel = mask::gaussian_kernel(2 * w_edge + 1);
    let rad = w_edge as isize;
    let (rw, rh) = (roi.width(), roi.height());
    resize(&mut s.tmp, rw * rh);
    for y in 0..rh {
        let fy = (roi.y0 + y) as isize;
        for x in 0..rw {
            let fx = (roi.x0 + x) as isize;
            let mut acc = 0.0f32;
            for (i, k) in kernel.iter().enumerate() {
                let sx = mask::reflect101(fx + i as isize - rad, frame_w as isize);
                acc += k * grid.at(&s.centre, sx, fy).unwrap_or(0.0);
            }
            s.tmp[y * rw + x] = acc;
        }
    }
    resize(&mut s.soft, rw * rh);
    for y in 0..rh {
        let fy = (roi.y0 + y) as isize;
        for x in 0..rw {
            let mut acc = 0.0f32;
            for (i, k) in kernel.iter().enumerate() {
                let sy = mask::reflect101(fy + i as isize - rad, frame_h as isize);
                let ry = sy - roi.y0 as isize;
                let v = if ry >= 0 && (ry as usize) < rh {
                    s.tmp[ry as usize * rw + x]
                } else {
                    0.0
                };
                acc += k * v;
            }
            s.soft[y * rw + x] = acc;
        }
    }
    roi
}

/// Bilinear sample of channel-interleaved RGB `face` (side `r`) at `(u, v)`, border 127.
#[inline]
pub(crate) fn sample_face(face: &[u8], r: u32, u: f32, v: f32) -> [f32; 3] {
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let (xi, yi) = (x0 as i64, y0 as i64);
    let n = i64::from(r);
    let texel = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= n || y >= n {
            127.0
        } else {
            f32::from(face[((y * n + x) * 3) as usize + c])
        }
    };
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = texel(xi, yi, c) * (1.0 - fx) + texel(xi + 1, yi, c) * fx;
        let bottom = texel(xi, yi + 1, c) * (1.0 - fx) + texel(xi + 1, yi + 1, c) * fx;
        *o = top * (1.0 - fy) + bottom * fy;
    }
    out
}

/// `round(soft·face + (1−soft)·frame)`, f32, round half up, clamped (`soft` already times
/// the paste mask's weight).
#[inline]
pub(crate) fn blend(soft: f32, face: f32, frame: u8) -> u8 {
    let o = soft * face + (1.0 - soft) * f32::from(frame);
    (o + 0.5).floor().clamp(0.0, 255.0) as u8
}

fn restore_one(frame: &mut Frame, face: &Frame, plan: &Plan, s: &mut Scratch) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let roi = soft_mask(plan, w, h, s);
    let rw = roi.width();
    let face_px = face.data();
    let data = frame.data_mut();
    for y in roi.y0..roi.y1 {
        for x in roi.x0..roi.x1 {
            let soft = s.soft[(y - roi.y0) * rw + (x - roi.x0)];
            if soft <= 0.0 {
                continue;
            }
            let (u, v) = mask::map(&plan.a, x as f32, y as f32);
            let soft = soft * mask::mask_weight(&plan.edges, plan.inv_feather, u, v);
            if soft <= 0.0 {
                continue;
            }
            let f = sample_face(face_px, plan.r, u, v);
            let i = (y * w + x) * 3;
            for c in 0..3 {
                data[i + c] = blend(soft, f[c], data[i + c]);
            }
        }
    }
}

#[cfg(test)]
pub(crate) fn soft_for_tests(s: &Scratch) -> &[f32] {
    &s.soft
}
