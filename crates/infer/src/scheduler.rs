//! The chunk/step scheduler: progress, previews and cancellation around a [`LipSyncModel`].

use std::time::{Duration, Instant};

use frame::Frame;
use progress_core::{ImageFormat, Phase, PreviewImage};

use crate::{AudioFeatures, ChunkInput, InferError, LipSyncModel, Mask};

/// How the scheduler splits and refines the work.
#[derive(Debug, Clone, PartialEq)]
pub struct InferConfig {
    /// Faces per chunk (default 16, as the reference).
    pub chunk_size: usize,
    /// Refinement steps per chunk (default 20, as the reference).
    pub steps: usize,
    /// Minimum time between intermediate previews (default 0.5 s); every chunk still sends one
    /// preview of its first finished face.
    pub preview_interval: Duration,
}

impl Default for InferConfig {
    fn default() -> Self {
        Self {
            chunk_size: 16,
            steps: 20,
            preview_interval: Duration::from_millis(500),
        }
    }
}

/// Runs a [`LipSyncModel`] chunk by chunk with progress, previews and cancellation.
#[derive(Debug)]
pub struct Inferencer<M> {
    model: M,
    config: InferConfig,
    mask: Option<Mask>,
    last_preview: Option<Instant>,
}

impl<M: LipSyncModel> Inferencer<M> {
    /// A scheduler around `model`.
    pub fn new(model: M, config: InferConfig) -> Self {
        Self {
            model,
            config,
            mask: None,
            last_preview: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InferConfig {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Processes all `faces` (video frames `0..faces.len()`) in chunks of
    /// [`InferConfig::chunk_size`], under a child phase "Doing inference" of `parent` that
    /// counts frames.
    pub fn run(
        &mut self,
        faces: &[Frame],
        audio: &AudioFeatures,
        parent: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        let phase = parent.child("Doing inference", Some(faces.len() as u64), "frames");
        let mut out = Vec::with_capacity(faces.len());
        for (k, chunk) in faces.chunks(self.config.chunk_size.max(1)).enumerate() {
            match self.run_chunk(chunk, k * self.config.chunk_size.max(1), audio, &phase) {
                Ok(frames) => out.extend(frames),
                Err(e) => {
                    phase.fail(&e);
                    return Err(e);
                }
            }
        }
        phase.finish();
        Ok(out)
    }

    /// Processes one chunk of aligned faces (video frames `first_frame..first_frame +
    /// faces.len()`): a child phase "steps" of `phase` counts this chunk's steps, `phase`
    /// advances by `faces.len()` frames when the chunk is done. `phase.check()` runs before
    /// every step: a cancel stops the chunk within one step with [`InferError::Cancelled`].
    pub fn run_chunk(
        &mut self,
        faces: &[Frame],
        first_frame: usize,
        audio: &AudioFeatures,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        self.run_chunk_placed(faces, &[], first_frame, audio, phase)
    }

    /// [`Self::run_chunk`] with each face's mouth placement (one per face, or empty), for
    /// models that put their edit where the lips are (see [`ChunkInput::mouths`]).
    pub fn run_chunk_placed(
        &mut self,
        faces: &[Frame],
        mouths: &[Option<crate::MouthPlacement>],
        first_frame: usize,
        audio: &AudioFeatures,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        if !mouths.is_empty() && mouths.len() != faces.len() {
            return Err(InferError::Input(format!(
                "{} mouth placements for {} faces from frame {first_frame}",
                mouths.len(),
                faces.len()
            )));
        }
        let Some(first) = faces.first() else {
            return Ok(Vec::new());
        };
        let size = first.width();
        if let Some((i, f)) = faces
            .iter()
            .enumerate()
            .find(|(_, f)| f.width() != size || f.height() != size)
        {
            return Err(InferError::Input(format!(
                "face {} is {}x{}, expected {size}x{size} like the chunk's first face",
                first_frame + i,
                f.width(),
                f.height()
            )));
        }
        phase.check()?;
        if self.mask.as_ref().is_none_or(|m| m.size() != size) {
            self.mask = Some(self.model.mask(size));
        }
        let mask = self.mask.as_ref().expect("mask set above");
        let input = ChunkInput {
            first_frame,
            faces,
            audio,
            mask,
            mouths,
        };
        let n_steps = self.config.steps;
        let steps = phase.child("steps", Some(n_steps as u64), "steps");
        let mut state = self.model.begin_chunk(&input)?;
        for k in 0..n_steps {
            if let Err(e) = steps.check() {
                return Err(e.into());
            }
            let stats = self.model.step(&mut state, k, n_steps)?;
            steps.inc(1);
            if let Some(r) = stats.residual {
                steps.set_message(format!("residual {r:.4}"));
            }
            let due = self
                .last_preview
                .is_none_or(|t| t.elapsed() >= self.config.preview_interval);
            if due && k + 1 < n_steps {
                let img = self.model.preview(&state, 0)?;
                phase.preview(first_frame as u64, preview_image(&img));
                self.last_preview = Some(Instant::now());
            }
        }
        let out = self.model.finish_chunk(state)?;
        steps.finish();
        phase.preview(first_frame as u64, preview_image(&out[0]));
        self.last_preview = Some(Instant::now());
        phase.inc(faces.len() as u64);
        Ok(out)
    }
}

fn preview_image(f: &Frame) -> PreviewImage {
    PreviewImage {
        width: f.width(),
        height: f.height(),
        format: ImageFormat::Rgb8,
        data: f.data().to_vec(),
    }
}
