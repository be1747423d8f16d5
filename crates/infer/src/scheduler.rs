//! The chunk/step scheduler: progress, previews and cancellation around a [`LipSyncModel`].

use std::time::{Duration, Instant};

use frame::Frame;
use progress_core::{ImageFormat, Phase, PreviewImage};

use crate::{
    AudioFeatures, ChunkExtras, ChunkInput, FeatureBuilder, InferError, LipSyncModel, Mask,
    Schedule,
};

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
            let first = k * self.config.chunk_size.max(1);
            match self.run_chunk(chunk, first, audio, ChunkExtras::default(), &phase) {
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
    /// faces.len()`), with what else the chunk brings in `extras` (the model's own audio
    /// features, the faces' mouth placements; `ChunkExtras::default()` for neither). `phase`
    /// advances by the chunk's frames: a refining model gets a child phase "steps" of `phase`
    /// counting this chunk's steps, and `phase` advances when the chunk is done; a one-shot
    /// model ([`Schedule::OneShot`]) none: `phase` advances as its calls finish faces.
    /// `phase.check()` runs before every step or call: a cancel stops the chunk within one
    /// with [`InferError::Cancelled`].
    pub fn run_chunk(
        &mut self,
        faces: &[Frame],
        first_frame: usize,
        audio: &AudioFeatures,
        extras: ChunkExtras<'_>,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        let ChunkExtras {
            features,
            mouths,
            silence,
        } = extras;
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
        // Taken out while the model borrows it, put back after.
        let mask = self.mask.take().expect("mask set above");
        let input = ChunkInput {
            first_frame,
            faces,
            audio,
            mask: &mask,
            features,
            mouths,
            silence,
        };
        let result = match self.model.schedule(self.config.steps, faces.len()) {
            Schedule::Refine(n_steps) => self.refine(&input, n_steps, phase),
            Schedule::OneShot(calls) => self.one_shot(&input, calls, phase),
        };
        self.mask = Some(mask);
        result
    }

    fn refine(
        &mut self,
        input: &ChunkInput<'_>,
        n_steps: usize,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        let first_frame = input.first_frame;
        let steps = phase.child("steps", Some(n_steps as u64), "steps");
        let mut state = self.model.begin_chunk(input)?;
        for k in 0..n_steps {
            steps.check()?;
            let stats = self.model.step(&mut state, k, n_steps)?;
            steps.inc(1);
            if let Some(r) = stats.residual {
                steps.set_message(format!("residual {r:.4}"));
            }
            if self.preview_due() && k + 1 < n_steps && self.model.preview_ready(&state) {
                let img = self.model.preview(&state, 0)?;
                self.send_preview(phase, first_frame, &img);
            }
        }
        let out = self.model.finish_chunk(state)?;
        steps.finish();
        self.send_preview(phase, first_frame, &out[0]);
        phase.inc(input.faces.len() as u64);
        Ok(out)
    }

    fn one_shot(
        &mut self,
        input: &ChunkInput<'_>,
        calls: usize,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        let first_frame = input.first_frame;
        let n = input.faces.len();
        let mut state = self.model.begin_chunk(input)?;
        let mut done = 0usize;
        for k in 0..calls {
            phase.check()?;
            let stats = self.model.step(&mut state, k, calls)?;
            let finished = stats.frames.min(n - done);
            phase.inc(finished as u64);
            done += finished;
            if self.preview_due() && finished > 0 && done < n {
                let img = self.model.preview(&state, done - 1)?;
                self.send_preview(phase, first_frame + done - 1, &img);
            }
        }
        let out = self.model.finish_chunk(state)?;
        if out.len() != n {
            return Err(InferError::Input(format!(
                "the model returned {} faces for a chunk of {n}",
                out.len()
            )));
        }
        self.send_preview(phase, first_frame, &out[0]);
        phase.inc((n - done) as u64);
        Ok(out)
    }

    /// Whether an intermediate preview may go out: none yet, or
    /// [`InferConfig::preview_interval`] since the last one.
    fn preview_due(&self) -> bool {
        self.last_preview
            .is_none_or(|t| t.elapsed() >= self.config.preview_interval)
    }

    /// Sends `face` as the preview of video frame `frame` and restarts the preview interval.
    fn send_preview(&mut self, phase: &Phase, frame: usize, face: &Frame) {
        phase.preview(frame as u64, preview_image(face));
        self.last_preview = Some(Instant::now());
    }
}

/// An [`Inferencer`] behind a dyn-compatible interface: the pipeline takes the lip-sync model
/// as a value (`Box<dyn ChunkRunner>`), whatever [`LipSyncModel`] it wraps.
pub trait ChunkRunner: Send {
    /// The wrapped model's [`LipSyncModel::feature_builder`].
    fn feature_builder(
        &self,
        channels: u16,
        sample_rate: u32,
    ) -> Result<Option<Box<dyn FeatureBuilder>>, InferError>;

    /// The wrapped model's [`LipSyncModel::paste_region`].
    fn paste_region(&self) -> crate::PasteRegion;

    /// [`Inferencer::run_chunk`].
    fn run_chunk(
        &mut self,
        faces: &[Frame],
        first_frame: usize,
        audio: &AudioFeatures,
        extras: ChunkExtras<'_>,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError>;
}

impl<M: LipSyncModel + Send> ChunkRunner for Inferencer<M> {
    fn feature_builder(
        &self,
        channels: u16,
        sample_rate: u32,
    ) -> Result<Option<Box<dyn FeatureBuilder>>, InferError> {
        self.model.feature_builder(channels, sample_rate)
    }

    fn paste_region(&self) -> crate::PasteRegion {
        self.model.paste_region()
    }

    fn run_chunk(
        &mut self,
        faces: &[Frame],
        first_frame: usize,
        audio: &AudioFeatures,
        extras: ChunkExtras<'_>,
        phase: &Phase,
    ) -> Result<Vec<Frame>, InferError> {
        Inferencer::run_chunk(self, faces, first_frame, audio, extras, phase)
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
