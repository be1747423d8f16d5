//! LatentSync as a facesync model: the ONNX export people run (axinc-ai/ailia-models,
//! `diffusion/latentsync`: `whisper_tiny.onnx`, `vae_encoder.onnx`, `vae_decoder.onnx`,
//! `unet.onnx` + `unet_weights.pb`, opset 17, 256×256 faces) in a folder
//! (`--model latentsync:DIR`).
//!
//! # What runs
//! - Audio (the model's `feature_builder`): any rate and channel count, pushed block by block → 16 kHz
//!   mono → Whisper's log-mel (n_fft 400, hop 160, Slaney mel basis, `log10`, floored at the
//!   clip's maximum − 8, `(x + 4) / 4`) → 30 s segments of 3000 columns → `whisper_tiny`
//!   (`[1, 5, 1500, 384]` per segment, run when the audio ends; the embeddings are kept as
//!   f16, 1920 bytes per 10 ms) → per video frame `i` the 10 embedding frames
//!   `int(i·50/fps) − 4 … + 5` (clamped) → `[50, 384]`.
//! - Per chunk of 16 aligned 256×256 faces (the last chunk padded with its last face, the
//!   padding dropped): the VAE encodes the masked faces and the faces themselves (latents
//!   sampled with the log-variance clipped to [−30, 20], × 0.18215); the UNet input is noisy
//!   latents ‖ mask (32×32, nearest) ‖ masked latents ‖ reference latents; 20 DDIM steps by
//!   default (the scheduler's `InferConfig::steps`; scaled-linear β 0.00085–0.012, 1000 train
//!   steps, `steps_offset` 1, no alpha-to-one, eta 0) with classifier-free guidance 1.5 (the
//!   unconditional half has zeroed audio; at 1.0 the UNet runs one batch item); the decoder;
//!   `decoded·(1 − mask) + original·mask`; restore pastes the faces back with its eroded,
//!   feathered mask.
//! - Noise: one `[4, 1, 32, 32]` draw from the seed, repeated over every frame (the reference
//!   repeats it over the whole video); the VAE's sampling noise from the seed and the chunk's
//!   first frame. The same seed gives the same video.
//! - Progress: the scheduler's "Doing inference" counts frames and its "steps" child counts
//!   the UNet calls; intermediate previews decode the predicted clean latents of the latest
//!   step, only while a decode costs at most [`LatentSyncConfig::preview_budget`] of the
//!   compute time since the last one; cancellation is checked before every UNet call.
//! - Tensors are float16 or float32 as each file declares (the export: float16); every input
//!   and output is checked against the contract when the folder opens.
//!
//! Deviations from the reference, on purpose: the last partial chunk is padded and trimmed
//! (the reference drops it); pixels are rounded, not truncated, back to 8 bits (so the kept
//! pixels come back unchanged); the noise generator is facesync's own (SplitMix64 and
//! Box–Muller), not numpy's.

mod audio;
mod ddim;
mod engine;
mod graphs;
mod mask;
mod mel;
mod noise;
mod tensor;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod vae;

use std::path::{Path, PathBuf};

use frame::Frame;
use infer::{ChunkInput, FeatureBuilder, InferError, LipSyncModel, Mask, PasteRegion, StepStats};

pub use engine::LatentSyncConfig;
pub use graphs::SessionSettings;

use audio::{WhisperAudio, WhisperBuilder};
use engine::{ChunkState, Engine, Graphs};
use graphs::{OrtGraphs, WhisperGraph};

/// The face size the export takes (R of the aligned crops).
pub const FACE_SIZE: u32 = mask::SIZE as u32;

/// What went wrong loading or running the LatentSync export. Messages name the file and the
/// tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LatentSyncError {
    /// The folder does not exist or is not a folder.
    #[error("latentsync folder {dir}: not a folder")]
    Folder {
        /// The folder.
        dir: PathBuf,
    },
    /// The folder lacks one of the export's files.
    #[error("latentsync folder {dir}: missing {file}")]
    MissingFile {
        /// The folder.
        dir: PathBuf,
        /// The missing file's name.
        file: &'static str,
    },
    /// A file's inputs or outputs differ from the export's contract.
    #[error("{file}: tensor `{tensor}`: {problem}")]
    Contract {
        /// The file.
        file: String,
        /// The tensor's name.
        tensor: String,
        /// What differs.
        problem: String,
    },
    /// The runtime cannot run the file's float16 tensors (ailia's export is float16
    /// throughout; facesync converts at the boundary, float32 in and out, and hands the
    /// graph float16 tensors, but a provider without float16 kernels for the graph's operators,
    /// as ONNX Runtime's CPU provider is for some of them, cannot load it).
    #[error(
        "{file}: this ONNX Runtime's provider has no float16 kernel for an operator of the file \
         (the export is float16 throughout): run it on CUDA (`pip install onnxruntime-gpu`, \
         `--backend gpu`) or use a float32 export of the same graphs; the runtime said: {message}"
    )]
    NoF16 {
        /// The file.
        file: String,
        /// The runtime's message (it names the tensor).
        message: String,
    },
    /// The runtime failed running a file.
    #[error("{file}: {message}")]
    Runtime {
        /// The file.
        file: String,
        /// What failed.
        message: String,
    },
    /// Loading a file failed (runtime missing, provider unavailable, not an ONNX file...).
    #[error(transparent)]
    Onnx(#[from] crate::OnnxError),
    /// The audio is unusable.
    #[error("latentsync audio: {0}")]
    Audio(String),
    /// A chunk of faces does not fit the export, or no audio was given.
    #[error("latentsync input: {0}")]
    Input(String),
}

impl From<LatentSyncError> for InferError {
    fn from(e: LatentSyncError) -> Self {
        match e {
            LatentSyncError::Input(m) => InferError::Input(m),
            LatentSyncError::Audio(m) => InferError::Audio(m),
            other => InferError::Model(other.to_string()),
        }
    }
}

/// How to open a LatentSync folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatentSyncOptions {
    /// How the ONNX sessions are made.
    pub session: SessionSettings,
    /// Guidance, seed, preview budget.
    pub config: LatentSyncConfig,
}

/// Counters of a run, for benches and logs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatentSyncStats {
    /// UNet calls (denoising steps) so far.
    pub unet_calls: u64,
    /// Seconds inside the UNet calls.
    pub unet_secs: f64,
    /// Seconds of the per-step work outside the UNet calls: tensor conversion, guidance and
    /// the DDIM update in the model, cancel check and progress in the scheduler between steps
    /// (intermediate previews excluded).
    pub overhead_secs: f64,
}

/// The LatentSync export as a [`LipSyncModel`]: open a folder and run it under `infer`'s
/// scheduler on 256×256 faces, with the audio features of its
/// [`feature_builder`](LipSyncModel::feature_builder) (Whisper's).
#[derive(Debug)]
pub struct LatentSync {
    dir: PathBuf,
    provider: crate::Provider,
    engine: Engine,
    whisper: WhisperGraph,
}

impl LatentSync {
    /// Opens the export in `dir`: every file present, every tensor as the contract says.
    pub fn open(
        dir: impl AsRef<Path>,
        options: &LatentSyncOptions,
    ) -> Result<Self, LatentSyncError> {
        let dir = dir.as_ref();
        let graphs = OrtGraphs::open(dir, &options.session)?;
        let want = if options.config.guidance == 1.0 { 1 } else { 2 };
        if let Some(b) = graphs.unet_batch
            && b != want
        {
            return Err(LatentSyncError::Contract {
                file: "unet.onnx".into(),
                tensor: "sample".into(),
                problem: format!(
                    "the batch axis is fixed at {b}, guidance {} needs {want}",
                    options.config.guidance
                ),
            });
        }
        let whisper = graphs.whisper();
        let provider = graphs.provider();
        let mut model = Self::with_graphs(dir, Box::new(graphs), whisper, options.config.clone());
        model.provider = provider;
        Ok(model)
    }

    /// The model over any runtime (tests wrap the sessions).
    pub(crate) fn with_graphs(
        dir: &Path,
        graphs: Box<dyn Graphs + Send>,
        whisper: WhisperGraph,
        config: LatentSyncConfig,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            provider: crate::Provider::Cpu,
            engine: Engine::new(graphs, config),
            whisper,
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The execution provider that runs the UNet.
    pub fn provider(&self) -> crate::Provider {
        self.provider
    }

    /// Counters of the run so far.
    pub fn stats(&self) -> LatentSyncStats {
        let t = &self.engine.timing;
        LatentSyncStats {
            unet_calls: t.unet_calls,
            unet_secs: t.unet.as_secs_f64(),
            overhead_secs: (t.steps + t.between).saturating_sub(t.unet).as_secs_f64(),
        }
    }
}

/// One chunk's state (latents, UNet inputs); opaque.
#[derive(Debug)]
pub struct LatentSyncChunk(ChunkState);

impl LipSyncModel for LatentSync {
    type State = LatentSyncChunk;

    fn mask(&self, size: u32) -> Mask {
        let data = if size == FACE_SIZE {
            self.engine.regenerated()
        } else {
            // Faces of another size are refused by `begin_chunk`; nothing to regenerate.
            vec![0; size as usize * size as usize]
        };
        Mask::from_bytes(size, data).expect("size² bytes")
    }

    /// LatentSync keeps its own mask semantics: it regenerates under `mask.png` and the whole
    /// face is pasted back under restore's eroded mask, as in the reference.
    fn paste_region(&self) -> PasteRegion {
        PasteRegion::WholeCrop
    }

    fn feature_builder(
        &self,
        channels: u16,
        sample_rate: u32,
    ) -> Result<Option<Box<dyn FeatureBuilder>>, InferError> {
        Ok(Some(Box::new(WhisperBuilder {
            audio: WhisperAudio::new(channels, sample_rate)?,
            whisper: self.whisper.clone(),
        })))
    }

    fn begin_chunk(&mut self, chunk: &ChunkInput<'_>) -> Result<Self::State, InferError> {
        let audio = chunk.features.ok_or_else(|| {
            LatentSyncError::Input(
                "no audio features: latentsync needs the Whisper features of its feature_builder"
                    .into(),
            )
        })?;
        Ok(LatentSyncChunk(self.engine.begin(
            chunk.faces,
            chunk.first_frame,
            audio,
        )?))
    }

    fn step(
        &mut self,
        state: &mut Self::State,
        step: usize,
        n_steps: usize,
    ) -> Result<StepStats, InferError> {
        self.engine.step(&mut state.0, step, n_steps)?;
        Ok(StepStats::default())
    }

    fn preview_ready(&self, state: &Self::State) -> bool {
        self.engine.preview_due(&state.0)
    }

    fn preview(&mut self, state: &Self::State, index: usize) -> Result<Frame, InferError> {
        Ok(self.engine.preview(&state.0, index)?)
    }

    fn finish_chunk(&mut self, state: Self::State) -> Result<Vec<Frame>, InferError> {
        Ok(self.engine.finish(state.0)?)
    }
}
