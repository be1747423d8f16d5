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
//! shader (`shaders/infer_poisson.wgsl`) computes the same f32 expression in the same order.

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

/// One half-sweep of colour `parity` on one channel plane.
pub(crate) fn sweep(f: &mut [f32], b: &[f32], dom: &Domain, parity: u32, omega: f32) {
    let w = dom.size as usize;
    for &(y, xa, xb) in &dom.spans {
        let (above, rest) = f.split_at_mut(y * w);
        let (row, below) = rest.split_at_mut(w);
        let up = &above[(y - 1) * w..];
        let down = &below[..w];
        let brow = &b[y * w..(y + 1) * w];
        let mut x = xa + (xa + y + parity as usize) % 2;
        while x < xb {
            let s = ((up[x] + down[x]) + (row[x - 1] + row[x + 1])) + brow[x];
            let cur = row[x];
            row[x] = cur + omega * (s * 0.25 - cur);
            x += 2;
        }
    }
}

/// Sum over masked pixels of the squared residual `(Σ f_q + b_p) − 4 f_p` on one plane.
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
        for x in xa..xb {
            let s = ((up[x] + down[x]) + (row[x - 1] + row[x + 1])) + brow[x];
            let r = s - 4.0 * row[x];
            sum += f64::from(r * r);
        }
    }
    sum
}

/// The CPU solver: the chunk's frames, stepped in parallel over all cores.
#[derive(Debug, Default)]
pub(crate) struct CpuSolver {
    frames: Vec<FrameData>,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl CpuSolver {
    pub(crate) fn load(&mut self, frames: Vec<FrameData>) {
        self.frames = frames;
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
        to_frame(&self.frames[index].f, dom.size)
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
