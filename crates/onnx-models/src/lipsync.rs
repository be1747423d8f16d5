//! Wav2Lip-96 and EDTalk-256 as [`infer::LipSyncModel`]s: one-shot models (one call per face,
//! or one per chunk when the file has a dynamic batch axis), fed their own mel features
//! ([`infer::LipMelStream`]). With a batch of 1, up to [`OnnxSession::parallel`] calls run
//! side by side on their own threads and sessions (on 2 cores: two single-threaded calls, which
//! keep both cores busier than one call on two intra-op threads while the pipeline's other
//! stages share the cores).
//!
//! Inputs and outputs as FaceFusion's lip syncer makes them
//! (`facefusion/processors/modules/lip_syncer/core.py`, 3.x), from the face's `ffhq_512` crop
//! (face-proc's `Alignment::Ffhq512` at R = 512), with OpenCV's arithmetic ([`frame::cv`]):
//! - **Wav2Lip**: the bounding box of the face's 68 landmarks in the crop
//!   (`create_bounding_box`, no padding) stretched onto 96×96 (`warp_face_by_bounding_box`:
//!   `cv2.warpAffine`, bilinear, zero border); BGR, `/255`; channels 0–2 with rows 48.. zeroed,
//!   3–5 whole. The mel window is scaled by `weight × 2` (× 1 at the default 0.5). The output,
//!   clipped, `×255`, truncated to 8 bits, goes back over the whole crop through the box's
//!   inverse (bilinear, edge replicated); the pipeline pastes it with FaceFusion's
//!   `lower-face` mask ([`infer::PasteRegion::FaceFusionLowerFace`]).
//! - **EDTalk**: the crop area-resized to 256 (`cv2.INTER_AREA`), RGB, `/255`, and `weight`
//!   (0–1) as the model's `weight` input; the output, clipped, `×255`, truncated, resized
//!   back to the crop's size (`cv2.INTER_CUBIC`), pasted with FaceFusion's box mask
//!   ([`infer::PasteRegion::FaceFusionBox`]): EDTalk regenerates the whole face and FaceFusion
//!   pastes all of it.
//!
//! The parity harness (`tests/parity`, run by `cargo xtask test`) checks these tensors and the
//! pasted frames against an independent reference written from FaceFusion's code.

use std::path::Path;
use std::sync::Arc;

use frame::Frame;
use frame::cv::{self, Border};
use infer::{
    ChunkInput, FeatureBuilder, InferError, LIP_MEL_SILENCE, LipMelStream, LipSyncModel, Mask,
    MouthGeometry, PasteRegion, Schedule, StepStats,
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
    /// sizes; errors name the file and tensor). `weight`: the lip strength, 0 to 1, as
    /// FaceFusion's `--lip-syncer-weight` (default 0.5): Wav2Lip's mel is scaled by
    /// `weight × 2`, EDTalk gets it as its `weight` input.
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
        if !(0.0..=1.0).contains(&weight) {
            return Err(OnnxError::Contract {
                path: session.path().to_path_buf(),
                tensor: "weight".into(),
                message: format!("lip strength {weight} is out of range (0 to 1)"),
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

    /// Appends the model's input image for one face (its crop, cut as `placed` says) to
    /// `out`.
    fn prepare(&self, face: &Frame, placed: Placed, out: &mut Vec<f32>) {
        let (r, data) = (face.width() as usize, face.data());
        let n = self.kind.size() as usize;
        let start = out.len();
        match placed {
            Placed::Box(m) => {
                let bgr_box =
                    cv::warp_affine_u8(data, r, r, 3, m, false, n, n, Border::Constant(0.0));
                // Channels 0–2: the box with its lower half zeroed; 3–5: the box. BGR, /255.
                out.resize(start + 6 * n * n, 0.0);
                let planes = &mut out[start..];
                for (i, p) in bgr_box.chunks_exact(3).enumerate() {
                    let y = i / n;
                    for (c, v) in [p[2], p[1], p[0]].into_iter().enumerate() {
                        let v = f32::from(v) / 255.0;
                        if y < n / 2 {
                            planes[c * n * n + i] = v;
                        }
                        planes[(3 + c) * n * n + i] = v;
                    }
                }
            }
            Placed::Whole => {
                let small = cv::resize_area_u8(data, r, r, 3, n, n);
                out.resize(start + 3 * n * n, 0.0);
                let planes = &mut out[start..];
                for (i, p) in small.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        planes[c * n * n + i] = (f64::from(p[c]) / 255.0) as f32;
                    }
                }
            }
        }
    }

    /// Where a face's model input comes from, or `None` for a Wav2Lip face without its 68
    /// landmarks (a frame without a mesh, e.g. one whose transform is interpolated): that face
    /// is left as it is, as FaceFusion leaves a frame without a face.
    fn placement(&self, landmarks: &[[f32; 2]]) -> Option<Placed> {
        match self.kind {
            LipSyncKind::Wav2Lip => wav2lip_box(landmarks).map(Placed::Box),
            LipSyncKind::EdTalk => Some(Placed::Whole),
        }
    }

    /// The crop FaceFusion pastes from one face's model output `planes` (`[3][n][n]`, BGR for
    /// Wav2Lip, RGB for EDTalk): clipped to 0..1, `×255`, truncated to 8 bits, then over the
    /// R×R crop (Wav2Lip: through the box's inverse, bilinear, edge replicated; EDTalk: a
    /// cubic resize).
    fn unprepare(&self, planes: &[f32], placed: &Placed, r: u32) -> Frame {
        let n = self.kind.size() as usize;
        let bgr = self.kind == LipSyncKind::Wav2Lip;
        let mut rgb = vec![0u8; n * n * 3];
        for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                let plane = if bgr { 2 - c } else { c };
                // numpy's `clip(0, 1) * 255` then `astype(uint8)`: truncation.
                *v = (planes[plane * n * n + i].clamp(0.0, 1.0) * 255.0) as u8;
            }
        }
        let r = r as usize;
        let data = match placed {
            Placed::Box(m) => cv::warp_affine_u8(
                &rgb,
                n,
                n,
                3,
                cv::invert_affine(*m),
                false,
                r,
                r,
                Border::Replicate,
            ),
            Placed::Whole => cv::resize_cubic_u8(&rgb, n, n, 3, r, r),
        };
        Frame::new(r as u32, r as u32, data).expect("r*r*3 bytes")
    }

    /// The mel window as the model gets it: Wav2Lip's scaled by `weight × 2`.
    fn scale_mel(&self, mel: &mut [f32]) {
        if self.kind == LipSyncKind::Wav2Lip {
            let k = self.weight * 2.0;
            mel.iter_mut().for_each(|v| *v *= k);
        }
    }
}

/// Where a model's square input came from in the crop.
#[derive(Debug, Clone, Copy)]
enum Placed {
    /// Wav2Lip: the crop → 96×96 map of the landmarks' box.
    Box([[f64; 3]; 2]),
    /// EDTalk: the whole crop, resized.
    Whole,
}

/// Wav2Lip's face box as FaceFusion takes it (`create_bounding_box` of the 68 landmarks in the
/// crop, its corners as float32, `warp_face_by_bounding_box`'s `cv2.getAffineTransform` onto
/// 96×96): the crop → box map, or `None` without 68 landmarks or for an empty box.
fn wav2lip_box(landmarks: &[[f32; 2]]) -> Option<[[f64; 3]; 2]> {
    if landmarks.len() < 68 {
        return None;
    }
    let (mut x1, mut y1, mut x2, mut y2) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in &landmarks[..68] {
        x1 = x1.min(p[0]);
        y1 = y1.min(p[1]);
        x2 = x2.max(p[0]);
        y2 = y2.max(p[1]);
    }
    let (x1, y1, x2, y2) = (f64::from(x1), f64::from(y1), f64::from(x2), f64::from(y2));
    if !(x2 - x1 > 0.0 && y2 - y1 > 0.0) {
        return None;
    }
    let n = f64::from(LipSyncKind::Wav2Lip.size());
    let (sx, sy) = (n / (x2 - x1), n / (y2 - y1));
    Some([[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy]])
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
    /// Each face's 68 landmarks (crop pixels), empty without a mesh.
    landmarks: Vec<Vec<[f32; 2]>>,
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

    /// One model call on `faces` (their mel windows in `mels`, their 68 landmarks in
    /// `landmarks`): prepares the inputs, runs the session, replaces each face by the crop
    /// FaceFusion would paste.
    fn call(
        &self,
        faces: &mut [Frame],
        mels: &[f32],
        landmarks: &[Vec<[f32; 2]>],
    ) -> Result<(), InferError> {
        const MEL: usize = 80 * 16;
        let s = self.kind.size() as i64;
        let planes = self.planes();
        let used: Vec<(usize, Placed)> = landmarks
            .iter()
            .enumerate()
            .filter_map(|(i, l)| self.placement(l).map(|p| (i, p)))
            .collect();
        if used.is_empty() {
            return Ok(());
        }
        let b = used.len() as i64;
        let mut target = Vec::with_capacity(used.len() * (planes * s * s) as usize);
        let mut source = Vec::with_capacity(used.len() * MEL);
        for &(i, placed) in &used {
            self.prepare(&faces[i], placed, &mut target);
            source.extend_from_slice(&mels[i * MEL..(i + 1) * MEL]);
        }
        self.scale_mel(&mut source);
        let mut inputs = vec![
            ("source", vec![b, 1, 80, 16], source),
            ("target", vec![b, planes, s, s], target),
        ];
        if self.kind == LipSyncKind::EdTalk {
            inputs.push(("weight", vec![1], vec![self.weight]));
        }
        let (shape, out) = self.session.run_f32(inputs).map_err(|e| self.error(e))?;
        let per_out = (3 * s * s) as usize;
        if shape != [b, 3, s, s] || out.len() != used.len() * per_out {
            return Err(self.error(OnnxError::Contract {
                path: self.session.path().to_path_buf(),
                tensor: "output".into(),
                message: format!("the model returned shape {shape:?} (expected [{b},3,{s},{s}])"),
            }));
        }
        for (&(i, placed), planes) in used.iter().zip(out.chunks_exact(per_out)) {
            faces[i] = self.unprepare(planes, &placed, faces[i].width());
        }
        Ok(())
    }
}

impl LipSyncModel for OnnxLipSync {
    type State = OnnxChunkState;

    fn mask(&self, size: u32) -> Mask {
        // The scheduler's region of interest; the paste-back uses FaceFusion's masks
        // ([`LipSyncModel::paste_region`]).
        MouthGeometry::default().mask(size)
    }

    fn paste_region(&self) -> PasteRegion {
        match self.kind {
            LipSyncKind::Wav2Lip => PasteRegion::FaceFusionLowerFace,
            LipSyncKind::EdTalk => PasteRegion::FaceFusionBox,
        }
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
            if chunk.is_silent(i) {
                // FaceFusion's empty audio frame: the model's closed mouth.
                w.fill(LIP_MEL_SILENCE);
            } else {
                features.window_into(chunk.first_frame + i, w);
            }
        }
        let landmarks = (0..n)
            .map(|i| {
                chunk
                    .mouths
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|m| m.landmarks_68.clone())
                    .unwrap_or_default()
            })
            .collect();
        Ok(OnnxChunkState {
            faces: chunk.faces.to_vec(),
            landmarks,
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
            self.call(&mut state.faces, &state.mels, &state.landmarks)?;
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
            let landmarks = [state.landmarks[i].clone()];
            let (model, tx) = (self.clone(), tx.clone());
            let spawned = std::thread::Builder::new()
                .name("facesync-model-call".into())
                .spawn(move || {
                    // A panic is a result too: the step waiting for it must not hang.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        model.call(&mut face, &mel, &landmarks)
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
    fn the_wav2lip_box_is_the_landmarks_bounding_box_on_96() {
        let mut lm = vec![[200.0f32, 250.0]; 68];
        lm[0] = [150.0, 220.0];
        lm[8] = [260.0, 400.0];
        lm[16] = [370.0, 230.0];
        let m = wav2lip_box(&lm).unwrap();
        let at = |p: [f64; 2]| {
            [
                m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
                m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
            ]
        };
        assert_eq!(at([150.0, 220.0]), [0.0, 0.0]);
        let far = at([370.0, 400.0]);
        assert!((far[0] - 96.0).abs() < 1e-9 && (far[1] - 96.0).abs() < 1e-9);
        assert!(wav2lip_box(&lm[..67]).is_none());
        assert!(wav2lip_box(&vec![[5.0, 5.0]; 68]).is_none());
    }
}
