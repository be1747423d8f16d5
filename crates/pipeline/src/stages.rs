//! The one place where the stage crates are wired in, so that API changes stay local.
//!
//! All three are the real stages: face-proc (BlazeFace detection, alignment, R×R crops,
//! face-status events), infer (audio features + the built-in mouth model over `steps`
//! refinement steps, per-chunk step phases and previews) and restore (feathered paste-back).
//! Each runs on the compute device chosen once by [`compute`].

use std::time::Duration;

use face_proc::{FaceConfig, FaceProcessor, FaceRecord};
use gpu::Compute;
use infer::{
    AudioFeatures, FeatureStream, InferConfig, Inferencer, MouthModel, MouthParams, MouthPlacement,
};
use progress_core::{Cancelled, Phase};
use restore::{FacePaste, RestoreConfig, Restorer};

use crate::{Chunk, NoFacePolicy, PipelineConfig, PipelineError};

/// Per-frame result of face processing, and (after infer) the generated face.
#[derive(Debug, Clone)]
pub(crate) struct FaceInfo {
    /// What face-proc found; `record.crop` is the aligned R×R crop when a face was found.
    pub(crate) record: FaceRecord,
    /// The crop with the regenerated mouth, when infer ran on it.
    pub(crate) generated: Option<frame::Frame>,
}

fn stage_error(stage: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Stage {
        stage: stage.into(),
        message: e.to_string(),
    }
}

/// Picks the compute device for every stage.
pub(crate) fn compute(config: &PipelineConfig, parent: &Phase) -> Result<Compute, PipelineError> {
    let backend = match config.backend {
        crate::Backend::Auto => gpu::BackendChoice::Auto,
        crate::Backend::Gpu => gpu::BackendChoice::Gpu,
        crate::Backend::Cpu => gpu::BackendChoice::Cpu,
    };
    let options = gpu::GpuOptions {
        backend,
        ..gpu::GpuOptions::from_env()
    };
    gpu::acquire(&options, Some(parent)).map_err(|e| stage_error("gpu", e))
}

/// "Processing faces".
#[derive(Debug)]
pub(crate) struct FaceStage {
    inner: FaceProcessor,
}

impl FaceStage {
    pub(crate) fn new(compute: &Compute, config: &PipelineConfig) -> Result<Self, PipelineError> {
        let no_face = match config.no_face {
            NoFacePolicy::Pass => face_proc::NoFacePolicy::PassThrough,
            NoFacePolicy::Error => face_proc::NoFacePolicy::Error,
            NoFacePolicy::Interpolate => face_proc::NoFacePolicy::Interpolate { max_gap: 12 },
        };
        let face_config = FaceConfig {
            resolution: config.resolution,
            no_face,
            alignment: config.alignment,
            ..FaceConfig::default()
        };
        let inner =
            FaceProcessor::new(compute, face_config).map_err(|e| stage_error(crate::FACES, e))?;
        Ok(Self { inner })
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
            .map_err(|e| {
                if phase.cancel_token().is_cancelled() {
                    PipelineError::Cancelled {
                        phase: crate::FACES.into(),
                    }
                } else {
                    stage_error(crate::FACES, e)
                }
            })?;
        chunk.faces = records
            .into_iter()
            .map(|record| FaceInfo {
                record,
                generated: None,
            })
            .collect();
        Ok(())
    }
}

/// Streams the audio track into mel features block by block (the decoded samples are never
/// held whole, so memory stays flat however long the audio is, but for 320 bytes of features
/// per 10 ms).
pub(crate) fn audio_features(path: &std::path::Path) -> Result<FeatureStream, PipelineError> {
    let mut reader = media_io::AudioReader::open(path)?;
    let mut stream = FeatureStream::new(reader.channels(), reader.sample_rate())
        .map_err(|e| stage_error(crate::INFERENCE, e))?;
    let mut block = vec![0.0f32; 8192 * usize::from(reader.channels())];
    loop {
        let n = reader.read(&mut block)?;
        if n == 0 {
            return Ok(stream);
        }
        stream
            .push(&block[..n])
            .map_err(|e| stage_error(crate::INFERENCE, e))?;
    }
}

/// Where the face mesh puts the mouth in the record's crop: corners, inner lips, chin, and
/// half the jaw's width at the mouth (mesh points 58 and 288). `None` without a mesh.
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
    Some(MouthPlacement {
        corners: [at(idx::MOUTH_LEFT), at(idx::MOUTH_RIGHT)],
        upper_inner: at(idx::UPPER_LIP_INNER),
        lower_inner: at(idx::LOWER_LIP_INNER),
        chin: at(idx::CHIN),
        jaw_half_width: ((jr[0] - jl[0]).powi(2) + (jr[1] - jl[1]).powi(2)).sqrt() / 2.0,
    })
}

/// "Doing inference".
#[derive(Debug)]
pub(crate) struct InferStage {
    inner: Inferencer<MouthModel>,
    audio: AudioFeatures,
}

impl InferStage {
    pub(crate) fn new(
        compute: &Compute,
        config: &PipelineConfig,
        audio: FeatureStream,
        fps: f64,
        n_frames: u64,
    ) -> Result<Self, PipelineError> {
        let features = audio
            .finish(fps, n_frames as usize)
            .map_err(|e| stage_error(crate::INFERENCE, e))?;
        let model = MouthModel::new(compute.clone(), MouthParams::default());
        let infer_config = InferConfig {
            chunk_size: config.chunk,
            steps: config.steps as usize,
            preview_interval: Duration::from_millis(500),
        };
        Ok(Self {
            inner: Inferencer::new(model, infer_config),
            audio: features,
        })
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
                .run_chunk_placed(&crops, &mouths, first, &self.audio, phase)
                .map_err(|e| match e {
                    infer::InferError::Cancelled(Cancelled) => PipelineError::Cancelled {
                        phase: crate::INFERENCE.into(),
                    },
                    other => stage_error(crate::INFERENCE, other),
                })?;
            for (info, face) in chunk.faces[i..end].iter_mut().zip(out) {
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
            batch: config.chunk,
            ..RestoreConfig::default()
        };
        let inner = Restorer::new(compute.clone(), restore_config)
            .map_err(|e| stage_error(crate::RESTORING, e))?;
        Ok(Self { inner })
    }

    /// Pastes the generated faces (frames without one stay untouched); advances `phase`.
    pub(crate) fn process(
        &mut self,
        chunk: &mut Chunk,
        phase: &Phase,
    ) -> Result<(), PipelineError> {
        let pastes: Vec<Option<FacePaste>> = std::mem::take(&mut chunk.faces)
            .into_iter()
            .map(|info| {
                info.generated.map(|face| FacePaste {
                    face,
                    to_crop: info.record.to_crop,
                })
            })
            .collect();
        self.inner
            .restore_batch(&mut chunk.frames, &pastes, phase)
            .map_err(|e| {
                if phase.cancel_token().is_cancelled() {
                    PipelineError::Cancelled {
                        phase: crate::RESTORING.into(),
                    }
                } else {
                    stage_error(crate::RESTORING, e)
                }
            })?;
        Ok(())
    }
}
