//! The pipeline options shared by `run` and `submit`, and the value parsers.

use std::time::Duration;

use clap::Args;
use pipeline::{Backend, LengthPolicy, ModelSpec, NoFacePolicy, PipelineConfig};

/// The pipeline's settings on the command line; unset ones keep [`PipelineConfig::default`].
#[derive(Debug, Clone, Args)]
pub(crate) struct JobArgs {
    /// Face crop size: 256 or 512; Wav2Lip and EDTalk always get FaceFusion's 512 crop
    /// [default: 256]
    #[arg(long, value_name = "256|512")]
    pub(crate) resolution: Option<u32>,
    /// Inference refinement steps [default: 20]
    #[arg(long, value_name = "N")]
    pub(crate) steps: Option<u32>,
    /// Frames per chunk, the unit of streaming and cancellation [default: 16]
    #[arg(long, value_name = "N")]
    pub(crate) chunk: Option<usize>,
    /// Frames without a face: pass (copied untouched), error (stop the run), interpolate (the
    /// transform of the faces either side, for gaps up to 12 frames) [default: pass]
    #[arg(long, value_name = "pass|error|interpolate")]
    pub(crate) no_face: Option<NoFacePolicy>,
    /// Compute device: auto (a hardware GPU when there is one, else the CPU), gpu (any
    /// adapter, software included), cpu [default: auto; without --backend gpu|cpu,
    /// FACESYNC_BACKEND decides]
    #[arg(long, value_name = "auto|gpu|cpu")]
    pub(crate) backend: Option<Backend>,
    /// Video/audio length: loop (as long as the audio; a shorter video plays forwards then
    /// backwards), trim (the shorter of the two) [default: loop]
    #[arg(long, value_name = "loop|trim")]
    pub(crate) length: Option<LengthPolicy>,
    /// The lip-sync model: builtin, wav2lip:PATH or edtalk:PATH (FaceFusion's
    /// wav2lip_96.onnx / wav2lip_gan_96.onnx / edtalk_256.onnx), or latentsync:DIR (a folder
    /// with LatentSync's ONNX export: whisper_tiny, vae_encoder, vae_decoder, unet + weights;
    /// --resolution 256, --chunk 16 or less, --steps DDIM steps). Learned models run on ONNX
    /// Runtime, on CUDA when the backend allows a GPU and the library has it, else on the CPU
    /// [default: builtin]
    #[arg(long, value_name = "builtin|wav2lip:PATH|edtalk:PATH|latentsync:DIR")]
    pub(crate) model: Option<ModelSpec>,
    /// Lip strength of a learned model, 0 to 1, as FaceFusion's --lip-syncer-weight: Wav2Lip's
    /// mel scaled by 2×W, EDTalk's weight input [default: 0.5]
    #[arg(long, value_name = "W")]
    pub(crate) model_weight: Option<f32>,
}

impl JobArgs {
    /// The configuration these options give, checked ([`PipelineConfig::validate`]).
    pub(crate) fn config(&self) -> anyhow::Result<PipelineConfig> {
        let defaults = PipelineConfig::default();
        let config = PipelineConfig {
            resolution: self.resolution.unwrap_or(defaults.resolution),
            steps: self.steps.unwrap_or(defaults.steps),
            chunk: self.chunk.unwrap_or(defaults.chunk),
            no_face: self.no_face.unwrap_or(defaults.no_face),
            backend: self.backend.unwrap_or(defaults.backend),
            length: self.length.unwrap_or(defaults.length),
            model: self.model.clone().unwrap_or(defaults.model.clone()),
            model_weight: self.model_weight.unwrap_or(defaults.model_weight),
            ..defaults
        };
        config.validate()?;
        Ok(config)
    }
}

// The option types parse with their own `FromStr` (clap's default parser for them), so the
// command line, Python and queue jobs read the same names.

/// Seconds, fractions allowed: `30`, `0.5`.
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s}: expected a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s}: expected a non-negative number"))
}
