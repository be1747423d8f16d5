//! The built-in model: audio-driven mouth opening, blended by Poisson iterations.

use frame::Frame;

use crate::poisson::{CpuSolver, Domain};
use crate::poisson_gpu::GpuSolver;
use crate::{ChunkInput, InferError, LipSyncModel, MouthPlacement, StepStats};

/// Where the mouth and the regenerated region lie in an aligned R×R crop, in units of R
/// (crop-relative: `x = 0.5` is the crop's centre column, `y = 1.0` its bottom edge).
///
/// The defaults assume LatentSync's framing of a 256×256 crop: the generated region is
/// rows 128–242 and columns 9–247 (the reference mask covers rows ≈95–242, but its nose strip,
/// rows 95–127, stays unmasked), the mouth centre (between the lips) at pixel (128, 165), the
/// mouth 92 px wide and the jaw 174 px wide. Face alignment must frame faces the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MouthGeometry {
    /// Mouth centre (the line between the lips), `[x, y]`. Default `[0.5, 0.645]`.
    pub mouth_centre: [f32; 2],
    /// Half the mouth width (corner to corner). Default `0.18`.
    pub mouth_half_width: f32,
    /// Half the width of the jaw region the displacement moves. Default `0.34`.
    pub jaw_half_width: f32,
    /// Height of the chin's lowest point. Default `0.9`.
    pub chin_y: f32,
    /// The regenerated region `[x0, y0, x1, y1]` (`x1`, `y1` exclusive).
    /// Default `[9/256, 128/256, 248/256, 243/256]`.
    pub mask_rect: [f32; 4],
}

impl Default for MouthGeometry {
    fn default() -> Self {
        Self {
            mouth_centre: [0.5, 0.645],
            mouth_half_width: 0.18,
            jaw_half_width: 0.34,
            chin_y: 0.9,
            mask_rect: [9.0 / 256.0, 128.0 / 256.0, 248.0 / 256.0, 243.0 / 256.0],
        }
    }
}

impl MouthGeometry {
    /// The mask of the regenerated region for an R×R crop (`size` = R). Pixels on the crop's
    /// border are never masked (the Poisson solver needs their neighbours).
    pub fn mask(&self, size: u32) -> Mask {
        let r = size as f32;
        let px = |v: f32| (v * r).round() as i64;
        let [x0, y0, x1, y1] = self.mask_rect;
        let clamp = |v: i64| v.clamp(1, i64::from(size) - 1) as u32;
        let (x0, y0, x1, y1) = (clamp(px(x0)), clamp(px(y0)), clamp(px(x1)), clamp(px(y1)));
        let mut data = vec![0u8; size as usize * size as usize];
        for y in y0..y1.max(y0) {
            for x in x0..x1.max(x0) {
                data[(y * size + x) as usize] = 1;
            }
        }
        Mask { size, data }
    }
}

/// Which pixels of an R×R crop a model regenerates (1) or keeps (0), row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    size: u32,
    data: Vec<u8>,
}

impl Mask {
    /// A `size`×`size` mask from one byte per pixel, row-major (non-zero: regenerated);
    /// `None` when `data` is not `size²` bytes.
    pub fn from_bytes(size: u32, data: Vec<u8>) -> Option<Self> {
        (data.len() == size as usize * size as usize).then(|| Self {
            size,
            data: data.into_iter().map(|v| u8::from(v != 0)).collect(),
        })
    }

    /// R.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// One byte per pixel, 1 inside, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Whether pixel `(x, y)` is regenerated.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        self.data[(y * self.size + x) as usize] != 0
    }

    /// The bounding box `[x0, y0, x1, y1]` (exclusive ends) of the masked pixels, `None` if empty.
    pub fn bbox(&self) -> Option<[u32; 4]> {
        let s = self.size;
        let mut b: Option<[u32; 4]> = None;
        for y in 0..s {
            for x in 0..s {
                if self.contains(x, y) {
                    let e = b.get_or_insert([x, y, x + 1, y + 1]);
                    e[0] = e[0].min(x);
                    e[1] = e[1].min(y);
                    e[2] = e[2].max(x + 1);
                    e[3] = e[3].max(y + 1);
                }
            }
        }
        b
    }
}

/// Parameters of [`MouthModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MouthParams {
    /// Mouth placement and the regenerated region.
    pub geometry: MouthGeometry,
    /// Lower-lip displacement at full opening, in units of R. Default `0.07` (18 px at 256).
    pub max_open: f32,
    /// Fraction of the displacement left at the mask's bottom edge (the neck follows the chin
    /// a little; the Poisson blend hides the seam). Default `0.5`.
    pub bottom_keep: f32,
    /// Speech-band level (dBFS) below which the mouth stays closed. Default `-55`.
    pub gate_db: f32,
    /// Colour of the inner mouth. Default `[60, 25, 25]`.
    pub inner_colour: [f32; 3],
    /// How far the inner-mouth gap is darkened towards `inner_colour` (0–1). Default `0.85`.
    pub darkness: f32,
    /// Red-black SOR sweeps per refinement step. Default `10`.
    pub inner_iterations: u32,
    /// SOR relaxation factor in `(0, 2)`. Default `1.9`.
    pub omega: f32,
}

impl Default for MouthParams {
    fn default() -> Self {
        Self {
            geometry: MouthGeometry::default(),
            max_open: 0.07,
            bottom_keep: 0.5,
            gate_db: -55.0,
            inner_colour: [60.0, 25.0, 25.0],
            darkness: 0.85,
            inner_iterations: 10,
            omega: 1.9,
        }
    }
}

/// The built-in lip-sync model (see the crate docs). Runs on the GPU when given
/// `Compute::Gpu`, on the CPU (all cores, via `std::thread::scope`) otherwise.
#[derive(Debug)]
pub struct MouthModel {
    params: MouthParams,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Cpu(CpuSolver),
    Gpu(Box<GpuSolver>),
}

/// Per-chunk state of [`MouthModel`].
#[derive(Debug)]
pub struct MouthState {
    domain: Domain,
    n_frames: usize,
}

impl MouthModel {
    /// A model on `compute` with `params`.
    pub fn new(compute: gpu::Compute, params: MouthParams) -> Self {
        let backend = match compute {
            gpu::Compute::Gpu(ctx) => Backend::Gpu(Box::new(GpuSolver::new(ctx))),
            gpu::Compute::Cpu => Backend::Cpu(CpuSolver::default()),
        };
        Self { params, backend }
    }

    /// The parameters.
    pub fn params(&self) -> &MouthParams {
        &self.params
    }

    /// `"cpu"` or the GPU adapter's name.
    pub fn device_name(&self) -> &str {
        match &self.backend {
            Backend::Cpu(_) => "cpu",
            Backend::Gpu(g) => g.adapter_name(),
        }
    }
}

/// The displacement field and inner-mouth darkening of one crop, in pixels. Positions are
/// taken in the mouth's frame: `u` along the mouth line (corner to corner), `v` across it
/// (towards the chin), from the middle between the inner lips.
#[derive(Debug, Clone)]
pub(crate) struct Edit {
    /// The convex region the edit stays inside (feathered over [`FEATHER`] px); empty: none.
    region: Vec<[f32; 2]>,
    cx: f32,
    cy: f32,
    /// Unit vector along the mouth line (image-left to image-right corner).
    along: [f32; 2],
    /// Lower-lip displacement at the mouth centre (px), along `v`.
    amp: f32,
    jaw_hw: f32,
    ramp_lo: f32,
    ramp_hi: f32,
    /// `v` of the chin and of the mask's bottom edge.
    chin: f32,
    bottom: f32,
    bottom_keep: f32,
    gap_hw: f32,
    /// `v` of the upper and lower lips' inner edges before the edit.
    upper: f32,
    lower: f32,
    inner: [f32; 3],
    darkness: f32,
}

/// Pixels over which an edit fades out inside its region's edge.
const FEATHER: f32 = 4.0;

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

impl Edit {
    /// The edit of one face: at the default geometry, or where `placement` says the mouth is
    /// (the lip line between the inner lips, turned with the mouth corners, sized by the
    /// mouth's width relative to the default geometry's).
    pub(crate) fn new(
        p: &MouthParams,
        size: u32,
        opening: f32,
        bottom: f32,
        placement: Option<&MouthPlacement>,
    ) -> Self {
        let r = size as f32;
        let g = &p.geometry;
        let default_hw = g.mouth_half_width * r;
        let (cx, cy, along, mouth_hw, jaw_hw, chin, upper, lower) = match placement {
            None => (
                g.mouth_centre[0] * r,
                g.mouth_centre[1] * r,
                [1.0, 0.0],
                default_hw,
                g.jaw_half_width * r,
                g.chin_y * r,
                0.0,
                0.0,
            ),
            Some(m) => {
                let [l, rt] = m.corners;
                let (dx, dy) = (rt[0] - l[0], rt[1] - l[1]);
                let len = (dx * dx + dy * dy).sqrt().max(1.0);
                let along = [dx / len, dy / len];
                let cx = (m.upper_inner[0] + m.lower_inner[0]) / 2.0;
                let cy = (m.upper_inner[1] + m.lower_inner[1]) / 2.0;
                let v = |q: [f32; 2]| -along[1] * (q[0] - cx) + along[0] * (q[1] - cy);
                (
                    cx,
                    cy,
                    along,
                    len / 2.0,
                    m.jaw_half_width.max(len / 2.0),
                    cy + v(m.chin),
                    v(m.upper_inner),
                    v(m.lower_inner),
                )
            }
        };
        let k = mouth_hw / default_hw;
        Self {
            region: placement.map(|m| m.region.clone()).unwrap_or_default(),
            cx,
            cy,
            along,
            amp: p.max_open * r * k * opening.clamp(0.0, 1.0),
            jaw_hw,
            // The lower lip starts moving just below the lip line; the ramp is wide enough
            // (0.12 R against at most 0.07 R of displacement) that the warp never folds.
            ramp_lo: lower - 0.02 * r * k,
            ramp_hi: lower + 0.10 * r * k,
            chin: chin - cy,
            bottom: bottom - cy,
            bottom_keep: p.bottom_keep,
            gap_hw: mouth_hw * 0.85,
            upper,
            lower,
            inner: p.inner_colour,
            darkness: p.darkness,
        }
    }

    /// `(u, v)` of pixel `(x, y)` in the mouth's frame.
    fn frame(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let [a, b] = self.along;
        (a * dx + b * dy, -b * dx + a * dy)
    }

    /// How much of the edit applies at `(x, y)`: 1 inside the region, fading to 0 at its edge.
    fn inside(&self, x: f32, y: f32) -> f32 {
        crate::polygon_weight(&self.region, FEATHER, x, y)
    }

    /// Displacement at `(x, y)` towards the chin.
    fn displacement(&self, x: f32, y: f32) -> f32 {
        let (u, v) = self.frame(x, y);
        let wx = 1.0 - smoothstep(0.4, 1.0, u.abs() / self.jaw_hw);
        let mut wy = smoothstep(self.ramp_lo, self.ramp_hi, v);
        if self.bottom > self.chin {
            wy *= 1.0 - (1.0 - self.bottom_keep) * smoothstep(self.chin, self.bottom, v);
        }
        self.amp * wx * wy
    }

    /// How much of the inner-mouth colour covers `(x, y)` (0–1, soft-edged ellipse between
    /// the upper lip's inner edge and the moved lower lip's, fading in over the first 2 px of
    /// opening).
    fn gap(&self, x: f32, y: f32) -> f32 {
        if self.amp <= 0.0 {
            return 0.0;
        }
        let (u, v) = self.frame(x, y);
        let ay = (self.lower + self.amp - self.upper) * 0.5 + 0.5;
        let ey = (self.upper + self.lower + self.amp) * 0.5;
        let dx = u / self.gap_hw;
        let dy = (v - ey) / ay;
        let r = (dx * dx + dy * dy).sqrt();
        (1.0 - smoothstep(0.75, 1.0, r)) * smoothstep(0.0, 2.0, self.amp) * self.darkness
    }

    /// Writes the edited crop as planar f32 RGB (`out.len() == 3 R²`): warped and darkened
    /// inside `bbox` grown by one pixel (the edit does not stop at the mask: the Poisson
    /// guidance across the mask edge comes from it), the original elsewhere.
    pub(crate) fn apply(&self, face: &Frame, bbox: [u32; 4], out: &mut [f32]) {
        let w = face.width() as usize;
        let h = face.height() as usize;
        let plane = w * h;
        let src = face.data();
        for (i, px) in src.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = f32::from(px[c]);
            }
        }
        if self.amp <= 0.0 {
            return;
        }
        let sample = |c: usize, x: f32, y: f32| -> f32 {
            let x = x.clamp(0.0, (w - 1) as f32);
            let y = y.clamp(0.0, (h - 1) as f32);
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            let at = |xx: usize, yy: usize| f32::from(src[(yy * w + xx) * 3 + c]);
            let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
            let bot = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
            top + (bot - top) * fy
        };
        let [bx0, by0, bx1, by1] = bbox;
        let (bx0, by0) = (bx0.saturating_sub(1), by0.saturating_sub(1));
        let (bx1, by1) = ((bx1 + 1).min(w as u32), (by1 + 1).min(h as u32));
        for y in by0..by1 {
            for x in bx0..bx1 {
                let (xf, yf) = (x as f32, y as f32);
                let weight = self.inside(xf, yf);
                if weight <= 0.0 {
                    continue;
                }
                let d = self.displacement(xf, yf) * weight;
                let a = self.gap(xf, yf) * weight;
                let i = y as usize * w + x as usize;
                // Towards the chin: perpendicular to the mouth line.
                let (sx, sy) = (xf + self.along[1] * d, yf - self.along[0] * d);
                for c in 0..3 {
                    let v = sample(c, sx, sy);
                    out[c * plane + i] = v + (self.inner[c] - v) * a;
                }
            }
        }
    }
}

impl LipSyncModel for MouthModel {
    type State = MouthState;

    fn mask(&self, size: u32) -> crate::Mask {
        self.params.geometry.mask(size)
    }

    fn begin_chunk(&mut self, chunk: &ChunkInput<'_>) -> Result<MouthState, InferError> {
        let size = chunk.mask.size();
        let n = chunk.faces.len();
        let last = chunk.first_frame + n;
        if last > chunk.audio.n_frames() {
            return Err(InferError::Input(format!(
                "frames {}..{last} go beyond the {} frames of the audio features",
                chunk.first_frame,
                chunk.audio.n_frames()
            )));
        }
        if let Some((i, f)) = chunk
            .faces
            .iter()
            .enumerate()
            .find(|(_, f)| f.width() != size || f.height() != size)
        {
            return Err(InferError::Input(format!(
                "face {} is {}x{}, the mask is {size}x{size}",
                chunk.first_frame + i,
                f.width(),
                f.height()
            )));
        }
        let opening = chunk.audio.mouth_opening(self.params.gate_db);
        let domain = Domain::new(chunk.mask);
        let bottom = domain.bbox[3] as f32;
        let edits: Vec<Edit> = (chunk.first_frame..last)
            .enumerate()
            .map(|(k, i)| {
                let placement = chunk.mouths.get(k).and_then(Option::as_ref);
                // A silent frame's own silence input: the mouth as it is (closed by the model).
                let opening = if chunk.is_silent(k) { 0.0 } else { opening[i] };
                Edit::new(&self.params, size, opening, bottom, placement)
            })
            .collect();
        let inputs = crate::poisson::prepare(chunk.faces, &edits, chunk.mask, &domain);
        match &mut self.backend {
            Backend::Cpu(s) => s.load(inputs, &domain),
            Backend::Gpu(g) => g.load(&domain, &inputs, self.params.omega)?,
        }
        Ok(MouthState {
            domain,
            n_frames: n,
        })
    }

    fn step(
        &mut self,
        state: &mut MouthState,
        _step: usize,
        _n_steps: usize,
    ) -> Result<StepStats, InferError> {
        let iters = self.params.inner_iterations;
        let omega = self.params.omega;
        let sum = match &mut self.backend {
            Backend::Cpu(s) => s.step(&state.domain, iters, omega),
            Backend::Gpu(g) => g.step(&state.domain, iters)?,
        };
        let count = state.domain.count as f64 * 3.0 * state.n_frames as f64;
        Ok(StepStats {
            residual: Some(if count > 0.0 {
                (sum / count).sqrt()
            } else {
                0.0
            }),
            frames: 0,
        })
    }

    fn preview(&mut self, state: &MouthState, index: usize) -> Result<Frame, InferError> {
        match &mut self.backend {
            Backend::Cpu(s) => Ok(s.frame(&state.domain, index)),
            Backend::Gpu(g) => Ok(g.frames(&state.domain, index..index + 1)?.remove(0)),
        }
    }

    fn finish_chunk(&mut self, state: MouthState) -> Result<Vec<Frame>, InferError> {
        match &mut self.backend {
            Backend::Cpu(s) => Ok((0..state.n_frames)
                .map(|i| s.frame(&state.domain, i))
                .collect()),
            Backend::Gpu(g) => Ok(g.frames(&state.domain, 0..state.n_frames)?),
        }
    }
}
