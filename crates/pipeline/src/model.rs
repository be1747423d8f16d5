//! Which lip-sync model a run uses: the built-in mouth model or a learned one behind ONNX
//! Runtime, parsed once from `builtin|wav2lip:PATH|edtalk:PATH|latentsync:DIR` and built through the
//! process-wide model cache.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use gpu::Compute;
use infer::{ChunkRunner, InferConfig, Inferencer, MouthModel, MouthParams};
use onnx_models::{LipSyncKind, OnnxLipSync, ProviderRequest, SessionOptions};
use progress_core::{Level, Phase};

use crate::{Alignment, Backend, PipelineConfig, PipelineError};

/// The lip-sync model of a run. Text form (`FromStr`/`Display`, the same in the CLI, Python,
/// queue jobs and the ComfyUI node): `builtin`, `wav2lip:PATH`, `edtalk:PATH`,
/// `latentsync:DIR`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ModelSpec {
    /// facesync's built-in mouth model (no runtime needed).
    #[default]
    Builtin,
    /// Wav2Lip-96 from an ONNX file (FaceFusion's `wav2lip_96.onnx`, `wav2lip_gan_96.onnx`).
    Wav2Lip(PathBuf),
    /// EDTalk-256 from an ONNX file (FaceFusion's `edtalk_256.onnx`).
    EdTalk(PathBuf),
    /// LatentSync's ONNX export in a folder (`whisper_tiny.onnx`, `vae_encoder.onnx`,
    /// `vae_decoder.onnx`, `unet.onnx` + `unet_weights.pb`): 256×256 faces, chunks of at most
    /// 16 frames, LatentSync's three-point alignment.
    LatentSync(PathBuf),
}

/// Why the lip-sync model could not be made: the typed error under
/// [`PipelineError::Model`](crate::PipelineError::Model).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// ONNX Runtime (missing, too old, no such provider) or a Wav2Lip/EDTalk file (missing,
    /// not ONNX, not the model's contract).
    #[error(transparent)]
    Onnx(#[from] onnx_models::OnnxError),
    /// A LatentSync export folder (a file missing, a tensor off the contract, ONNX Runtime).
    #[error(transparent)]
    LatentSync(#[from] onnx_models::latentsync::LatentSyncError),
    /// The run's options do not fit the model.
    #[error("{spec}: {problem}")]
    Options {
        /// The model as the run names it (`latentsync:DIR`).
        spec: String,
        /// What does not fit, and what to use.
        problem: String,
    },
}

impl ModelError {
    /// The ONNX Runtime error underneath, if any (a LatentSync folder's included): e.g.
    /// [`onnx_models::OnnxError::RuntimeMissing`], which an installer or a UI may answer with
    /// "install onnxruntime".
    pub fn onnx(&self) -> Option<&onnx_models::OnnxError> {
        match self {
            ModelError::Onnx(e) => Some(e),
            ModelError::LatentSync(onnx_models::latentsync::LatentSyncError::Onnx(e)) => Some(e),
            _ => None,
        }
    }
}

/// A model spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{0}`: expected builtin, wav2lip:PATH, edtalk:PATH or latentsync:DIR")]
pub struct ParseModelError(String);

impl FromStr for ModelSpec {
    type Err = ParseModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseModelError(s.to_string());
        if s == "builtin" {
            return Ok(ModelSpec::Builtin);
        }
        let (kind, path) = s.split_once(':').ok_or_else(bad)?;
        if path.is_empty() {
            return Err(bad());
        }
        match kind {
            "wav2lip" => Ok(ModelSpec::Wav2Lip(path.into())),
            "edtalk" => Ok(ModelSpec::EdTalk(path.into())),
            "latentsync" => Ok(ModelSpec::LatentSync(path.into())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Builtin => f.write_str("builtin"),
            ModelSpec::Wav2Lip(p) => write!(f, "wav2lip:{}", p.display()),
            ModelSpec::EdTalk(p) => write!(f, "edtalk:{}", p.display()),
            ModelSpec::LatentSync(p) => write!(f, "latentsync:{}", p.display()),
        }
    }
}

impl ModelSpec {
    /// The model file (the folder, for LatentSync), for the learned models.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ModelSpec::Builtin => None,
            ModelSpec::Wav2Lip(p) | ModelSpec::EdTalk(p) | ModelSpec::LatentSync(p) => Some(p),
        }
    }

    /// The crop alignment and size the model needs, when it is not the run's own: LatentSync's
    /// three-point alignment (at the run's resolution), or FaceFusion's `ffhq_512` crop for
    /// Wav2Lip and EDTalk (FaceFusion cuts every face at 512 before its lip syncer resizes).
    pub(crate) fn alignment(&self) -> Option<(Alignment, Option<u32>)> {
        match self {
            ModelSpec::LatentSync(_) => Some((Alignment::LatentSync, None)),
            ModelSpec::Wav2Lip(_) | ModelSpec::EdTalk(_) => Some((Alignment::Ffhq512, Some(512))),
            _ => None,
        }
    }
}

/// `FACESYNC_ORT_PROVIDER=tensorrt` asks for TensorRT when the backend allows a GPU.
pub const PROVIDER_ENV: &str = "FACESYNC_ORT_PROVIDER";

fn provider_request(backend: Backend) -> ProviderRequest {
    let tensorrt = std::env::var(PROVIDER_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("tensorrt"));
    match backend {
        Backend::Cpu => ProviderRequest::Cpu,
        _ if tensorrt => ProviderRequest::TensorRt,
        Backend::Gpu => ProviderRequest::Gpu,
        Backend::Auto => ProviderRequest::Auto,
    }
}

/// The ONNX session options of a one-shot learned model (Wav2Lip, EDTalk) at `path` for
/// `config`. On the CPU a batch-of-1 call leaves cores idle (its operators are small), so the
/// file gets two sessions whose calls run side by side on the frames of a chunk, each with
/// half the cores as intra-op threads (one each on 2 cores): the same thread count in all as
/// one session with ONNX Runtime's default. A file with a dynamic batch axis runs a chunk in
/// one call on the first session. The sessions are shared by every run of the process.
pub fn session_options(config: &PipelineConfig, path: &Path) -> SessionOptions {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parallel = cores.clamp(1, 2);
    SessionOptions {
        model: path.to_path_buf(),
        provider: provider_request(config.options.backend),
        threads: cores / parallel,
        parallel,
        runtime: config.onnx_runtime.clone(),
    }
}

/// Builds the run's model from `config.options.model`: the built-in one on `compute`, or a learned one
/// loaded once per process (the same file, provider and thread count are shared by every run)
/// and checked against its contract. Posts a message naming the provider under `parent`.
pub fn build_model(
    config: &PipelineConfig,
    compute: &Compute,
    parent: &Phase,
) -> Result<Box<dyn ChunkRunner>, PipelineError> {
    let infer_config = InferConfig {
        chunk_size: config.options.chunk,
        steps: config.options.steps as usize,
        preview_interval: Duration::from_millis(500),
    };
    let (kind, path) = match &config.options.model {
        ModelSpec::Builtin => {
            let model = MouthModel::new(compute.clone(), MouthParams::default());
            return Ok(Box::new(Inferencer::new(model, infer_config)));
        }
        ModelSpec::Wav2Lip(p) => (LipSyncKind::Wav2Lip, p),
        ModelSpec::EdTalk(p) => (LipSyncKind::EdTalk, p),
        ModelSpec::LatentSync(dir) => return build_latentsync(config, dir, infer_config, parent),
    };
    let model_err = |e: onnx_models::OnnxError| PipelineError::Model(ModelError::Onnx(e));
    let session = onnx_models::session::load(&session_options(config, path)).map_err(model_err)?;
    let model = OnnxLipSync::new(kind, session, config.options.model_weight).map_err(model_err)?;
    let runtime =
        onnx_models::runtime::runtime(config.onnx_runtime.as_deref()).map_err(model_err)?;
    let mut text = format!(
        "lip-sync model {} ({}) runs on {} (ONNX Runtime {} from {})",
        path.display(),
        kind.name(),
        model.provider(),
        runtime.version.as_deref().unwrap_or("?"),
        runtime.library.display()
    );
    if let Some(note) = model.fallback_note() {
        text.push_str(&format!("; no GPU provider: {note}"));
    }
    parent.message(Level::Info, text);
    Ok(Box::new(Inferencer::new(model, infer_config)))
}

/// LatentSync's folder: 256×256 faces and chunks of at most 16 (the UNet's frame axis);
/// guidance 1.5 and seed 1247 (LatentSync's defaults), `config.options.steps` DDIM steps.
fn build_latentsync(
    config: &PipelineConfig,
    dir: &Path,
    infer_config: InferConfig,
    parent: &Phase,
) -> Result<Box<dyn ChunkRunner>, PipelineError> {
    let spec = format!("latentsync:{}", dir.display());
    if config.options.resolution != onnx_models::latentsync::FACE_SIZE {
        return Err(ModelError::Options {
            spec,
            problem: format!(
                "the export takes {s}×{s} faces, the run's resolution is {r} (use {s})",
                s = onnx_models::latentsync::FACE_SIZE,
                r = config.options.resolution
            ),
        }
        .into());
    }
    if config.options.chunk > 16 {
        return Err(ModelError::Options {
            spec,
            problem: format!(
                "the UNet takes chunks of at most 16 frames, the run's chunk is {} (use 16)",
                config.options.chunk
            ),
        }
        .into());
    }
    let options = onnx_models::latentsync::LatentSyncOptions {
        session: onnx_models::latentsync::SessionSettings {
            provider: provider_request(config.options.backend),
            threads: 0,
            runtime: config.onnx_runtime.clone(),
        },
        ..Default::default()
    };
    let model = onnx_models::latentsync::LatentSync::open(dir, &options)
        .map_err(|e| PipelineError::Model(ModelError::LatentSync(e)))?;
    parent.message(
        Level::Info,
        format!(
            "lip-sync model {} (latentsync, {} DDIM steps, guidance {}) runs on {}",
            dir.display(),
            infer_config.steps,
            options.config.guidance,
            model.provider()
        ),
    );
    Ok(Box::new(Inferencer::new(model, infer_config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunOptions;
    use proptest::prelude::*;

    #[test]
    fn parses_each_form() {
        let check = |s: &str, want: Option<ModelSpec>| assert_eq!(s.parse().ok(), want, "{s}");
        check("builtin", Some(ModelSpec::Builtin));
        check(
            "wav2lip:/m/wav2lip_96.onnx",
            Some(ModelSpec::Wav2Lip("/m/wav2lip_96.onnx".into())),
        );
        check(
            "edtalk:C:/m/e.onnx",
            Some(ModelSpec::EdTalk("C:/m/e.onnx".into())),
        );
        check(
            "latentsync:/models/latentsync",
            Some(ModelSpec::LatentSync("/models/latentsync".into())),
        );
        check("latentsync:", None);
        check("wav2lip:", None);
        check("wav2lip", None);
        check("Builtin", None);
        check("sadtalker:x.onnx", None);
    }

    #[test]
    fn latentsync_asks_for_its_alignment_and_refuses_other_sizes_and_long_chunks() {
        let spec: ModelSpec = "latentsync:/nowhere".parse().unwrap();
        assert_eq!(spec.alignment(), Some((Alignment::LatentSync, None)));
        assert_eq!(ModelSpec::Builtin.alignment(), None);
        assert_eq!(
            ModelSpec::Wav2Lip("w.onnx".into()).alignment(),
            Some((Alignment::Ffhq512, Some(512)))
        );
        let phase = Phase::detached("run", None, "");
        for (resolution, chunk, wanted) in [(512, 16, "256×256 faces"), (256, 32, "at most 16")] {
            let config = PipelineConfig::from(RunOptions {
                model: spec.clone(),
                resolution,
                chunk,
                ..RunOptions::default()
            });
            let e = build_model(&config, &Compute::Cpu, &phase)
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains("latentsync:/nowhere") && e.contains(wanted),
                "{e}"
            );
        }
        let config = PipelineConfig::from(RunOptions {
            model: spec,
            ..RunOptions::default()
        });
        let e = build_model(&config, &Compute::Cpu, &phase)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nowhere") && e.contains("not a folder"), "{e}");
    }

    proptest! {
        #[test]
        fn display_round_trips(path in "[a-zA-Z0-9_./: -]{1,40}", kind in 0..4u8) {
            let spec = match kind {
                0 => ModelSpec::Builtin,
                1 => ModelSpec::Wav2Lip(path.into()),
                2 => ModelSpec::EdTalk(path.into()),
                _ => ModelSpec::LatentSync(path.into()),
            };
            prop_assert_eq!(spec.to_string().parse::<ModelSpec>().unwrap(), spec);
        }
    }
}
