//! The one place where the stage crates are wired in, so that API changes stay local.
//!
//! All three are the real stages: face-proc (BlazeFace detection, alignment, R×R crops,
//! face-status events), infer (audio features + the built-in mouth model over `steps`
//! refinement steps, per-chunk step phases and previews) and restore (feathered paste-back).
//! Each runs on the compute device chosen once by [`compute`].

use std::sync::Arc;

use face_proc::{FaceConfig, FaceProcessor, FaceRecord};
use gpu::Compute;
use infer::{
    AudioFeatures, ChunkExtras, ChunkRunner, FeatureBuilder, FeatureStream, FrameFeatures,
    MouthPlacement, PasteRegion, SilenceGate,
};
use progress_core::{Cancelled, Level, Phase};
use restore::{FacePaste, FaceWeights, PasteMask, RestoreConfig, Restorer};

use crate::SilenceThreshold;
use crate::{Chunk, NoFacePolicy, PipelineConfig, PipelineError};

/// Per-frame result of face processing, and (after infer) the generated face.
#[derive(Debug, Clone)]
pub(crate) struct FaceInfo {
    /// What face-proc found; `record.crop` is the aligned R×R crop when a face was found.
    pub(crate) record: FaceRecord,
    /// The crop with the regenerated mouth, when infer ran on it.
    pub(crate) generated: Option<frame::Frame>,
    /// Where restore may change the frame (the mesh's lower-face hull in crop pixels), when
    /// the model edits only the mouth region ([`infer::PasteRegion::LowerFace`]) and the
    /// frame has a mesh; `None`: the whole crop under restore's own mask.
    pub(crate) paste_mask: Option<PasteMask>,
    /// FaceFusion's paste weights, for models pasted as FaceFusion pastes
    /// ([`infer::PasteRegion::FaceFusionLowerFace`], [`infer::PasteRegion::FaceFusionBox`]).
    pub(crate) paste_weights: Option<Arc<FaceWeights>>,
}

/// Restore's feather inside the mesh hull, as a share of the crop's side (2.56 px at
/// R = 256): narrow, because the models fade their edits inside the hull themselves (the
/// built-in model over 4 px, Wav2Lip/EDTalk over 5 % of R); this only keeps restore from
/// resampling the crop outside the hull.
const RESTORE_HULL_FEATHER: f32 = 0.01;

fn stage_error(stage: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Stage {
        stage: stage.into(),
        message: e.to_string(),
    }
}

/// A stage's error while it ran under `phase`: the stage's `Cancelled` when `phase` was
/// cancelled (whatever error the stop surfaced as), else [`stage_error`].
fn run_error(stage: &str, phase: &Phase, e: impl std::fmt::Display) -> PipelineError {
    if phase.cancel_token().is_cancelled() {
        PipelineError::Cancelled {
            phase: stage.into(),
        }
    } else {
        stage_error(stage, e)
    }
}

/// Picks the compute device for every stage: the backend from `config` and the environment
/// ([`gpu::GpuOptions::resolve`]: an explicit `gpu`/`cpu` > `FACESYNC_BACKEND` > `auto`), then
/// the adapter. Posts on `parent` one info message naming the compute and where the backend
/// choice came from, and gpu's notice (a CPU fallback is a warning) when it has one.
pub(crate) fn compute(config: &PipelineConfig, parent: &Phase) -> Result<Compute, PipelineError> {
    // A bad FACESYNC_BACKEND is the machine's setting, not the run's options: an error of the
    // gpu step (Python: FacesyncError, not ValueError).
    let options =
        gpu::GpuOptions::resolve(config.options.backend).map_err(|e| stage_error("gpu", e))?;
    let source = if config.options.backend != crate::Backend::Auto {
        "the run's options"
    } else if options.backend != crate::Backend::Auto {
        gpu::BACKEND_ENV
    } else {
        "the default"
    };
    let acquired = gpu::acquire(&options).map_err(|e| stage_error("gpu", e))?;
    if let Some(notice) = &acquired.notice {
        let level = if notice.warning {
            Level::Warn
        } else {
            Level::Info
        };
        parent.message(level, notice.text.clone());
    }
    parent.message(
        Level::Info,
        format!(
            "compute: {} (backend {} from {source})",
            acquired.compute.name(),
            options.backend
        ),
    );
    Ok(acquired.compute)
}

/// "Processing faces".
#[derive(Debug)]
pub(crate) struct FaceStage {
    inner: FaceProcessor,
    /// Where every frame's face goes, when the run keeps them ([`crate::PipelineConfig::landmarks_out`]).
    log: Option<Arc<std::sync::Mutex<crate::landmarks::LandmarkLog>>>,
}

impl FaceStage {
    pub(crate) fn new(compute: &Compute, config: &PipelineConfig) -> Result<Self, PipelineError> {
        let no_face = match config.options.no_face {
            NoFacePolicy::Pass => face_proc::NoFacePolicy::PassThrough,
            NoFacePolicy::Error => face_proc::NoFacePolicy::Error,
            NoFacePolicy::Interpolate => face_proc::NoFacePolicy::Interpolate { max_gap: 12 },
        };
        // LatentSync was trained on its own three-point alignment; FaceFusion feeds Wav2Lip
        // and EDTalk its `ffhq_512` crop.
        let (alignment, resolution) = match crate::model::alignment(&config.options.model) {
            Some((a, r)) => (a, r.unwrap_or(config.options.resolution)),
            None => (config.alignment, config.options.resolution),
        };
        let face_config = FaceConfig {
            resolution,
            no_face,
            alignment,
            ..FaceConfig::default()
        };
        let inner =
            FaceProcessor::new(compute, face_config).map_err(|e| stage_error(crate::FACES, e))?;
        Ok(Self { inner, log: None })
    }

    /// Writes every processed frame's face to `log`.
    pub(crate) fn log_to(
        &mut self,
        log: Option<Arc<std::sync::Mutex<crate::landmarks::LandmarkLog>>>,
    ) {
        self.log = log;
    }

    /// Detects and aligns; advances `phase` and emits one face status per frame.
    pub(crate) fn process(
        &mut self,
        chunk: &mut Chunk,
        phase: &Phase,
    ) -> Result<(), PipelineError> {
        let records = self
            .inner
            .process_batch(&chunk.frames, phase)
            .map_err(|e| run_error(crate::FACES, phase, e))?;
        if let Some(log) = &self.log {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            for record in &records {
                log.write(record)
                    .map_err(|e| run_error(crate::FACES, phase, e))?;
            }
        }
        chunk.faces = records
            .into_iter()
            .map(|record| FaceInfo {
                record,
                generated: None,
                paste_mask: None,
                paste_weights: None,
            })
            .collect();
        Ok(())
    }
}

/// The audio track streamed into features: the built-in mel features (every model gets them)
/// and the model's own, when it has any.
pub(crate) struct StreamedAudio {
    builtin: FeatureStream,
    model: Option<Box<dyn FeatureBuilder>>,
}

impl StreamedAudio {
    pub(crate) fn duration_secs(&self) -> f64 {
        self.builtin.duration_secs()
    }
}

/// Streams the audio track into mel features block by block (the decoded samples are never
/// held whole, so memory stays flat however long the audio is, but for 320 bytes of features
/// per 10 ms), and into the model's own features in the same pass.
pub(crate) fn audio_features(
    audio: &mut dyn crate::AudioSource,
    model: &dyn ChunkRunner,
) -> Result<StreamedAudio, PipelineError> {
    let (channels, rate, name) = (audio.channels(), audio.sample_rate(), audio.name());
    let err = |e: infer::InferError| PipelineError::Frames {
        name: name.clone(),
        message: e.to_string(),
    };
    let mut builtin = FeatureStream::new(channels, rate).map_err(err)?;
    let mut own = model.feature_builder(channels, rate).map_err(err)?;
    let mut block = vec![0.0f32; 8192 * usize::from(channels.max(1))];
    loop {
        let n = audio.read(&mut block)?;
        if n == 0 {
            return Ok(StreamedAudio {
                builtin,
                model: own,
            });
        }
        builtin.push(&block[..n]).map_err(err)?;
        if let Some(b) = own.as_mut() {
            b.push(&block[..n]).map_err(err)?;
        }
    }
}

/// Where the face mesh puts the mouth in the record's crop: the lower-face region (the hull of
/// the jaw line and the lips: the model draws nothing outside it), corners, inner lips, chin,
/// and half the jaw's width at the mouth (mesh points 58 and 288). `None` without a mesh.
pub(crate) fn mouth_placement(record: &FaceRecord) -> Option<MouthPlacement> {
    use face_proc::facemesh::idx;
    let mesh = &record.mesh;
    if mesh.len() < face_proc::facemesh::NUM_LANDMARKS {
        return None;
    }
    let at = |i: usize| {
        let p = record
            .to_crop
            .apply([f64::from(mesh[i][0]), f64::from(mesh[i][1])]);
        [p[0] as f32, p[1] as f32]
    };
    let (jl, jr) = (at(58), at(288));
    let landmarks_68 = face_proc::landmarks_68(mesh)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let q = record.to_crop.apply([f64::from(p[0]), f64::from(p[1])]);
            [q[0] as f32, q[1] as f32]
        })
        .collect();
    let hull: Vec<[f32; 2]> = idx::LOWER_FACE
        .iter()
        .chain(&idx::LIPS_OUTER)
        .map(|&i| at(i))
        .collect();
    Some(MouthPlacement {
        region: infer::convex_hull(&hull),
        corners: [at(idx::MOUTH_LEFT), at(idx::MOUTH_RIGHT)],
        upper_inner: at(idx::UPPER_LIP_INNER),
        lower_inner: at(idx::LOWER_LIP_INNER),
        chin: at(idx::CHIN),
        jaw_half_width: ((jr[0] - jl[0]).powi(2) + (jr[1] - jl[1]).powi(2)).sqrt() / 2.0,
        landmarks_68,
    })
}

/// "Doing inference".
pub(crate) struct InferStage {
    inner: Box<dyn ChunkRunner>,
    audio: AudioFeatures,
    features: Option<Box<dyn FrameFeatures>>,
    /// The silence gate, unless the run turned it off.
    silence: Option<SilenceGate>,
}

impl std::fmt::Debug for InferStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferStage")
            .field("audio", &self.audio)
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl InferStage {
    pub(crate) fn new(
        model: Box<dyn ChunkRunner>,
        audio: StreamedAudio,
        fps: f64,
        n_frames: u64,
        silence: SilenceThreshold,
    ) -> Result<Self, PipelineError> {
        let err = |e| stage_error(crate::INFERENCE, e);
        let features = audio.builtin.finish(fps, n_frames as usize).map_err(err)?;
        let silence = match silence {
            SilenceThreshold::Off => None,
            SilenceThreshold::Dbfs(db) => Some(SilenceGate::new(&features, db)),
        };
        let own = audio
            .model
            .map(|b| b.finish(fps, n_frames as usize))
            .transpose()
            .map_err(err)?;
        Ok(Self {
            inner: model,
            audio: features,
            features: own,
            silence,
        })
    }

    /// The silence gate, unless the run turned it off.
    pub(crate) fn silence(&self) -> Option<&SilenceGate> {
        self.silence.as_ref()
    }

    /// Runs the model on every run of consecutive frames that have a face crop (frames without
    /// one are counted and left alone).
    pub(crate) fn process(
        &mut self,
        chunk: &mut Chunk,
        phase: &Phase,
    ) -> Result<(), PipelineError> {
        let n = chunk.faces.len();
        let mut i = 0;
        while i < n {
            if chunk.faces[i].record.crop.is_none() {
                phase.inc(1);
                i += 1;
                continue;
            }
            let end = (i..n)
                .find(|&j| chunk.faces[j].record.crop.is_none())
                .unwrap_or(n);
            let crops: Vec<frame::Frame> = chunk.faces[i..end]
                .iter()
                .filter_map(|f| f.record.crop.clone())
                .collect();
            let mouths: Vec<Option<MouthPlacement>> = chunk.faces[i..end]
                .iter()
                .map(|f| mouth_placement(&f.record))
                .collect();
            let first = chunk.start as usize + i;
            let out = self
                .inner
                .run_chunk(
                    &crops,
                    first,
                    &self.audio,
                    ChunkExtras {
                        features: self.features.as_deref(),
                        mouths: &mouths,
                        silence: self.silence.as_ref(),
                    },
                    phase,
                )
                .map_err(|e| match e {
                    infer::InferError::Cancelled(Cancelled) => PipelineError::Cancelled {
                        phase: crate::INFERENCE.into(),
                    },
                    other => stage_error(crate::INFERENCE, other),
                })?;
            let region = self.inner.paste_region();
            for ((info, face), mouth) in chunk.faces[i..end].iter_mut().zip(out).zip(mouths) {
                let r = face.width();
                match region {
                    PasteRegion::FaceFusionLowerFace => {
                        // Without the 68 landmarks (a frame whose transform is interpolated
                        // has no mesh) the model left the face alone and nothing is pasted.
                        match mouth
                            .and_then(|m| FaceWeights::facefusion_lower_face(r, &m.landmarks_68))
                        {
                            Some(w) => info.paste_weights = Some(Arc::new(w)),
                            None => {
                                info.generated = None;
                                continue;
                            }
                        }
                    }
                    PasteRegion::FaceFusionBox => {
                        info.paste_weights = Some(restore::facefusion_box_shared(r));
                    }
                    PasteRegion::LowerFace => {
                        info.paste_mask =
                            mouth.filter(|m| m.region.len() >= 3).map(|m| PasteMask {
                                polygon: m.region,
                                feather: RESTORE_HULL_FEATHER * r as f32,
                            });
                    }
                    _ => {}
                }
                info.generated = Some(face);
            }
            i = end;
        }
        Ok(())
    }
}

/// "Restoring faces": pastes each generated face back into its frame.
#[derive(Debug)]
pub(crate) struct RestoreStage {
    inner: Restorer,
}

impl RestoreStage {
    pub(crate) fn new(compute: &Compute, config: &PipelineConfig) -> Result<Self, PipelineError> {
        let restore_config = RestoreConfig {
            batch: config.options.chunk,
            ..RestoreConfig::default()
        };
        let inner = Restorer::new(compute.clone(), restore_config)
            .map_err(|e| stage_error(crate::RESTORING, e))?;
        Ok(Self { inner })
    }

    /// Pastes the generated faces (frames without one, or whose face the model did not
    /// change, stay untouched); advances `phase`.
    pub(crate) fn process(
        &mut self,
        chunk: &mut Chunk,
        phase: &Phase,
    ) -> Result<(), PipelineError> {
        // A face the model left exactly as it was (the built-in model in silence) is not
        // pasted back: that would only resample the face region through the two warps.
        let pastes: Vec<Option<FacePaste>> = std::mem::take(&mut chunk.faces)
            .into_iter()
            .map(|info| match info.generated {
                Some(face) if info.record.crop.as_ref() != Some(&face) => Some(FacePaste {
                    face,
                    to_crop: info.record.to_crop,
                    mask: info.paste_mask,
                    weights: info.paste_weights,
                }),
                _ => None,
            })
            .collect();
        self.inner
            .restore_batch(&mut chunk.frames, &pastes, phase)
            .map_err(|e| run_error(crate::RESTORING, phase, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use face_proc::facemesh::{self, CpuFaceMesh, Mesh, idx};
    use frame::Frame;
    use infer::{ChunkExtras, InferConfig, Inferencer, MouthModel, MouthParams};
    use std::time::Duration;

    fn astronaut() -> Frame {
        let bytes: &[u8] = include_bytes!("../assets/astronaut.png");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
        let info = reader.next_frame(&mut buf).expect("png pixels");
        buf.truncate(info.buffer_size());
        Frame::new(info.width, info.height, buf).expect("frame")
    }

    /// Voiced "speech" at 16 kHz: harmonics of 140 Hz up to 3 kHz, syllables 1.5 per second
    /// (the envelope `max(0, sin)`: half of the time silent).
    fn speech(seconds: f64) -> Vec<f32> {
        let rate = 16_000.0;
        (0..(seconds * rate) as usize)
            .map(|i| {
                let t = i as f64 / rate;
                let env = (std::f64::consts::TAU * 1.5 * t).sin().max(0.0);
                let voice: f64 = (1..=21)
                    .map(|k| (std::f64::consts::TAU * 140.0 * k as f64 * t).sin() / k as f64)
                    .sum();
                (0.3 * env * voice) as f32
            })
            .collect()
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    /// The built-in model on the committed photo, placed by the face mesh: outside the
    /// lower-face region (the hull of the jaw line and the lips) by more than 3 px the output
    /// crop equals the input within 2 levels (the Poisson blend's reach), and the inner-lip gap
    /// that FaceMesh measures on the output crops follows the speech envelope (Pearson
    /// correlation with the model's mouth opening at least 0.7).
    #[test]
    #[allow(clippy::print_stdout)]
    fn the_mouth_edit_stays_on_the_lips_and_follows_the_speech() {
        let photo = astronaut();
        let mut faces =
            FaceProcessor::new(&Compute::Cpu, FaceConfig::default()).expect("face stage");
        let phase = Phase::detached("test", None, "frames");
        let rec = faces.process_batch(&[photo], &phase).unwrap().remove(0);
        let crop = rec.crop.clone().expect("a face in the photo");
        let placement = mouth_placement(&rec).expect("a mesh");
        let n = 48;
        let audio =
            AudioFeatures::from_samples(&speech(n as f64 / 25.0), 1, 16_000, 25.0, n).unwrap();
        let params = MouthParams::default();
        let opening = audio.mouth_opening(params.gate_db);
        let model = MouthModel::new(Compute::Cpu, params);
        let mut inferencer = Inferencer::new(
            model,
            InferConfig {
                chunk_size: 16,
                steps: 20,
                preview_interval: Duration::from_secs(3600),
            },
        );
        let mut out = Vec::new();
        for first in (0..n).step_by(16) {
            let crops = vec![crop.clone(); 16];
            let mouths = vec![Some(placement.clone()); 16];
            out.extend(
                inferencer
                    .run_chunk(
                        &crops,
                        first,
                        &audio,
                        ChunkExtras::with_mouths(&mouths),
                        &phase,
                    )
                    .unwrap(),
            );
        }
        // Nothing drawn outside the region.
        let region = &placement.region;
        let outside = |x: f32, y: f32| {
            region.iter().enumerate().any(|(i, a)| {
                let b = region[(i + 1) % region.len()];
                let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
                (ex * (y - a[1]) - ey * (x - a[0])) / (ex * ex + ey * ey).sqrt() < -3.0
            })
        };
        let size = crop.width();
        let mut worst = 0u8;
        for face in &out {
            for y in 0..size {
                for x in 0..size {
                    if outside(x as f32, y as f32) {
                        let (a, b) = (face.pixel(x, y), crop.pixel(x, y));
                        for c in 0..3 {
                            worst = worst.max(a[c].abs_diff(b[c]));
                        }
                    }
                }
            }
        }
        assert!(
            worst <= 2,
            "outside the lower face the output differs by {worst} levels"
        );
        // The lips part with the speech, as FaceMesh sees it on the output.
        let to_crop = |p: &[f32; 2]| {
            let q = rec.to_crop.apply([f64::from(p[0]), f64::from(p[1])]);
            [q[0] as f32, q[1] as f32, 0.0]
        };
        let in_crop = Mesh {
            points: rec.mesh.iter().map(to_crop).collect(),
            presence: 1.0,
        };
        let mesh_region = facemesh::region_from_mesh(&in_crop);
        let mut net = CpuFaceMesh::new().unwrap();
        let gaps: Vec<f64> = out
            .iter()
            .map(|face| {
                let m = net.landmarks(face, &mesh_region);
                let (p, q) = (m.xy(idx::UPPER_LIP_INNER), m.xy(idx::LOWER_LIP_INNER));
                f64::from((p[0] - q[0]).hypot(p[1] - q[1]))
            })
            .collect();
        let want: Vec<f64> = opening.iter().map(|&v| f64::from(v)).collect();
        let r = pearson(&gaps, &want);
        let (lo, hi) = gaps
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &g| (l.min(g), h.max(g)));
        println!(
            "mouth edit: outside the region worst {worst} levels; inner-lip gap {lo:.1}..{hi:.1} px, correlation with the opening {r:.3}"
        );
        assert!(
            hi - lo > 3.0,
            "the lips hardly move: gap {lo:.1}..{hi:.1} px"
        );
        assert!(
            r >= 0.7,
            "gap/envelope correlation {r:.3} (gap {lo:.1}..{hi:.1} px)"
        );
    }

    /// The built-in model, with the paste region it asks for or forced to the whole crop.
    struct Builtin {
        inner: MouthModel,
        region: PasteRegion,
    }

    impl infer::LipSyncModel for Builtin {
        type State = infer::MouthState;
        fn mask(&self, size: u32) -> infer::Mask {
            self.inner.mask(size)
        }
        fn paste_region(&self) -> PasteRegion {
            self.region
        }
        fn begin_chunk(
            &mut self,
            chunk: &infer::ChunkInput<'_>,
        ) -> Result<Self::State, infer::InferError> {
            self.inner.begin_chunk(chunk)
        }
        fn step(
            &mut self,
            state: &mut Self::State,
            step: usize,
            n_steps: usize,
        ) -> Result<infer::StepStats, infer::InferError> {
            self.inner.step(state, step, n_steps)
        }
        fn preview(
            &mut self,
            state: &Self::State,
            index: usize,
        ) -> Result<Frame, infer::InferError> {
            self.inner.preview(state, index)
        }
        fn finish_chunk(&mut self, state: Self::State) -> Result<Vec<Frame>, infer::InferError> {
            self.inner.finish_chunk(state)
        }
    }

    /// The whole pipeline (CPU) on 16 frames of the committed photo with speech: with the
    /// built-in model's paste region (the mesh's lower-face hull) every output pixel whose
    /// crop point lies outside the hull (by more than 1 crop px, for the frame-to-frame
    /// wobble of the tracked transform) equals the input bit for bit, while the mouth moves;
    /// restoring the whole crop instead (LatentSync's semantics) changes thousands of them.
    #[test]
    fn restore_keeps_every_pixel_outside_the_mesh_hull() {
        let photo = astronaut();
        let (w, h) = (photo.width(), photo.height());
        let n = 16;
        let input: Vec<u8> = (0..n).flat_map(|_| photo.data().to_vec()).collect();
        let samples = speech(n as f64 / 25.0);
        let mut faces =
            FaceProcessor::new(&Compute::Cpu, FaceConfig::default()).expect("face stage");
        let rec = faces
            .process_batch(
                std::slice::from_ref(&photo),
                &Phase::detached("test", None, "frames"),
            )
            .unwrap()
            .remove(0);
        let region = mouth_placement(&rec).expect("a mesh").region;
        let outside = |x: u32, y: u32| {
            let q = rec.to_crop.apply([f64::from(x), f64::from(y)]);
            infer::polygon_weight(&region, 1e-3, q[0] as f32 + 1.0, q[1] as f32) <= 0.0
                && infer::polygon_weight(&region, 1e-3, q[0] as f32 - 1.0, q[1] as f32) <= 0.0
                && infer::polygon_weight(&region, 1e-3, q[0] as f32, q[1] as f32 + 1.0) <= 0.0
                && infer::polygon_weight(&region, 1e-3, q[0] as f32, q[1] as f32 - 1.0) <= 0.0
        };
        let run = |region: PasteRegion| -> (usize, usize) {
            let config = crate::PipelineConfig::from(crate::RunOptions {
                backend: crate::Backend::Cpu,
                ..crate::RunOptions::default()
            });
            let mut source =
                crate::RawSource::new(&input, w, h, media_io::Rational::new(25, 1), "photo frames")
                    .unwrap();
            let mut audio = crate::RawAudio::interleaved(&samples, 1, 16_000, "speech").unwrap();
            let mut out = Vec::new();
            let model = Builtin {
                inner: MouthModel::new(Compute::Cpu, MouthParams::default()),
                region,
            };
            let runner = Inferencer::new(
                model,
                InferConfig {
                    chunk_size: 16,
                    steps: 20,
                    preview_interval: Duration::from_secs(3600),
                },
            );
            crate::run_with_model(
                &config,
                &mut source,
                &mut audio,
                Box::new(crate::RawSink::new(&mut out)),
                &Phase::detached("test", None, "frames"),
                &Compute::Cpu,
                Box::new(runner),
            )
            .unwrap();
            assert_eq!(out.len(), input.len());
            let (mut changed_outside, mut changed) = (0, 0);
            for (k, (a, b)) in input.chunks_exact(3).zip(out.chunks_exact(3)).enumerate() {
                if a != b {
                    changed += 1;
                    let p = (k % (w * h) as usize) as u32;
                    changed_outside += usize::from(outside(p % w, p / w));
                }
            }
            (changed_outside, changed)
        };
        let (outside_hull, inside) = run(PasteRegion::LowerFace);
        assert_eq!(outside_hull, 0, "pixels changed outside the hull");
        assert!(
            inside > 5000,
            "the mouth hardly moves: {inside} pixels changed"
        );
        let (outside_whole, _) = run(PasteRegion::WholeCrop);
        assert!(
            outside_whole > 5000,
            "the whole-crop paste changes only {outside_whole} pixels outside the hull"
        );
    }
}
