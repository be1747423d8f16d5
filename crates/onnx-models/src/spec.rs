//! Which lip-sync model a run uses, parsed once from
//! `builtin|wav2lip:PATH|edtalk:PATH|latentsync:DIR`, and how it is built: the built-in mouth
//! model (infer's) or a learned one here, through the process-wide session cache. The models'
//! own crate holds their spec and their building, so that the pipeline only wires them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use gpu::{BackendChoice, Compute};
use infer::{ChunkRunner, InferConfig, Inferencer, MouthModel, MouthParams};
use progress_core::{Level, Phase};

use crate::{LipSyncKind, OnnxLipSync, ProviderRequest, SessionOptions};

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
/// `facesync_pipeline::PipelineError::Model`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// ONNX Runtime (missing, too old, no such provider) or a Wav2Lip/EDTalk file (missing,
    /// not ONNX, not the model's contract).
    #[error(transparent)]
    Onnx(#[from] crate::OnnxError),
    /// A LatentSync export folder (a file missing, a tensor off the contract, ONNX Runtime).
    #[error(transparent)]
    LatentSync(#[from] crate::latentsync::LatentSyncError),
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
    /// [`crate::OnnxError::RuntimeMissing`], which an installer or a UI may answer with
    /// "install onnxruntime".
    pub fn onnx(&self) -> Option<&crate::OnnxError> {
        match self {
            ModelError::Onnx(e) => Some(e),
            ModelError::LatentSync(crate::latentsync::LatentSyncError::Onnx(e)) => Some(e),
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
}

/// What building a model needs from the run besides its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Frames per chunk (LatentSync: at most 16).
    pub chunk: usize,
    /// Refinement steps (LatentSync: DDIM steps).
    pub steps: u32,
    /// The face crop's size (LatentSync: 256).
    pub resolution: u32,
    /// A learned model's lip strength, 0 to 1 (FaceFusion's).
    pub weight: f32,
    /// The compute backend the run allows: the provider follows it ([`provider_request`]).
    pub backend: BackendChoice,
    /// The ONNX Runtime library (default: found as [`crate::runtime`] says).
    pub runtime: Option<PathBuf>,
}

/// `FACESYNC_ORT_PROVIDER=tensorrt` asks for TensorRT when the backend allows a GPU.
pub const PROVIDER_ENV: &str = "FACESYNC_ORT_PROVIDER";

/// The provider a backend asks for ([`PROVIDER_ENV`] may ask for TensorRT).
pub fn provider_request(backend: BackendChoice) -> ProviderRequest {
    let tensorrt = std::env::var(PROVIDER_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("tensorrt"));
    match backend {
        BackendChoice::Cpu => ProviderRequest::Cpu,
        _ if tensorrt => ProviderRequest::TensorRt,
        BackendChoice::Gpu => ProviderRequest::Gpu,
        BackendChoice::Auto => ProviderRequest::Auto,
    }
}

/// The ONNX session options of a one-shot learned model (Wav2Lip, EDTalk) at `path` with
/// `settings`. On the CPU a batch-of-1 call leaves cores idle (its operators are small), so the
/// file gets two sessions whose calls run side by side on the frames of a chunk, each with
/// half the cores as intra-op threads (one each on 2 cores): the same thread count in all as
/// one session with ONNX Runtime's default. A file with a dynamic batch axis runs a chunk in
/// one call on the first session. The sessions are shared by every run of the process.
pub fn session_options(settings: &ModelSettings, path: &Path) -> SessionOptions {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parallel = cores.clamp(1, 2);
    SessionOptions {
        model: path.to_path_buf(),
        provider: provider_request(settings.backend),
        threads: cores / parallel,
        parallel,
        runtime: settings.runtime.clone(),
    }
}

/// Builds the model `spec` names: the built-in one on `compute`, or a learned one loaded once
/// per process (the same file, provider and thread count are shared by every run) and checked
/// against its contract. Posts a message naming the provider under `parent`.
pub fn build(
    spec: &ModelSpec,
    settings: &ModelSettings,
    compute: &Compute,
    parent: &Phase,
) -> Result<Box<dyn ChunkRunner>, ModelError> {
    let infer_config = InferConfig {
        chunk_size: settings.chunk,
        steps: settings.steps as usize,
        preview_interval: Duration::from_millis(500),
    };
    let (kind, path) = match spec {
        ModelSpec::Builtin => {
            let model = MouthModel::new(compute.clone(), MouthParams::default());
            return Ok(Box::new(Inferencer::new(model, infer_config)));
        }
        ModelSpec::Wav2Lip(p) => (LipSyncKind::Wav2Lip, p),
        ModelSpec::EdTalk(p) => (LipSyncKind::EdTalk, p),
        ModelSpec::LatentSync(dir) => return build_latentsync(settings, dir, infer_config, parent),
    };
    let session = crate::session::load(&session_options(settings, path))?;
    let model = OnnxLipSync::new(kind, session, settings.weight)?;
    let runtime = crate::runtime::runtime(settings.runtime.as_deref())?;
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
/// guidance 1.5 and seed 1247 (LatentSync's defaults), `settings.steps` DDIM steps.
fn build_latentsync(
    settings: &ModelSettings,
    dir: &Path,
    infer_config: InferConfig,
    parent: &Phase,
) -> Result<Box<dyn ChunkRunner>, ModelError> {
    let spec = format!("latentsync:{}", dir.display());
    if settings.resolution != crate::latentsync::FACE_SIZE {
        return Err(ModelError::Options {
            spec,
            problem: format!(
                "the export takes {s}×{s} faces, the run's resolution is {r} (use {s})",
                s = crate::latentsync::FACE_SIZE,
                r = settings.resolution
            ),
        });
    }
    if settings.chunk > 16 {
        return Err(ModelError::Options {
            spec,
            problem: format!(
                "the UNet takes chunks of at most 16 frames, the run's chunk is {} (use 16)",
                settings.chunk
            ),
        });
    }
    let options = crate::latentsync::LatentSyncOptions {
        session: crate::latentsync::SessionSettings {
            provider: provider_request(settings.backend),
            threads: 0,
            runtime: settings.runtime.clone(),
        },
        ..Default::default()
    };
    let model = crate::latentsync::LatentSync::open(dir, &options)?;
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
    fn latentsync_refuses_other_sizes_and_long_chunks() {
        let spec: ModelSpec = "latentsync:/nowhere".parse().unwrap();
        let phase = Phase::detached("run", None, "");
        let settings = ModelSettings {
            chunk: 16,
            steps: 20,
            resolution: 256,
            weight: 0.5,
            backend: BackendChoice::Cpu,
            runtime: None,
        };
        for (resolution, chunk, wanted) in [(512, 16, "256×256 faces"), (256, 32, "at most 16")] {
            let settings = ModelSettings {
                resolution,
                chunk,
                ..settings.clone()
            };
            let e = build(&spec, &settings, &Compute::Cpu, &phase)
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains("latentsync:/nowhere") && e.contains(wanted),
                "{e}"
            );
        }
        let e = build(&spec, &settings, &Compute::Cpu, &phase)
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
