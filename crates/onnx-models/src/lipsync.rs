//! Wav2Lip-96 and EDTalk-256 as [`infer::LipSyncModel`]s: one-shot models (one call per face,
//! or one per chunk when the file has a dynamic batch axis), fed their own mel features
//! ([`infer::LipMelStream`]). With a batch of 1, up to [`OnnxSession::parallel`] calls run
//! side by side on their own threads and sessions (on 2 cores: two single-threaded calls, which
//! keep both cores busier than one call on two intra-op threads while the pipeline's other
//! stages share the cores).

use std::path::Path;
use std::sync::Arc;

use frame::Frame;
use infer::{
    ChunkInput, FeatureBuilder, InferError, LipMelStream, LipSyncModel, Mask, MouthGeometry,
    Schedule, StepStats,
};

use crate::session::{OnnxSession, TensorSpec};
use crate::{OnnxError, Provider};

/// Which learned model a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LipSyncKind {
    /// Wav2Lip-96 (FaceFusion's `wav2lip_96.onnx`, `wav2lip_gan_96.onnx`).
    Wav2Lip,
    /// EDTalk-256 (FaceFusion's `edtalk_256.onnx`).
    EdTalk,
}

impl LipSyncKind {
    /// `"wav2lip"` / `"edtalk"`.
    pub fn name(self) -> &'static str {
        match self {
            LipSyncKind::Wav2Lip => "wav2lip",
            LipSyncKind::EdTalk => "edtalk",
        }
    }

    /// The model's square input size.
    pub fn size(self) -> u32 {
        match self {
            LipSyncKind::Wav2Lip => 96,
            LipSyncKind::EdTalk => 256,
        }
    }

    fn contract(self) -> (&'static [TensorSpec], TensorSpec) {
        const MEL: TensorSpec = TensorSpec {
            name: "source",
            dims: &[None, Some(1), Some(80), Some(16)],
        };
        match self {
            LipSyncKind::Wav2Lip => (
                &[
                    MEL,
                    TensorSpec {
                        name: "target",
                        dims: &[None, Some(6), Some(96), Some(96)],
                    },
                ],
                TensorSpec {
                    name: "output",
                    dims: &[None, Some(3), Some(96), Some(96)],
                },
            ),
            LipSyncKind::EdTalk => (
                &[
                    MEL,
                    TensorSpec {
                        name: "target",
                        dims: &[None, Some(3), Some(256), Some(256)],
                    },
                    TensorSpec {
                        name: "weight",
                        dims: &[Some(1)],
                    },
                ],
                TensorSpec {
                    name: "output",
                    dims: &[None, Some(3), Some(256), Some(256)],
                },
            ),
        }
    }
}

/// Where Wav2Lip's 96×96 face box lies in facesync's aligned R×R crop, in units of R:
/// `[x0, y0, x1, y1]`. facesync's crop is LatentSync's 75×100 template frame (brows at
/// y = 20 of 100, chin near the bottom edge, the cheeks at the side edges), scaled to R×R;
/// FaceFusion's box is the bounding box of the 68 landmarks (brows to chin, jaw line to jaw
/// line). In template units that box is x 0–75, y 16–100: the full width, from just above the
/// brow line (y = 20) to the bottom edge.
pub const WAV2LIP_BOX: [f32; 4] = [0.0, 0.16, 1.0, 1.0];

/// The region of the box Wav2Lip regenerates (its lower half, rows 48..96 of 96) pasted back
/// with a feathered mask: box-relative `[x0, y0, x1, y1]` and the feather width, also
/// box-relative. The mask is 1 inside, falls to 0 over `feather` with a smoothstep, 0 outside.
/// Used when the frame has no face mesh; with one, the mesh's lower face ([`HULL_FEATHER`]).
const LOWER_FACE: [f32; 4] = [0.12, 0.5, 0.88, 0.98];
const FEATHER: f32 = 0.1;

/// With a face mesh, the model's output is pasted inside the mesh's lower-face region (the
/// hull of the jaw line and the lips, [`infer::MouthPlacement::region`]), feathered inwards
/// over this share of the crop's side (12.8 px at R = 256); nothing outside the hull changes.
pub(crate) const HULL_FEATHER: f32 = 0.05;

/// A learned lip-sync model loaded from an ONNX file.
#[derive(Debug, Clone)]
pub struct OnnxLipSync {
    kind: LipSyncKind,
    session: Arc<OnnxSession>,
    weight: f32,
    dynamic_batch: bool,
}

impl OnnxLipSync {
    /// Wraps a loaded session after checking it against `kind`'s contract (names, ranks,
    /// sizes; errors name the file and tensor). `weight`: EDTalk's lip strength (its
    /// default is 0.5); unused by Wav2Lip.
    pub fn new(
        kind: LipSyncKind,
        session: Arc<OnnxSession>,
        weight: f32,
    ) -> Result<Self, OnnxError> {
        let (inputs, output) = kind.contract();
        session.check_contract(inputs, &output)?;
        let batch = |name: &str| session.input(name).map_or(1, |t| t.dims[0]);
        let (b_source, b_target) = (batch("source"), batch("target"));
        for (name, b) in [("source", b_source), ("target", b_target)] {
            if b != 1 && b != -1 {
                return Err(OnnxError::Contract {
                    path: session.path().to_path_buf(),
                    tensor: name.into(),
                    message: format!("batch axis is {b} (expected 1 or dynamic)"),
                });
            }
        }
        if !(0.0..=10.0).contains(&weight) || !weight.is_finite() {
            return Err(OnnxError::Contract {
                path: session.path().to_path_buf(),
                tensor: "weight".into(),
                message: format!("lip strength {weight} is out of range (0 to 10)"),
            });
        }
        Ok(Self {
            kind,
            dynamic_batch: b_source == -1 && b_target == -1,
            session,
            weight,
        })
    }

    /// The model kind.
    pub fn kind(&self) -> LipSyncKind {
        self.kind
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.session.path()
    }

    /// The provider that runs it.
    pub fn provider(&self) -> Provider {
        self.session.provider()
    }

    /// Why the provider is the CPU although a GPU was allowed, if it is.
    pub fn fallback_note(&self) -> Option<&str> {
        self.session.fallback_note()
    }

    /// Whether the file has a dynamic batch axis (one call per chunk).
    pub fn dynamic_batch(&self) -> bool {
        self.dynamic_batch
    }

    fn error(&self, e: OnnxError) -> InferError {
        InferError::Model(e.to_string())
    }

    /// The model's input image for one face and the box it came from (crop pixels).
    fn prepare(&self, face: &Frame, out: &mut Vec<f32>) -> [f32; 4] {
        let r = face.width() as f32;
        let n = self.kind.size() as usize;
        match self.kind {
            LipSyncKind::Wav2Lip => {
                let b = WAV2LIP_BOX.map(|v| v * r);
                let rgb = sample_rect(face, b, n, n);
                // Channels 0–2: the crop with its lower half zeroed; 3–5: the crop. BGR.
                let start = out.len();
                out.resize(start + 6 * n * n, 0.0);
                let planes = &mut out[start..];
                for y in 0..n {
                    for x in 0..n {
                        let p = rgb[y * n + x];
                        for (c, v) in [p[2], p[1], p[0]].into_iter().enumerate() {
                            let i = y * n + x;
                            if y < n / 2 {
                                planes[c * n * n + i] = v;
                            }
                            planes[(3 + c) * n * n + i] = v;
                        }
                    }
                }
                b
            }
            LipSyncKind::EdTalk => {
                let b = [0.0, 0.0, r, r];
                let rgb = sample_rect(face, b, n, n);
                let start = out.len();
                out.resize(start + 3 * n * n, 0.0);
                let planes = &mut out[start..];
                for (i, p) in rgb.iter().enumerate() {
                    for c in 0..3 {
                        planes[c * n * n + i] = p[c];
                    }
                }
                b
            }
        }
    }
}

/// Pastes model output `planes` (`[3][n][n]`, 0..1, BGR for Wav2Lip) into `face` over `rect`
/// (crop pixel edges): weighted by the feathered mesh hull `region` (crop pixels, pixel
/// centres at integers) when it has 3 corners or more, else by the kind's fixed mask. Pixels
/// of weight 0 are not touched.
fn paste(kind: LipSyncKind, face: &mut Frame, rect: [f32; 4], planes: &[f32], region: &[[f32; 2]]) {
    let n = kind.size() as usize;
    let bgr = kind == LipSyncKind::Wav2Lip;
    let [x0, y0, x1, y1] = rect;
    let (w, h) = (x1 - x0, y1 - y0);
    let (fw, fh) = (face.width(), face.height());
    let hull_feather = HULL_FEATHER * fw as f32;
    let ys = (y0.floor().max(0.0) as u32)..(y1.ceil().min(fh as f32) as u32);
    let xs = (x0.floor().max(0.0) as u32)..(x1.ceil().min(fw as f32) as u32);
    for y in ys {
        for x in xs.clone() {
            // Box-relative position of the pixel centre.
            let u = (x as f32 + 0.5 - x0) / w;
            let v = (y as f32 + 0.5 - y0) / h;
            let a = if region.len() >= 3 {
                let inside_box = (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v);
                if inside_box {
                    infer::polygon_weight(region, hull_feather, x as f32, y as f32)
                } else {
                    0.0
                }
            } else {
                match kind {
                    LipSyncKind::Wav2Lip => ramp(u, v, LOWER_FACE, FEATHER),
                    LipSyncKind::EdTalk => ramp(u, v, [0.02, 0.02, 0.98, 0.98], 0.04),
                }
            };
            if a <= 0.0 {
                continue;
            }
            let g = bilinear_planes(planes, n, u * n as f32 - 0.5, v * n as f32 - 0.5);
            let g = if bgr { [g[2], g[1], g[0]] } else { g };
            let old = face.pixel(x, y);
            let mut px = [0u8; 3];
            for c in 0..3 {
                let new = g[c].clamp(0.0, 1.0) * 255.0;
                px[c] = (a * new + (1.0 - a) * f32::from(old[c])).round() as u8;
            }
            face.put_pixel(x, y, px);
        }
    }
}

/// A feathered rectangle: 1 inside `r` shrunk by `f`, 0 outside `r`, smoothstep between.
fn ramp(u: f32, v: f32, r: [f32; 4], f: f32) -> f32 {
    let edge = |d: f32| {
        let t = (d / f).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    };
    edge(u - r[0]) * edge(r[2] - u) * edge(v - r[1]) * edge(r[3] - v)
}

/// Bilinear sample of `[3][n][n]` planes at (x, y) in plane pixels (centres at integers),
/// clamped at the edges.
fn bilinear_planes(planes: &[f32], n: usize, x: f32, y: f32) -> [f32; 3] {
    let max = (n - 1) as f32;
    let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let p = &planes[c * n * n..(c + 1) * n * n];
        let top = p[y0 * n + x0] * (1.0 - fx) + p[y0 * n + x1] * fx;
        let bottom = p[y1 * n + x0] * (1.0 - fx) + p[y1 * n + x1] * fx;
        *o = top * (1.0 - fy) + bottom * fy;
    }
    out
}

/// Bilinear resample of the `rect` (pixel edges) of `face` to `w`×`h`, RGB in 0..1. Samples at
/// the output pixel centres; a box narrower than the output is a plain bilinear zoom, a wider
/// one averages 2×2 sub-samples per pixel (enough for the 256/512 → 96 reduction, whose
/// factor is below 6, to stay free of visible aliasing at the model's resolution).
fn sample_rect(face: &Frame, rect: [f32; 4], w: usize, h: usize) -> Vec<[f32; 3]> {
    let [x0, y0, x1, y1] = rect;
    let (sx, sy) = ((x1 - x0) / w as f32, (y1 - y0) / h as f32);
    let sub = if sx > 1.5 || sy > 1.5 { 2 } else { 1 };
    let (fw, fh) = (face.width() as f32, face.height() as f32);
    let data = face.data();
    let stride = face.width() as usize * 3;
    let get = |x: f32, y: f32| -> [f32; 3] {
        let (x, y) = (
            (x - 0.5).clamp(0.0, fw - 1.0),
            (y - 0.5).clamp(0.0, fh - 1.0),
        );
        let (xa, ya) = (x.floor() as usize, y.floor() as usize);
        let (xb, yb) = (
            (xa + 1).min(face.width() as usize - 1),
            (ya + 1).min(face.height() as usize - 1),
        );
        let (fx, fy) = (x - xa as f32, y - ya as f32);
        let mut out = [0.0; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let p = |xx: usize, yy: usize| f32::from(data[yy * stride + xx * 3 + c]);
            let top = p(xa, ya) * (1.0 - fx) + p(xb, ya) * fx;
            let bottom = p(xa, yb) * (1.0 - fx) + p(xb, yb) * fx;
            *o = (top * (1.0 - fy) + bottom * fy) / 255.0;
        }
        out
    };
    let mut out = Vec::with_capacity(w * h);
    let k = 1.0 / (sub * sub) as f32;
    for j in 0..h {
        for i in 0..w {
            let mut acc = [0.0; 3];
            for a in 0..sub {
                for b in 0..sub {
                    let x = x0 + (i as f32 + (b as f32 + 0.5) / sub as f32) * sx;
                    let y = y0 + (j as f32 + (a as f32 + 0.5) / sub as f32) * sy;
                    let p = get(x, y);
                    for c in 0..3 {
                        acc[c] += p[c] * k;
                    }
                }
            }
            out.push(acc);
        }
    }
    out
}

/// A model call running on its own thread: the face's index in the chunk.
type InFlight = (usize, std::thread::JoinHandle<()>);

/// A finished call: the face's index and the face the model made.
type Finished = (usize, Result<Frame, InferError>);

/// One chunk in flight.
#[derive(Debug)]
pub struct OnnxChunkState {
    /// The chunk's faces, each replaced by the model's result when its call finishes.
    faces: Vec<Frame>,
    /// Each face's mesh hull (crop pixels), empty without a mesh.
    regions: Vec<Vec<[f32; 2]>>,
    /// `[n][1][80][16]`.
    mels: Vec<f32>,
    /// Faces whose call has started (batch of 1) or finished (dynamic batch).
    started: usize,
    /// Faces finished.
    done: usize,
    /// Calls running side by side (batch of 1), and where they report.
    running: Vec<InFlight>,
    results: Option<(
        std::sync::mpsc::Sender<Finished>,
        std::sync::mpsc::Receiver<Finished>,
    )>,
}

impl Drop for OnnxChunkState {
    /// A chunk dropped early (cancelled, or one call failed) waits for the calls it started:
    /// no model work outlives the chunk.
    fn drop(&mut self) {
        for (_, h) in self.running.drain(..) {
            let _ = h.join();
        }
    }
}

impl OnnxLipSync {
    fn planes(&self) -> i64 {
        match self.kind {
            LipSyncKind::Wav2Lip => 6,
            LipSyncKind::EdTalk => 3,
        }
    }

    /// One model call on `faces` (their mel windows in `mels`, their mesh hulls in `regions`):
    /// prepares the inputs, runs the session, pastes the result into the faces.
    fn call(
        &self,
        faces: &mut [Frame],
        mels: &[f32],
        regions: &[Vec<[f32; 2]>],
    ) -> Result<(), InferError> {
        let s = self.kind.size() as i64;
        let planes = self.planes();
        let b = faces.len() as i64;
        let mut target = Vec::with_capacity(faces.len() * (planes * s * s) as usize);
        let rects: Vec<[f32; 4]> = faces.iter().map(|f| self.prepare(f, &mut target)).collect();
        let mut inputs = vec![
            ("source", vec![b, 1, 80, 16], mels.to_vec()),
            ("target", vec![b, planes, s, s], target),
        ];
        if self.kind == LipSyncKind::EdTalk {
            inputs.push(("weight", vec![1], vec![self.weight]));
        }
        let (shape, out) = self.session.run_f32(inputs).map_err(|e| self.error(e))?;
        let per_out = (3 * s * s) as usize;
        if shape != [b, 3, s, s] || out.len() != faces.len() * per_out {
            return Err(self.error(OnnxError::Contract {
                path: self.session.path().to_path_buf(),
                tensor: "output".into(),
                message: format!("the model returned shape {shape:?} (expected [{b},3,{s},{s}])"),
            }));
        }
        for (((face, rect), planes), region) in faces
            .iter_mut()
            .zip(rects)
            .zip(out.chunks_exact(per_out))
            .zip(regions)
        {
            paste(self.kind, face, rect, planes, region);
        }
        Ok(())
    }
}

impl LipSyncModel for OnnxLipSync {
    type State = OnnxChunkState;

    fn mask(&self, size: u32) -> Mask {
        // The scheduler's region of interest; the paste-back uses the mesh's lower-face hull
        // (or, without a mesh, the model's own feathered lower-face mask).
        MouthGeometry::default().mask(size)
    }

    fn schedule(&self, _configured_steps: usize, chunk_len: usize) -> Schedule {
        Schedule::OneShot(if self.dynamic_batch { 1 } else { chunk_len })
    }

    fn feature_builder(
        &self,
        channels: u16,
        sample_rate: u32,
    ) -> Result<Option<Box<dyn FeatureBuilder>>, InferError> {
        Ok(Some(Box::new(LipMelStream::new(channels, sample_rate)?)))
    }

    fn begin_chunk(&mut self, chunk: &ChunkInput<'_>) -> Result<OnnxChunkState, InferError> {
        let features = chunk.features.ok_or_else(|| {
            InferError::Input(format!(
                "{} needs its mel features; none were given",
                self.kind.name()
            ))
        })?;
        if features.window_len() != 80 * 16 {
            return Err(InferError::Input(format!(
                "mel windows of {} values (expected 80x16)",
                features.window_len()
            )));
        }
        let n = chunk.faces.len();
        let mut mels = vec![0.0; n * 80 * 16];
        for (i, w) in mels.chunks_exact_mut(80 * 16).enumerate() {
            features.window_into(chunk.first_frame + i, w);
        }
        let regions = (0..n)
            .map(|i| {
                chunk
                    .mouths
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|m| m.region.clone())
                    .unwrap_or_default()
            })
            .collect();
        Ok(OnnxChunkState {
            faces: chunk.faces.to_vec(),
            regions,
            mels,
            started: 0,
            done: 0,
            running: Vec::new(),
            results: None,
        })
    }

    /// A dynamic batch: the whole chunk in one call. A batch of 1: one face per step, with up
    /// to [`OnnxSession::parallel`] calls running side by side, each on its own thread and
    /// session (prepare, model call, paste): a step starts calls until that many run, then
    /// returns when one finishes, so the cores the single calls cannot fill stay busy and
    /// none waits for the other's call. Results go to their face's place in the chunk.
    fn step(
        &mut self,
        state: &mut OnnxChunkState,
        _step: usize,
        _n_steps: usize,
    ) -> Result<StepStats, InferError> {
        const MEL: usize = 80 * 16;
        let n = state.faces.len();
        if state.done == n {
            return Ok(StepStats::default());
        }
        if self.dynamic_batch {
            self.call(&mut state.faces, &state.mels, &state.regions)?;
            let take = n - state.done;
            (state.started, state.done) = (n, n);
            return Ok(StepStats {
                residual: None,
                frames: take,
            });
        }
        let (tx, rx) = state.results.get_or_insert_with(std::sync::mpsc::channel);
        while state.started < n && state.running.len() < self.session.parallel() {
            let i = state.started;
            let mut face = [state.faces[i].clone()];
            let mel = state.mels[i * MEL..(i + 1) * MEL].to_vec();
            let region = [state.regions[i].clone()];
            let (model, tx) = (self.clone(), tx.clone());
            let spawned = std::thread::Builder::new()
                .name("facesync-model-call".into())
                .spawn(move || {
                    // A panic is a result too: the step waiting for it must not hang.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        model.call(&mut face, &mel, &region)
                    }))
                    .unwrap_or_else(|_| {
                        Err(InferError::Model(format!(
                            "{}: the model call panicked",
                            model.session.path().display()
                        )))
                    });
                    let [face] = face;
                    let _ = tx.send((i, r.map(|()| face)));
                })
                .map_err(|e| InferError::Model(format!("cannot start a model call: {e}")))?;
            state.running.push((i, spawned));
            state.started += 1;
        }
        let (i, result) = rx.recv().map_err(|_| {
            InferError::Model(format!(
                "{}: a model call ended without a result",
                self.session.path().display()
            ))
        })?;
        if let Some(k) = state.running.iter().position(|(j, _)| *j == i) {
            let (_, h) = state.running.swap_remove(k);
            let _ = h.join();
        }
        state.faces[i] = result?;
        state.done += 1;
        Ok(StepStats {
            residual: None,
            frames: 1,
        })
    }

    fn preview(&mut self, state: &OnnxChunkState, index: usize) -> Result<Frame, InferError> {
        Ok(state.faces[index.min(state.faces.len() - 1)].clone())
    }

    fn finish_chunk(&mut self, state: OnnxChunkState) -> Result<Vec<Frame>, InferError> {
        let mut state = state;
        Ok(std::mem::take(&mut state.faces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_is_one_inside_zero_outside() {
        let r = [0.2, 0.5, 0.8, 0.9];
        assert_eq!(ramp(0.5, 0.7, r, 0.05), 1.0);
        assert_eq!(ramp(0.1, 0.7, r, 0.05), 0.0);
        assert_eq!(ramp(0.5, 0.45, r, 0.05), 0.0);
        let mid = ramp(0.225, 0.7, r, 0.05);
        assert!(mid > 0.0 && mid < 1.0, "{mid}");
    }

    /// A crop with texture everywhere.
    fn patterned(r: u32) -> Frame {
        let mut data = Vec::new();
        for y in 0..r {
            for x in 0..r {
                data.extend([
                    (x * 7 % 200) as u8,
                    (y * 5 % 200) as u8,
                    ((x ^ y) % 200) as u8,
                ]);
            }
        }
        Frame::new(r, r, data).unwrap()
    }

    /// With a mesh hull, both models' outputs land inside it only: every crop pixel on or
    /// outside the hull keeps its value bit for bit, every pixel deeper inside than the
    /// feather takes the model's output; without the hull the fixed lower-face mask changes
    /// pixels outside it (so the check can fail).
    #[test]
    fn with_a_mesh_the_paste_stays_inside_the_hull() {
        let r = 256;
        let crop = patterned(r);
        // Jaw line and lips of a face in a 256 crop, as the pipeline's hull gives them.
        let hull = infer::convex_hull(&[
            [40.0, 130.0],
            [216.0, 128.0],
            [200.0, 200.0],
            [128.0, 246.0],
            [60.0, 204.0],
            [100.0, 170.0],
            [150.0, 172.0],
        ]);
        for kind in [LipSyncKind::Wav2Lip, LipSyncKind::EdTalk] {
            let n = kind.size() as usize;
            let planes = vec![0.9; 3 * n * n];
            let rect = match kind {
                LipSyncKind::Wav2Lip => WAV2LIP_BOX.map(|v| v * r as f32),
                LipSyncKind::EdTalk => [0.0, 0.0, r as f32, r as f32],
            };
            let mut with = crop.clone();
            paste(kind, &mut with, rect, &planes, &hull);
            let mut without = crop.clone();
            paste(kind, &mut without, rect, &planes, &[]);
            let (mut deep, mut spill) = (0, 0);
            for y in 0..r {
                for x in 0..r {
                    let (fx, fy) = (x as f32, y as f32);
                    if infer::polygon_weight(&hull, 1e-3, fx, fy) <= 0.0 {
                        assert_eq!(with.pixel(x, y), crop.pixel(x, y), "{kind:?} ({x}, {y})");
                        spill += usize::from(without.pixel(x, y) != crop.pixel(x, y));
                    } else if infer::polygon_weight(&hull, HULL_FEATHER * r as f32, fx, fy) >= 1.0 {
                        assert_eq!(with.pixel(x, y), [230, 230, 230], "{kind:?} ({x}, {y})");
                        deep += 1;
                    }
                }
            }
            assert!(deep > 3000, "{kind:?}: {deep} pixels deep inside");
            assert!(
                spill > 3000,
                "{kind:?}: the fixed mask spills over {spill} pixels"
            );
        }
    }

    #[test]
    fn sample_rect_of_a_flat_frame_is_flat() {
        let f = Frame::filled(256, 256, [255, 128, 0]);
        let out = sample_rect(&f, [0.0, 41.0, 256.0, 256.0], 96, 96);
        assert_eq!(out.len(), 96 * 96);
        for p in out {
            assert!(
                (p[0] - 1.0).abs() < 1e-6 && (p[1] - 128.0 / 255.0).abs() < 1e-6 && p[2] == 0.0
            );
        }
    }

    #[test]
    fn sample_rect_keeps_a_gradient_in_place() {
        // A horizontal ramp x → x: the 96-wide resample of the full width reads the value at
        // each output pixel's centre (averaged over its 2 sub-samples, still the centre).
        let mut data = Vec::new();
        for _y in 0..192 {
            for x in 0..192u32 {
                data.extend([x as u8, 0, 0]);
            }
        }
        let f = Frame::new(192, 192, data).unwrap();
        let out = sample_rect(&f, [0.0, 0.0, 192.0, 192.0], 96, 96);
        for i in 1..95 {
            let want = (2.0 * i as f32 + 0.5) / 255.0;
            assert!(
                (out[10 * 96 + i][0] - want).abs() < 1e-4,
                "{i}: {}",
                out[i][0] * 255.0
            );
        }
    }
}
