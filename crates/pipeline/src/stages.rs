//! The one place where the stage crates are wired in, so that API changes stay local.
//!
//! All three are the real stages: face-proc (BlazeFace detection, alignment, R×R crops,
//! face-status events), infer (audio features + the built-in mouth model over `steps`
//! refinement steps, per-chunk step phases and previews) and restore (feathered paste-back).
//! Each runs on the compute device chosen once by [`compute`].

use face_proc::{FaceConfig, FaceProcessor, FaceRecord};
use gpu::Compute;
use infer::{AudioFeatures, ChunkRunner, FeatureBuilder, FeatureStream, FrameFeatures};
use progress_core::{Cancelled, Level, Phase};
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

/// Picks the compute device for every stage: the backend from `config` and the environment
/// ([`gpu::GpuOptions::resolve`]: an explicit `gpu`/`cpu` > `FACESYNC_BACKEND` > `auto`), then
/// the adapter. Posts on `parent` one info message naming the compute and where the backend
/// choice came from, and gpu's notice (a CPU fallback is a warning) when it has one.
pub(crate) fn compute(config: &PipelineConfig, parent: &Phase) -> Result<Compute, PipelineError> {
    let options = gpu::GpuOptions::resolve(config.backend)
        .map_err(|e| PipelineError::Config(e.to_string()))?;
    let source = if config.backend != crate::Backend::Auto {
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
    let (channels, rate) = (audio.channels(), audio.sample_rate());
    let err = |e: infer::InferError| PipelineError::Frames {
        name: audio.name(),
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
        let err = |e: infer::InferError| PipelineError::Frames {
            name: audio.name(),
            message: e.to_string(),
        };
        builtin.push(&block[..n]).map_err(err)?;
        if let Some(b) = own.as_mut() {
            b.push(&block[..n]).map_err(err)?;
        }
    }
}

/// "Doing inference".
pub(crate) struct InferStage {
    inner: Box<dyn ChunkRunner>,
    audio: AudioFeatures,
    features: Option<Box<dyn FrameFeatures>>,
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
    ) -> Result<Self, PipelineError> {
        let err = |e| stage_error(crate::INFERENCE, e);
        let features = audio.builtin.finish(fps, n_frames as usize).map_err(err)?;
        let own = audio
            .model
            .map(|b| b.finish(fps, n_frames as usize))
            .transpose()
            .map_err(err)?;
        Ok(Self {
            inner: model,
            audio: features,
            features: own,
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
            let first = chunk.start as usize + i;
            let out = self
                .inner
                .run_chunk(&crops, first, &self.audio, self.features.as_deref(), phase)
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
                }),
                _ => None,
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
