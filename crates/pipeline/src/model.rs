//! The run's lip-sync model: [`onnx_models::spec`] (the spec, its text form and its building)
//! fed from the run's configuration, and the crop each model needs.

use std::path::Path;

use gpu::Compute;
use infer::ChunkRunner;
use onnx_models::SessionOptions;
use onnx_models::spec::ModelSettings;
pub use onnx_models::spec::{ModelError, ModelSpec, PROVIDER_ENV, ParseModelError};
use progress_core::Phase;

use crate::{Alignment, PipelineConfig, PipelineError};

/// What [`onnx_models::spec::build`] needs from `config`.
fn settings(config: &PipelineConfig) -> ModelSettings {
    ModelSettings {
        chunk: config.options.chunk,
        steps: config.options.steps,
        resolution: config.options.resolution,
        weight: config.options.model_weight,
        backend: config.options.backend,
        runtime: config.onnx_runtime.clone(),
    }
}

/// The ONNX session options of a one-shot learned model at `path` for `config`
/// ([`onnx_models::spec::session_options`]).
pub fn session_options(config: &PipelineConfig, path: &Path) -> SessionOptions {
    onnx_models::spec::session_options(&settings(config), path)
}

/// Builds the run's model from `config.options.model` ([`onnx_models::spec::build`]): the
/// built-in one on `compute`, or a learned one loaded once per process and checked against
/// its contract. Posts a message naming the provider under `parent`.
pub fn build_model(
    config: &PipelineConfig,
    compute: &Compute,
    parent: &Phase,
) -> Result<Box<dyn ChunkRunner>, PipelineError> {
    Ok(onnx_models::spec::build(
        &config.options.model,
        &settings(config),
        compute,
        parent,
    )?)
}

/// The crop alignment and size `spec` needs, when it is not the run's own: LatentSync's
/// three-point alignment (at the run's resolution), or FaceFusion's `ffhq_512` crop for
/// Wav2Lip and EDTalk (FaceFusion cuts every face at 512 before its lip syncer resizes).
pub(crate) fn alignment(spec: &ModelSpec) -> Option<(Alignment, Option<u32>)> {
    match spec {
        ModelSpec::LatentSync(_) => Some((Alignment::LatentSync, None)),
        ModelSpec::Wav2Lip(_) | ModelSpec::EdTalk(_) => Some((Alignment::Ffhq512, Some(512))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_learned_model_asks_for_its_crop() {
        let spec: ModelSpec = "latentsync:/nowhere".parse().unwrap();
        assert_eq!(alignment(&spec), Some((Alignment::LatentSync, None)));
        assert_eq!(alignment(&ModelSpec::Builtin), None);
        assert_eq!(
            alignment(&ModelSpec::Wav2Lip("w.onnx".into())),
            Some((Alignment::Ffhq512, Some(512)))
        );
    }
}
