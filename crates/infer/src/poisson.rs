//! Poisson (gradient-domain) blending on the CPU: red-black SOR over the mask's bounding box.
//!
//! Unknowns `f` at masked pixels; `4 f_p − Σ f_q = b_p` with `b_p = 4 g_p − Σ g_q` (the
//! Laplacian of the edited image `g`, i.e. its gradients are the guidance field) and `f_q`
//! fixed to the original crop at unmasked neighbours (Dirichlet boundary). The solution keeps
//! the edit's gradients and meets the original crop at the mask edge without a seam.
//!
//! One sweep of colour `parity` updates the pixels with `(x + y) % 2 == parity`:
//! `s = ((f_up + f_down) + (f_left + f_right)) + b; f += ω (s · 0.25 − f)`. Each update reads
//! only pixels of the other colour, so the order within a sweep does not matter and the WGSL
//! shader (`crates/infer/shaders/infer_poisson.wgsl`) computes the same f32 expression in the same order.
//! The CPU solver keeps its planes in a split row layout (even columns, then odd ones) for
//! that reason: a colour's pixels along a span, and the neighbours they read, are then
//! contiguous.

use frame::Frame;

use crate::Mask;
use crate::mouth::Edit;

/// The solver's domain: the mask, its bounding box and its pixel count.
#[derive(Debug, Clone)]
pub(crate) struct Domain {
    pub(crate) size: u32,
    /// `[x0, y0, x1, y1]`, exclusive ends; all zero for an empty mask.
    pub(crate) bbox: [u32; 4],
    pub(crate) count: usize,
    pub(crate) mask: Vec<u8>,
    /// Runs of masked pixels: `(y, x_start, x_end)`, end exclusive.
    spans: Vec<(usize, usize, usize)>,
}

impl Domain {
    pub(crate) fn new(mask: &Mask) -> Self {
        let bbox = mask.bbox().unwrap_or([0; 4]);
        let w = mask.size() as usize;
        let mut spans = Vec::new();
        for y in bbox[1] as usize..bbox[3] as usize {
            let row = &mask.data()[y * w..(y + 1) * w];
            let mut x = 0;
            while x < w {
                if row[x] == 0 {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < w && row[x] != 0 {
                    x += 1;
                }
                spans.push((y, start, x));
            }
        }
        Self {
            spans,
            size: mask.size(),
            bbox,
            count: mask.data().iter().filter(|&&m| m != 0).count(),
            mask: mask.data().to_vec(),
        }
    }

    fn plane(&self) -> usize {
        self.size as usize * self.size as usize
    }
}

/// One face's solver buffers, planar RGB f32 (`3 R²` each).
#[derive(Debug, Clone)]
pub(crate) struct FrameData {
    /// The current estimate; initialised to the edited image (= the original outside the mask).
    pub(crate) f: Vec<f32>,
    /// The guidance Laplacian `b` at masked pixels, 0 elsewhere.
    pub(crate) b: Vec<f32>,
}

/// Edits every face and computes its guidance term, frames in parallel.
pub(crate) fn prepare(
    faces: &[Frame],
    edits: &[Edit],
    mask: &Mask,
    dom: &Domain,
) -> Vec<FrameData> {
    let work = |face: &Frame, edit: &Edit| {
        let plane = dom.plane();
        let mut g = vec![0.0f32; 3 * plane];
        edit.apply(face, dom.bbox, &mut g);
        let b = laplacian(&g, dom);
        // Initial guess: the edit inside the mask, the original (the boundary values) outside.
        let mut f: Vec<f32> = (0..3)
            .flat_map(|c| face.data().iter().skip(c).step_by(3).map(|&v| f32::from(v)))
            .collect();
        for c in 0..3 {
            for (i, &m) in mask.data().iter().enumerate() {
                if m != 0 {
                    f[c * plane + i] = g[c * plane + i];
                }
            }
        }
        FrameData { f, b }
    };
    let threads = threads().min(faces.len()).max(1);
    let per = faces.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = faces
            .chunks(per)
            .zip(edits.chunks(per))
            .map(|(fs, es)| {
                s.spawn(move || {
                    fs.iter()
                        .zip(es)
                        .map(|(f, e)| work(f, e))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("prepare thread panicked"))
            .collect()
    })
}

/// `b = 4 g_p − Σ g_q` at masked pixels (masks never touch the crop border).
fn laplacian(g: &[f32], dom: &Domain) -> Vec<f32> {
    let w = dom.size as usize;
    let plane = dom.plane();
    let mut b = vec![0.0f32; 3 * plane];
    let [x0, y0, x1, y1] = dom.bbox.map(|v| v as usize);
    for c in 0..3 {
        let g = &g[c * plane..(c + 1) * plane];
        let b = &mut b[c * plane..(c + 1) * plane];
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * w + x;
                if dom.mask[i] == 0 {
                    continue;
                }
                b[i] = 4.0 * g[i] - ((g[i - w] + g[i + w]) + (g[i - 1] + g[i + 1]));
            }
        }
    }
    b
}

/// One half-sweep of colour `parity` on one channel plane in the split layout
/// ([`split`]): along a span, the pixels of that colour are consecutive in their row's half,
/// and so are the neighbours they read in the other half, so the update is a loop over
/// slices that the compiler vectorises. Each update reads only pixels of the other colour,
/// which the loop does not write: every pixel gets the value of the pixel-by-pixel loop (the
/// test holds the two to the bit).
pub(crate) fn sweep(f: &mut [f32], b: &[f32], dom: &Domain, parity: u32, omega: f32) {
    let w = dom.size as usize;
    let evens = w.div_ceil(2);
    for &(y, xa, xb) in &dom.spans {
        // The colour's column parity on this row, and its first and last column in the span.
        let q = (y + parity as usize) % 2;
        let first = xa + (xa + q) % 2;
        if first >= xb {
            continue;
        }
        let last = xb - 1 - (xb - 1 + q) % 2;
        let (ka, kb) = (first / 2, last / 2 + 1);
        let (above, rest) = f.split_at_mut(y * w);
        let (row, below) = rest.split_at_mut(w);
        let (ev, od) = row.split_at_mut(evens);
        // This colour's half (written) and the other half (read): column `2k + q` has its
        // left and right neighbours at `k - 1` and `k` (q = 0) or `k` and `k + 1` (q = 1).
        let (mine, other, half, shift) = if q == 0 {
            (ev, &*od, 0, 0)
        } else {
            (od, &*ev, evens, 1)
        };
        let n = kb - ka;
        let cur = &mut mine[ka..kb];
        let left = &other[ka + shift - 1..][..n];
        let right = &other[ka + shift..][..n];
        let up = &above[(y - 1) * w + half + ka..][..n];
        let down = &below[half + ka..][..n];
        let bb = &b[y * w + half + ka..][..n];
        for i in 0..n {
            let s = ((up[i] + down[i]) + (left[i] + right[i])) + bb[i];
            let c = cur[i];
            cur[i] = c + omega * (s * 0.25 - c);
        }
    }
}

/// Index of column `x` of a `w`-wide row in the split layout: the row's even columns, then
/// its odd ones.
#[inline]
fn split_index(x: usize, w: usize) -> usize {
    if x.is_multiple_of(2) {
        x / 2
    } else {
        w.div_ceil(2) + x / 2
    }
}

/// Planes (`w`×`w` each, stacked) in the split layout, or back (`back`).
fn split(planes: &[f32], w: usize, back: bool) -> Vec<f32> {
    let mut out = vec![0.0; planes.len()];
    for (src, dst) in planes.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
        for x in 0..w {
            let s = split_index(x, w);
            if back {
                dst[x] = src[s];
            } else {
                dst[s] = src[x];
            }
        }
    }
    out
}

/// Sum over masked pixels of the squared residual `(Σ f_q + b_p) − 4 f_p` on one plane in
/// the split layout ([`split`]), in column order.
pub(crate) fn residual_sq(f: &[f32], b: &[f32], dom: &Domain) -> f64 {
    let w = dom.size as usize;
    let mut sum = 0.0f64;
    for &(y, xa, xb) in &dom.spans {
        let (up, row, down) = (
            &f[(y - 1) * w..y * w],
            &f[y * w..(y + 1) * w],
            &f[(y + 1) * w..(y + 2) * w],
        );
        let brow = &b[y * w..(y + 1) * w];
        let at = |r: &[f32], x: usize| r[split_index(x, w)];
        for x in xa..xb {
            let s = ((at(up, x) + at(down, x)) + (at(row, x - 1) + at(row, x + 1))) + at(brow, x);
            let r = s - 4.0 * at(row, x);
            sum += f64::from(r * r);
        }
    }
    sum
}

/// The CPU solver: the chunk's frames, stepped in parallel over all cores.
#[derive(Debug, Default)]
pub(crate) struct CpuSolver {
    /// In the split layout ([`split`]).
    frames: Vec<FrameData>,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl CpuSolver {
    pub(crate) fn load(&mut self, frames: Vec<FrameData>, dom: &Domain) {
        let w = dom.size as usize;
        self.frames = frames
            .into_iter()
            .map(|fd| FrameData {
                f: split(&fd.f, w, false),
                b: split(&fd.b, w, false),
            })
            .collect();
    }

    /// `iters` red-black sweeps on every frame, then the summed squared residual.
    pub(crate) fn step(&mut self, dom: &Domain, iters: u32, omega: f32) -> f64 {
        let plane = dom.plane();
        let one = |fd: &mut FrameData| -> f64 {
            let mut sum = 0.0;
            for c in 0..3 {
                let f = &mut fd.f[c * plane..(c + 1) * plane];
                let b = &fd.b[c * plane..(c + 1) * plane];
                for _ in 0..iters {
                    sweep(f, b, dom, 0, omega);
                    sweep(f, b, dom, 1, omega);
                }
                sum += residual_sq(f, b, dom);
            }
            sum
        };
        let n = self.frames.len();
        let threads = threads().min(n).max(1);
        let per = n.div_ceil(threads).max(1);
        let sums: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .frames
                .chunks_mut(per)
                .map(|part| s.spawn(move || part.iter_mut().map(one).collect::<Vec<f64>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("solver thread panicked"))
                .collect()
        });
        sums.iter().sum()
    }

    /// Frame `index` of the chunk as RGB8.
    pub(crate) fn frame(&self, dom: &Domain, index: usize) -> Frame {
        to_frame(
            &split(&self.frames[index].f, dom.size as usize, true),
            dom.size,
        )
    }
}

/// Planar f32 RGB → RGB8 (rounded, clamped).
pub(crate) fn to_frame(f: &[f32], size: u32) -> Frame {
    let plane = size as usize * size as usize;
    let mut data = vec![0u8; plane * 3];
    for (i, px) in data.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            px[c] = f[c * plane + i].round().clamp(0.0, 255.0) as u8;
        }
    }
    Frame::new(size, size, data).expect("size matches the planes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pixel-by-pixel half-sweep, in order (the definition [`sweep`] must reproduce).
    fn sweep_in_order(f: &mut [f32], b: &[f32], dom: &Domain, parity: u32, omega: f32) {
        let w = dom.size as usize;
        for &(y, xa, xb) in &dom.spans {
            let mut x = xa + (xa + y + parity as usize) % 2;
            while x < xb {
                let s = ((f[(y - 1) * w + x] + f[(y + 1) * w + x])
                    + (f[y * w + x - 1] + f[y * w + x + 1]))
                    + b[y * w + x];
                let cur = f[y * w + x];
                f[y * w + x] = cur + omega * (s * 0.25 - cur);
                x += 2;
            }
        }
    }

    /// The residual in the natural layout (the definition [`residual_sq`] must reproduce).
    fn residual_in_order(f: &[f32], b: &[f32], dom: &Domain) -> f64 {
        let w = dom.size as usize;
        let mut sum = 0.0f64;
        for &(y, xa, xb) in &dom.spans {
            for x in xa..xb {
                let i = y * w + x;
                let s = ((f[i - w] + f[i + w]) + (f[i - 1] + f[i + 1])) + b[i];
                let r = s - 4.0 * f[i];
                sum += f64::from(r * r);
            }
        }
        sum
    }

    proptest::proptest! {
        /// Split-layout and in-order sweeps agree bit for bit over several sweeps of both
        /// colours, on spans of any length at any offset, odd and even widths; so do the
        /// residuals.
        #[test]
        fn split_sweep_is_the_in_order_one(
            size in 3u32..200,
            cuts in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..200),
            values in proptest::collection::vec(-300.0f32..300.0, 64),
            omega in 1.0f32..1.95,
        ) {
            let w = size as usize;
            let spans: Vec<(usize, usize, usize)> = (1..w - 1)
                .zip(cuts.iter().cycle())
                .filter_map(|(y, &(a, b))| {
                    let (lo, hi) = (a.min(b), a.max(b));
                    let xa = 1 + (lo * (w - 2) as f64) as usize;
                    let xb = (1 + (hi * (w - 2) as f64) as usize).min(w - 1);
                    (xa < xb).then_some((y, xa, xb))
                })
                .collect();
            let dom = Domain {
                size,
                bbox: [0, 0, size, size],
                count: spans.iter().map(|s| s.2 - s.1).sum(),
                mask: vec![0; w * w],
                spans,
            };
            let plane = |k: usize| -> Vec<f32> {
                (0..w * w).map(|i| values[(i * 7 + k) % values.len()] + (i % 13) as f32).collect()
            };
            let b = plane(3);
            let (mut got, mut want) = (split(&plane(0), w, false), plane(0));
            let b_split = split(&b, w, false);
            for round in 0..3 {
                for parity in [0, 1] {
                    sweep(&mut got, &b_split, &dom, parity, omega);
                    sweep_in_order(&mut want, &b, &dom, parity, omega);
                }
                let back = split(&got, w, true);
                for (i, (g, x)) in back.iter().zip(&want).enumerate() {
                    proptest::prop_assert_eq!(g.to_bits(), x.to_bits(), "round {} value {}", round, i);
                }
                proptest::prop_assert_eq!(
                    residual_sq(&got, &b_split, &dom).to_bits(),
                    residual_in_order(&want, &b, &dom).to_bits()
                );
            }
        }
    }
}
