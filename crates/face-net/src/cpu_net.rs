//! BlazeFace on the CPU: the folded layer [`Plan`] (the one the WGSL network runs) executed with
//! loops written for it.
//!
//! Why not a general inference engine: the network is 39 small layers (a 5×5 stem, 3×3
//! depthwise convolutions, 1×1 convolutions with a residual epilogue, four heads) on a 128×128
//! input, where a general engine spends much of its time between layers (tensor allocation,
//! shape bookkeeping, packing) and its build is the largest part of this workspace's. Here every
//! activation has a buffer allocated once, every layer is one pass over its output with the
//! epilogue (bias, residual with optional 2×2 max-pool and channel padding, ReLU) fused, and
//! the inner loops run along the channels, which are contiguous (NHWC), so that they vectorise.
//! On x86-64 with AVX2 and FMA (chosen at run time) the 1×1 convolutions run a register-tiled
//! kernel of 4 pixels × 16 channels, the stem the same product reading its zero-padded input
//! in place (no im2col copy), and the depthwise ones 8 channels per register with a group's
//! 3×3 weights held in registers along each row; elsewhere portable loops compute the same
//! thing (the stem through im2col rows).
//!
//! Checked against onnxruntime's outputs for the same model (`tests/golden/`).

use std::sync::Arc;

use crate::blazeface::{INPUT_LEN, RawOutput};
use crate::plan::{Kind, Layer, Plan, Shape, Slot};

/// One BlazeFace instance: the shared plan and this instance's activation buffers.
#[derive(Debug, Clone)]
pub(crate) struct CpuNet {
    plan: Arc<Packed>,
    values: Vec<Vec<f32>>,
    scores: Vec<f32>,
    boxes: Vec<f32>,
    /// The plain graph outputs ([`Slot::Output`]).
    outputs: Vec<Vec<f32>>,
    /// The stem's input: im2col rows, one output row at a time (portable), or the whole
    /// input with its zero padding (AVX2).
    patches: Vec<f32>,
    fma: bool,
}

/// The plan with each product layer's weights in register tiles, built once.
#[derive(Debug)]
struct Packed {
    plan: Arc<Plan>,
    /// Per layer: for pointwise and stem layers, `[tile][row][CT]` weights (rows = input
    /// channels, or taps × input channels), zero past the last output channel; empty for
    /// depthwise layers.
    tiles: Vec<Vec<f32>>,
    /// Per layer: the bias, zero-padded to whole tiles.
    bias: Vec<Vec<f32>>,
    /// Per layer: the PRelu slopes, zero-padded to whole tiles (empty without a PRelu).
    alpha: Vec<Vec<f32>>,
}

impl CpuNet {
    pub(crate) fn new(plan: Arc<Plan>) -> Self {
        Self::with_packed(Arc::new(Packed::new(&plan)), fma_available())
    }

    fn with_packed(plan: Arc<Packed>, fma: bool) -> Self {
        let p = &plan.plan;
        let values = p
            .values
            .iter()
            .map(|s| vec![0.0; s.len() as usize])
            .collect();
        let anchors = p.anchors as usize;
        let coords = p.coords as usize;
        let patches = p
            .layers
            .iter()
            .filter(|l| l.kind == Kind::Conv)
            .map(|l| (l.output.w * l.kernel * l.kernel * l.input.c).max(padded_len(l)) as usize)
            .max()
            .unwrap_or(0);
        Self {
            values,
            scores: vec![0.0; anchors],
            boxes: vec![0.0; anchors * coords],
            outputs: p.outputs.iter().map(|&n| vec![0.0; n as usize]).collect(),
            patches: vec![0.0; patches],
            fma,
            plan,
        }
    }

    /// Another instance on the same plan, with buffers of its own (for another thread).
    pub(crate) fn clone_shared(&self) -> Self {
        Self::with_packed(Arc::clone(&self.plan), self.fma)
    }

    /// Without the AVX2 + FMA kernels, for tests that compare the two.
    #[cfg(test)]
    pub(crate) fn without_fma(mut self) -> Self {
        self.fma = false;
        self
    }

    /// Runs one NHWC 128×128×3 BlazeFace input; outputs in anchor order.
    pub(crate) fn run(&mut self, input: &[f32]) -> RawOutput {
        assert_eq!(input.len(), INPUT_LEN, "blazeface input length");
        self.forward(input);
        RawOutput {
            scores: self.scores.clone(),
            regressors: self.boxes.clone(),
        }
    }

    /// Runs one NHWC input of the plan's input shape; the plain graph outputs
    /// ([`Slot::Output`], NHWC) are then in [`Self::outputs`].
    pub(crate) fn forward(&mut self, input: &[f32]) {
        let packed = Arc::clone(&self.plan);
        assert_eq!(
            input.len(),
            packed.plan.input.len() as usize,
            "network input length"
        );
        for (i, layer) in packed.plan.layers.iter().enumerate() {
            let weights = Weights {
                tiles: &packed.tiles[i],
                bias: &packed.bias[i],
            };
            self.layer(layer, weights, &packed.alpha[i], input);
        }
    }

    /// The plain graph outputs of the last [`Self::forward`].
    pub(crate) fn outputs(&self) -> &[Vec<f32>] {
        &self.outputs
    }

    fn layer(&mut self, l: &Layer, weights: Weights<'_>, alpha: &[f32], input: &[f32]) {
        // The destination is never the source or the residual (the plan gives every value its
        // own buffer and heads write the outputs), so take it out while the inputs are read.
        let mut dst = match l.dst {
            Slot::Value(v) => std::mem::take(&mut self.values[v]),
            Slot::Scores { .. } => std::mem::take(&mut self.scores),
            Slot::Boxes { .. } => std::mem::take(&mut self.boxes),
            Slot::Output(k) => std::mem::take(&mut self.outputs[k]),
            Slot::Input => unreachable!("no layer writes the input"),
        };
        let off = match l.dst {
            Slot::Scores { offset } => offset as usize,
            Slot::Boxes { offset } => (offset * self.plan.plan.coords) as usize,
            _ => 0,
        };
        let out = &mut dst[off..off + l.output.len() as usize];
        let mut patches = std::mem::take(&mut self.patches);
        let src = self.slot(l.src, input);
        let res = l
            .residual
            .map(|r| (self.slot(r.src, input), r.channels, r.pool));
        let epi = Epilogue {
            res,
            relu: l.relu,
            alpha: l.prelu.is_some().then_some(alpha),
            width: l.output.w as usize,
        };
        // Whether the kernel applied the epilogue itself (the AVX product kernel does).
        let fused = match l.kind {
            Kind::Pointwise => gemm(self.fma, src, l.input.c as usize, weights, l, epi, out),
            Kind::Depthwise => {
                depthwise(self.fma, l, src, out);
                false
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Conv if self.fma && l.residual.is_none() => {
                let pw = pad_input(l, src, &mut patches);
                // SAFETY: `fma` is true only when the CPU reports AVX2 and FMA, the target
                // features of `avx::conv`.
                unsafe { avx::conv(&patches, pw, l, weights, epi, out) };
                true
            }
            Kind::Conv => {
                let mut fused = true;
                let w = l.output.w as usize;
                let co = l.output.c as usize;
                let k = (l.kernel * l.kernel * l.input.c) as usize;
                for oy in 0..l.output.h as usize {
                    let rows = &mut patches[..w * k];
                    im2col_row(l, src, oy, rows);
                    // A row knows no residual (the stem has none), and the ReLU must follow the
                    // residual add: fused only without one, else `epilogue` does both below.
                    let plain = l.residual.is_none();
                    let row_epi = Epilogue {
                        res: None,
                        relu: l.relu && plain,
                        alpha: epi.alpha.filter(|_| plain),
                        ..epi
                    };
                    let out = &mut out[oy * w * co..][..w * co];
                    fused &= gemm(self.fma, rows, k, weights, l, row_epi, out);
                }
                fused && l.residual.is_none()
            }
        };
        if !fused {
            epilogue(l, res, out);
        }
        self.patches = patches;
        match l.dst {
            Slot::Value(v) => self.values[v] = dst,
            Slot::Scores { .. } => self.scores = dst,
            Slot::Boxes { .. } => self.boxes = dst,
            Slot::Output(k) => self.outputs[k] = dst,
            Slot::Input => {}
        }
    }

    fn slot<'a>(&'a self, slot: Slot, input: &'a [f32]) -> &'a [f32] {
        match slot {
            Slot::Input => input,
            Slot::Value(v) => &self.values[v],
            Slot::Scores { .. } | Slot::Boxes { .. } | Slot::Output(_) => {
                unreachable!("no layer reads a graph output")
            }
        }
    }
}

/// Output channels per register tile.
const CT: usize = 16;
/// Pixels per register tile of the product kernel.
const PT: usize = 4;

impl Packed {
    fn new(plan: &Arc<Plan>) -> Self {
        let mut tiles = Vec::new();
        let mut bias = Vec::new();
        let mut alpha = Vec::new();
        for l in &plan.layers {
            let co = l.output.c as usize;
            let padded = co.div_ceil(CT) * CT;
            let mut b = l.bias.clone();
            b.resize(padded, 0.0);
            bias.push(b);
            let mut a = l.prelu.clone().unwrap_or_default();
            if !a.is_empty() {
                a.resize(padded, 0.0);
            }
            alpha.push(a);
            let rows = match l.kind {
                Kind::Pointwise => l.input.c as usize,
                Kind::Conv => (l.kernel * l.kernel * l.input.c) as usize,
                Kind::Depthwise => {
                    tiles.push(Vec::new());
                    continue;
                }
            };
            // `l.weights` is [row][co] for both (conv: row = (ky, kx, ci)).
            let mut t = vec![0.0; padded * rows];
            for tile in 0..padded / CT {
                for r in 0..rows {
                    for j in 0..CT {
                        let c = tile * CT + j;
                        if c < co {
                            t[(tile * rows + r) * CT + j] = l.weights[r * co + c];
                        }
                    }
                }
            }
            tiles.push(t);
        }
        Self {
            plan: Arc::clone(plan),
            tiles,
            bias,
            alpha,
        }
    }
}

/// A product layer's packed weights (see [`Packed`]).
#[derive(Clone, Copy)]
struct Weights<'a> {
    tiles: &'a [f32],
    bias: &'a [f32],
}

/// A residual source: the activation, its channel count, whether it is 2×2 max-pooled.
type Residual<'a> = Option<(&'a [f32], u32, bool)>;

fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Input row/column for output position `o` and kernel tap `k`, or `None` in the padding.
#[inline(always)]
fn tap(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (o * stride + k).checked_sub(pad).filter(|&i| i < size)
}

/// The stem's input patches for output row `oy`: for each output pixel, its K×K×ci taps in
/// (ky, kx, ci) order, zero in the padding.
fn im2col_row(l: &Layer, src: &[f32], oy: usize, rows: &mut [f32]) {
    let ci = l.input.c as usize;
    let (ih, iw) = (l.input.h as usize, l.input.w as usize);
    let (k, s) = (l.kernel as usize, l.stride as usize);
    let (pt, pl) = (l.pad_top as usize, l.pad_left as usize);
    let per = k * k * ci;
    for (ox, row) in rows.chunks_exact_mut(per).enumerate() {
        for ky in 0..k {
            for kx in 0..k {
                let dst = &mut row[(ky * k + kx) * ci..][..ci];
                match (tap(oy, ky, s, pt, ih), tap(ox, kx, s, pl, iw)) {
                    // Element by element: `copy_from_slice` of 3 floats is a `memmove` call.
                    (Some(iy), Some(ix)) => {
                        for (d, v) in dst.iter_mut().zip(&src[(iy * iw + ix) * ci..]) {
                            *d = *v;
                        }
                    }
                    _ => dst.fill(0.0),
                }
            }
        }
    }
}

/// Rows and columns of a conv layer's input with its zero padding around it: those its
/// output's taps reach, `(out − 1) · stride + kernel` each way.
fn padded_dims(l: &Layer) -> (usize, usize) {
    let side = |o: u32| ((o - 1) * l.stride + l.kernel) as usize;
    (side(l.output.h), side(l.output.w))
}

/// Floats of a conv layer's padded input (see [`padded_dims`]).
fn padded_len(l: &Layer) -> u32 {
    let (ph, pw) = padded_dims(l);
    (ph * pw) as u32 * l.input.c
}

/// Copies a conv layer's input into `buf` inside its zero padding (see [`padded_dims`]);
/// returns the padded width.
#[cfg(target_arch = "x86_64")]
fn pad_input(l: &Layer, src: &[f32], buf: &mut [f32]) -> usize {
    let (ci, iw, ih) = (l.input.c as usize, l.input.w as usize, l.input.h as usize);
    let (ph, pw) = padded_dims(l);
    let (pt, pl) = (l.pad_top as usize, l.pad_left as usize);
    let buf = &mut buf[..ph * pw * ci];
    buf.fill(0.0);
    for y in 0..ih.min(ph.saturating_sub(pt)) {
        let n = iw.min(pw.saturating_sub(pl)) * ci;
        buf[((y + pt) * pw + pl) * ci..][..n].copy_from_slice(&src[y * iw * ci..][..n]);
    }
    pw
}

/// What a layer does after its convolution: residual add, then ReLU or PRelu (see
/// [`epilogue`]); `alpha` holds the PRelu slopes zero-padded to whole tiles; `width` is the
/// output's, to find a pixel's residual.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    res: Residual<'a>,
    relu: bool,
    alpha: Option<&'a [f32]>,
    width: usize,
}

/// `out[p][c] = bias[c] + Σ_r a[p][r] · w[r][c]` for the `a.len() / k` rows of `a`. Returns
/// whether `epi` was applied too (by the AVX2 kernel; the caller applies it otherwise).
fn gemm(
    fma: bool,
    a: &[f32],
    k: usize,
    w: Weights<'_>,
    l: &Layer,
    epi: Epilogue<'_>,
    out: &mut [f32],
) -> bool {
    let co = l.output.c as usize;
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is true only when the CPU reports AVX2 and FMA (`fma_available`), the
        // target features of `avx::gemm`.
        unsafe { avx::gemm(a, k, w, co, epi, out) };
        return true;
    }
    let _ = (fma, epi);
    let tiles = co.div_ceil(CT);
    for (row, o) in a.chunks_exact(k).zip(out.chunks_exact_mut(co)) {
        for t in 0..tiles {
            let mut acc: [f32; CT] = w.bias[t * CT..][..CT].try_into().expect("tile");
            let wt = &w.tiles[t * k * CT..][..k * CT];
            for (&x, wr) in row.iter().zip(wt.chunks_exact(CT)) {
                for (s, &wv) in acc.iter_mut().zip(wr) {
                    *s += x * wv;
                }
            }
            let n = (co - t * CT).min(CT);
            o[t * CT..][..n].copy_from_slice(&acc[..n]);
        }
    }
    false
}

/// K×K depthwise convolution plus bias.
fn depthwise(fma: bool, l: &Layer, src: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is true only when the CPU reports AVX2 and FMA (`fma_available`), the
        // target features of `avx::depthwise`.
        unsafe { avx::depthwise(l, src, out) };
        return;
    }
    let _ = fma;
    let c = l.output.c as usize;
    let mut taps = Taps::new(l);
    for oy in 0..l.output.h as usize {
        for ox in 0..l.output.w as usize {
            let o = &mut out[(oy * l.output.w as usize + ox) * c..][..c];
            o.copy_from_slice(&l.bias);
            for &(xs, ws) in taps.of(oy, ox) {
                let (x, wrow) = (&src[xs..][..c], &l.weights[ws..][..c]);
                for ((a, &xv), &wv) in o.iter_mut().zip(x).zip(wrow) {
                    *a += xv * wv;
                }
            }
        }
    }
}

/// The valid taps of a depthwise layer's output pixels, as (input offset, weight offset)
/// pairs in (ky, kx) order; interior pixels (every tap inside) reuse precomputed offsets.
struct Taps {
    c: usize,
    ih: usize,
    iw: usize,
    k: usize,
    s: usize,
    pt: usize,
    pl: usize,
    /// Offsets of all K×K taps from the top-left one.
    all: Vec<(usize, usize)>,
    list: Vec<(usize, usize)>,
}

impl Taps {
    fn new(l: &Layer) -> Self {
        let (c, iw, k) = (l.output.c as usize, l.input.w as usize, l.kernel as usize);
        Self {
            c,
            ih: l.input.h as usize,
            iw,
            k,
            s: l.stride as usize,
            pt: l.pad_top as usize,
            pl: l.pad_left as usize,
            all: (0..k * k)
                .map(|t| (((t / k) * iw + t % k) * c, t * c))
                .collect(),
            list: Vec::with_capacity(k * k),
        }
    }

    /// The taps of output pixel (`oy`, `ox`).
    #[inline(always)]
    fn of(&mut self, oy: usize, ox: usize) -> &[(usize, usize)] {
        let Self {
            c,
            ih,
            iw,
            k,
            s,
            pt,
            pl,
            ..
        } = *self;
        let (y, x) = (oy * s, ox * s);
        self.list.clear();
        if y >= pt && x >= pl && y - pt + k <= ih && x - pl + k <= iw {
            let base = ((y - pt) * iw + (x - pl)) * c;
            self.list
                .extend(self.all.iter().map(|&(xs, ws)| (base + xs, ws)));
        } else {
            for ky in 0..k {
                let Some(iy) = tap(oy, ky, s, pt, ih) else {
                    continue;
                };
                for kx in 0..k {
                    if let Some(ix) = tap(ox, kx, s, pl, iw) {
                        self.list.push(((iy * iw + ix) * c, (ky * k + kx) * c));
                    }
                }
            }
        }
        &self.list
    }
}

/// Residual (optionally 2×2 max-pooled, channel-padded with zeros) and ReLU, in place over
/// the layer's output (which already holds bias + convolution).
fn epilogue(l: &Layer, res: Residual<'_>, out: &mut [f32]) {
    let Shape { h, w, c } = l.output;
    let (h, w, co) = (h as usize, w as usize, c as usize);
    if let Some((r, rc, pool)) = res {
        let rc = rc as usize;
        for oy in 0..h {
            for ox in 0..w {
                let o = &mut out[(oy * w + ox) * co..][..rc];
                if pool {
                    let rw = w * 2;
                    let (y, x) = (oy * 2, ox * 2);
                    let row = |yy: usize, xx: usize| &r[(yy * rw + xx) * rc..][..rc];
                    let (a, b, d, e) = (row(y, x), row(y, x + 1), row(y + 1, x), row(y + 1, x + 1));
                    for i in 0..rc {
                        o[i] += a[i].max(b[i]).max(d[i].max(e[i]));
                    }
                } else {
                    let row = &r[(oy * w + ox) * rc..][..rc];
                    for (v, r) in o.iter_mut().zip(row) {
                        *v += r;
                    }
                }
            }
        }
    }
    if l.relu {
        for v in out.iter_mut() {
            *v = v.max(0.0);
        }
    }
    if let Some(alpha) = &l.prelu {
        for px in out.chunks_exact_mut(co) {
            for (v, &a) in px.iter_mut().zip(alpha) {
                *v = prelu(*v, a);
            }
        }
    }
}

/// PRelu of `v` with slope `a`: `v` when it is not negative, else `a · v` (the AVX kernel
/// selects between the same two values).
#[inline(always)]
fn prelu(v: f32, a: f32) -> f32 {
    if v < 0.0 { v * a } else { v }
}

/// The AVX2 + FMA kernels. Every load and store goes through [`load`] / [`store`], which check
/// the slice length, so their only precondition is the CPU feature itself; the two unchecked
/// reads ([`Rows::at`] and the depthwise row loop) are inside bounds asserted before their loops.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx {
    use std::arch::x86_64::{
        __m256, _CMP_LT_OQ, _mm256_add_ps, _mm256_blendv_ps, _mm256_broadcast_ss, _mm256_cmp_ps,
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_mul_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    use super::{CT, Epilogue, Layer, PT, Taps, Weights};

    /// The first 8 floats of `s` (panics when it is shorter); shared with the resampler.
    ///
    /// # Safety
    /// The CPU must have AVX. (Not a `target_feature` function: those cannot be
    /// `inline(always)`, and a call per load would cost more than the load.)
    #[inline(always)]
    pub(crate) unsafe fn load(s: &[f32]) -> __m256 {
        assert!(s.len() >= 8);
        // SAFETY: 8 floats are readable at `s` (checked above), unaligned loads are allowed,
        // and the caller guarantees AVX.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    /// Stores `v` into the first 8 floats of `s` (panics when it is shorter).
    ///
    /// # Safety
    /// The CPU must have AVX (see [`load`]).
    #[inline(always)]
    pub(crate) unsafe fn store(s: &mut [f32], v: __m256) {
        assert!(s.len() >= 8);
        // SAFETY: 8 floats are writable at `s` (checked above), and the caller guarantees AVX.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }

    /// Adds pixel `p`'s residual (channels `c0 .. c0 + 16`, zero at and past its channel
    /// count; 2×2 max-pooled when asked) and applies the ReLU, as [`super::epilogue`] does.
    ///
    /// # Safety
    /// The CPU must have AVX2. (Not a `target_feature` function: those cannot be
    /// `inline(always)`, and as a call its two registers would go through memory per pixel.)
    #[inline(always)]
    unsafe fn finish(epi: &Epilogue<'_>, p: usize, c0: usize, acc: [__m256; 2]) -> [__m256; 2] {
        let mut acc = acc;
        // SAFETY: the caller guarantees AVX2, and every load goes through `load`.
        unsafe {
            if let Some((r, rc, pool)) = epi.res {
                let rc = rc as usize;
                if c0 + CT <= rc {
                    // A whole tile of residual channels: vector loads (and maxima).
                    let at = |y: usize, x: usize, w: usize, h: usize| {
                        let i = (y * w + x) * rc + c0 + h;
                        load(&r[i..])
                    };
                    for (h, a) in acc.iter_mut().enumerate().map(|(i, a)| (i * 8, a)) {
                        let v = if pool {
                            let (y, x, rw) = (p / epi.width * 2, p % epi.width * 2, epi.width * 2);
                            _mm256_max_ps(
                                _mm256_max_ps(at(y, x, rw, h), at(y, x + 1, rw, h)),
                                _mm256_max_ps(at(y + 1, x, rw, h), at(y + 1, x + 1, rw, h)),
                            )
                        } else {
                            load(&r[p * rc + c0 + h..])
                        };
                        *a = _mm256_add_ps(*a, v);
                    }
                } else if c0 < rc {
                    let mut t = [0.0f32; CT];
                    let n = rc - c0;
                    if pool {
                        let (oy, ox) = (p / epi.width, p % epi.width);
                        let rw = epi.width * 2;
                        let at = |y: usize, x: usize| &r[(y * rw + x) * rc + c0..][..n];
                        let (y, x) = (oy * 2, ox * 2);
                        let (a, b, d, e) = (at(y, x), at(y, x + 1), at(y + 1, x), at(y + 1, x + 1));
                        for j in 0..n {
                            t[j] = a[j].max(b[j]).max(d[j].max(e[j]));
                        }
                    } else {
                        for (d, v) in t.iter_mut().zip(&r[p * rc + c0..][..n]) {
                            *d = *v;
                        }
                    }
                    acc[0] = _mm256_add_ps(acc[0], load(&t));
                    acc[1] = _mm256_add_ps(acc[1], load(&t[8..]));
                }
            }
            if epi.relu {
                let zero = _mm256_setzero_ps();
                acc = [_mm256_max_ps(acc[0], zero), _mm256_max_ps(acc[1], zero)];
            }
            if let Some(alpha) = epi.alpha {
                let zero = _mm256_setzero_ps();
                for (h, a) in acc.iter_mut().enumerate() {
                    let slope = load(&alpha[c0 + h * 8..]);
                    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(*a, zero);
                    *a = _mm256_blendv_ps(*a, _mm256_mul_ps(*a, slope), negative);
                }
            }
        }
        acc
    }

    /// Writes the 16 lanes of `acc` to channels `c0 ..` of a pixel's `co` outputs (fewer at
    /// the last tile).
    ///
    /// # Safety
    /// The CPU must have AVX (see [`load`]).
    #[inline(always)]
    unsafe fn put(o: &mut [f32], co: usize, c0: usize, acc: [__m256; 2]) {
        // SAFETY: the caller guarantees AVX; `store` checks the lengths.
        unsafe {
            if c0 + CT <= co {
                store(&mut o[c0..], acc[0]);
                store(&mut o[c0 + 8..], acc[1]);
            } else {
                let mut tmp = [0.0f32; CT];
                store(&mut tmp[..], acc[0]);
                store(&mut tmp[8..], acc[1]);
                let n = co - c0;
                o[c0..c0 + n].copy_from_slice(&tmp[..n]);
            }
        }
    }

    /// Where the product kernel reads value `r` of output pixel `p`'s row: at
    /// `at(base(p), r)`, for `p < pixels()` and `r < len()` (the implementations read
    /// unchecked within those bounds).
    trait Rows {
        /// Output pixels (rows).
        fn pixels(&self) -> usize;
        /// Values per row.
        fn len(&self) -> usize;
        /// Where pixel `p`'s row starts.
        fn base(&self, p: usize) -> usize;
        /// Value `r` of the row starting at `base`, read without a bounds check.
        ///
        /// # Safety
        /// `base` must be `self.base(p)` for some `p < self.pixels()`, and `r < self.len()`.
        unsafe fn at(&self, base: usize, r: usize) -> &f32;
    }

    /// Rows stored one after the other, `k` values each (1×1 convolutions).
    struct Dense<'a> {
        a: &'a [f32],
        k: usize,
    }

    impl Rows for Dense<'_> {
        #[inline(always)]
        fn pixels(&self) -> usize {
            self.a.len() / self.k
        }
        #[inline(always)]
        fn len(&self) -> usize {
            self.k
        }
        #[inline(always)]
        fn base(&self, p: usize) -> usize {
            p * self.k
        }
        #[inline(always)]
        unsafe fn at(&self, base: usize, r: usize) -> &f32 {
            debug_assert!(r < self.k);
            // SAFETY: the caller passes `base = p · k` for `p < pixels() = a.len() / k` and
            // `r < k`, so `base + r < a.len()`.
            unsafe { self.a.get_unchecked(base + r) }
        }
    }

    /// A K×K convolution's rows read in place from its zero-padded input `x` (see
    /// [`super::pad_input`]): the `(ky, kx, ci)` value of output pixel `p` is at
    /// `base(p) + offs[r]`.
    struct Padded<'a> {
        x: &'a [f32],
        offs: Vec<usize>,
        /// Output pixels, padded input width, output width, stride, input channels.
        pixels: usize,
        pw: usize,
        ow: usize,
        s: usize,
        ci: usize,
    }

    impl<'a> Padded<'a> {
        fn new(x: &'a [f32], pw: usize, l: &Layer) -> Self {
            let (k, s, ci) = (l.kernel as usize, l.stride as usize, l.input.c as usize);
            let offs: Vec<usize> = (0..k * k * ci)
                .map(|r| {
                    let (t, c) = (r / ci, r % ci);
                    ((t / k) * pw + t % k) * ci + c
                })
                .collect();
            let ow = l.output.w as usize;
            let rows = Self {
                x,
                offs,
                pixels: l.output.h as usize * ow,
                pw,
                ow,
                s,
                ci,
            };
            // Bases grow with `p` and offsets with `r`: every read is at most this one.
            assert!(rows.base(rows.pixels - 1) + rows.offs[rows.offs.len() - 1] < x.len());
            rows
        }
    }

    impl Rows for Padded<'_> {
        #[inline(always)]
        fn pixels(&self) -> usize {
            self.pixels
        }
        #[inline(always)]
        fn len(&self) -> usize {
            self.offs.len()
        }
        #[inline(always)]
        fn base(&self, p: usize) -> usize {
            ((p / self.ow) * self.s * self.pw + (p % self.ow) * self.s) * self.ci
        }
        #[inline(always)]
        unsafe fn at(&self, base: usize, r: usize) -> &f32 {
            let i = base + self.offs[r];
            // SAFETY: the caller passes the base of a pixel `p < pixels`, and `offs[r]` is an
            // offset, so `i` is within `x` (asserted in `new`).
            unsafe { self.x.get_unchecked(i) }
        }
    }

    /// `out[p][c] = bias[c] + Σ_r row_p[r] · w[r][c]` for every output pixel of `rows`, in
    /// tiles of `PT` pixels × 16 channels (8 accumulators), the epilogue applied before the
    /// store.
    #[target_feature(enable = "avx2,fma")]
    fn product<R: Rows>(rows: &R, w: Weights<'_>, co: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        let (pixels, k) = (rows.pixels(), rows.len());
        // SAFETY: this function runs only where the CPU has AVX2 and FMA (its target
        // features), which `load`, `finish` and `put` require; `rows.at` gets the base of a
        // pixel `p < pixels` and an `r < k` (`wt` holds `k` rows of weights).
        unsafe {
            for t in 0..co.div_ceil(CT) {
                let c0 = t * CT;
                let wt = &w.tiles[t * k * CT..][..k * CT];
                let b = [load(&w.bias[c0..]), load(&w.bias[c0 + 8..])];
                let mut p = 0;
                while p + PT <= pixels {
                    // Spelled out: a closure given to `array::from_fn` would not inherit this
                    // function's target features, and stay a call.
                    let bs = [
                        rows.base(p),
                        rows.base(p + 1),
                        rows.base(p + 2),
                        rows.base(p + 3),
                    ];
                    let mut acc = [b; PT];
                    for (r, wr) in wt.chunks_exact(CT).enumerate() {
                        let (w0, w1) = (load(wr), load(&wr[8..]));
                        for i in 0..PT {
                            let x = _mm256_broadcast_ss(rows.at(bs[i], r));
                            acc[i][0] = _mm256_fmadd_ps(x, w0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(x, w1, acc[i][1]);
                        }
                    }
                    for (i, acc) in acc.into_iter().enumerate() {
                        let acc = finish(&epi, p + i, c0, acc);
                        put(&mut out[(p + i) * co..][..co], co, c0, acc);
                    }
                    p += PT;
                }
                for p in p..pixels {
                    let base = rows.base(p);
                    let mut acc = b;
                    for (r, wr) in wt.chunks_exact(CT).enumerate() {
                        let x = _mm256_broadcast_ss(rows.at(base, r));
                        acc[0] = _mm256_fmadd_ps(x, load(wr), acc[0]);
                        acc[1] = _mm256_fmadd_ps(x, load(&wr[8..]), acc[1]);
                    }
                    let acc = finish(&epi, p, c0, acc);
                    put(&mut out[p * co..][..co], co, c0, acc);
                }
            }
        }
    }

    /// See [`super::gemm`]: [`product`] over the `a.len() / k` rows of `a`, `k` values each.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn gemm(
        a: &[f32],
        k: usize,
        w: Weights<'_>,
        co: usize,
        epi: Epilogue<'_>,
        out: &mut [f32],
    ) {
        product(&Dense { a, k }, w, co, epi, out);
    }

    /// A K×K convolution (the stem) over its zero-padded input `x` (`pw` floats wide), as
    /// [`gemm`] over im2col rows but reading each row's values in place ([`Padded`]). The
    /// epilogue (no residual) is applied before the store.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn conv(
        x: &[f32],
        pw: usize,
        l: &Layer,
        w: Weights<'_>,
        epi: Epilogue<'_>,
        out: &mut [f32],
    ) {
        product(&Padded::new(x, pw, l), w, l.output.c as usize, epi, out);
    }

    /// See [`super::depthwise`]. Channels go in groups of 8, the last group overlapping the one
    /// before when the count is not a multiple of 8 (it recomputes, with the same operations,
    /// values already stored). On the rows and columns where every tap is inside the input, a
    /// group's K×K weights stay in registers along the row; elsewhere each pixel lists its
    /// valid taps.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn depthwise(l: &Layer, src: &[f32], out: &mut [f32]) {
        let c = l.output.c as usize;
        assert!(c >= 8, "depthwise layers have at least 8 channels");
        let (h, w) = (l.output.h as usize, l.output.w as usize);
        let (iw, ih) = (l.input.w as usize, l.input.h as usize);
        let (k, s) = (l.kernel as usize, l.stride as usize);
        let (pt, pl) = (l.pad_top as usize, l.pad_left as usize);
        let groups = c.div_ceil(8);
        let group = |g: usize| (g * 8).min(c - 8);
        // Output columns whose taps are all inside: x·s ≥ pl and x·s − pl + k ≤ iw.
        let x_lo = pl.div_ceil(s);
        let x_hi = if iw + pl >= k {
            ((iw + pl - k) / s + 1).min(w)
        } else {
            0
        };
        let mut taps = Taps::new(l);
        for oy in 0..h {
            let y = oy * s;
            let row_inside = y >= pt && y - pt + k <= ih;
            let fast = row_inside && k * k == MAX_TAPS && x_lo < x_hi;
            for ox in 0..w {
                if fast && (x_lo..x_hi).contains(&ox) {
                    continue;
                }
                let taps = taps.of(oy, ox);
                let o = &mut out[(oy * w + ox) * c..][..c];
                for g in (0..groups).map(group) {
                    // SAFETY: this function's target features include AVX, which `load` and
                    // `store` (length-checked) require.
                    unsafe {
                        let mut acc = load(&l.bias[g..]);
                        for &(xs, ws) in taps {
                            let (x, wv) = (load(&src[xs + g..]), load(&l.weights[ws + g..]));
                            acc = _mm256_fmadd_ps(x, wv, acc);
                        }
                        store(&mut o[g..], acc);
                    }
                }
            }
            if !fast {
                continue;
            }
            // Fixed-size tap arrays, so that the tap loop unrolls without bounds checks.
            let mut offs = [0usize; MAX_TAPS];
            for (o, &(xs, _)) in offs.iter_mut().zip(&taps.all) {
                *o = xs;
            }
            let row = |ox: usize| ((y - pt) * iw + (ox * s - pl)) * c;
            // Every read of this row, `row(ox) + g + offs[t]` and the 7 floats after it, is
            // at most this one's start (`row` grows with `ox`, `g` is at most `c - 8`).
            let last = row(x_hi - 1) + (c - 8) + offs.iter().max().copied().unwrap_or(0);
            assert!(last + 8 <= src.len());
            let at = |i: usize| -> __m256 {
                debug_assert!(i <= last);
                // SAFETY: every `i` passed is at most `last`, and 8 floats are readable there
                // (asserted above); the CPU has AVX (this function's target features).
                unsafe { _mm256_loadu_ps(src.as_ptr().add(i)) }
            };
            for g in (0..groups).map(group) {
                // SAFETY: this function's target features include AVX, which `load` and
                // `store` (length-checked) require.
                unsafe {
                    let mut wt = [_mm256_setzero_ps(); MAX_TAPS];
                    for (t, wv) in wt.iter_mut().enumerate() {
                        *wv = load(&l.weights[t * c + g..]);
                    }
                    let bias = load(&l.bias[g..]);
                    for ox in x_lo..x_hi {
                        let base = row(ox) + g;
                        let mut acc = bias;
                        for t in 0..MAX_TAPS {
                            acc = _mm256_fmadd_ps(at(base + offs[t]), wt[t], acc);
                        }
                        store(&mut out[(oy * w + ox) * c + g..], acc);
                    }
                }
            }
        }
    }

    /// Taps of the depthwise kernels whose weights stay in registers (3×3; others take the
    /// per-pixel way).
    const MAX_TAPS: usize = 9;
}
