//! Learned lip-sync models for facesync through ONNX Runtime: the files people already have
//! (FaceFusion's `wav2lip_96.onnx`, `wav2lip_gan_96.onnx`, `edtalk_256.onnx`).
//!
//! # Why
//! facesync's built-in mouth model is a heuristic; users have learned models on disk. This is
//! the only crate of the workspace that depends on ONNX Runtime (the `ort` crate), so that the
//! progress system, the inference scheduler and the stages stay free of it, and a machine
//! without the library still builds facesync and runs the built-in model.
//!
//! # Design
//! - [`runtime`]: nothing is downloaded or linked at build time (`ort`'s `load-dynamic`). The
//!   library is found at run time: an explicit path, else `ORT_DYLIB_PATH`, else the `capi`
//!   folder of an installed `onnxruntime`/`onnxruntime-gpu` Python package, else an error that
//!   says how to get one. A library older than the bindings need is an error, not a crash.
//! - [`session`]: a model loads once per process (cache keyed by file, provider, threads
//!   and parallel calls)
//!   and serves every run. Providers: CUDA (TensorRT on request) when allowed and present,
//!   registered so that a failure is loud; the CPU otherwise. Input and output names, ranks and
//!   sizes are checked against the model's contract when it loads.
//! - [`spec`]: which model a run uses (`builtin|wav2lip:PATH|edtalk:PATH|latentsync:DIR`,
//!   parsed once) and [`spec::build`], which makes it: the built-in mouth model (infer's) or
//!   one of the learned ones here.
//! - [`latentsync`]: LatentSync's ONNX export (a folder: Whisper-tiny, VAE encoder and decoder,
//!   3-D UNet) as a step-wise model: 20 DDIM steps with classifier-free guidance, one UNet call
//!   per step of the scheduler's "steps" phase, its own Whisper audio features.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod latentsync;
mod lipsync;
pub mod runtime;
pub mod session;
pub mod spec;

use std::path::PathBuf;

pub use lipsync::{LipSyncKind, OnnxChunkState, OnnxLipSync};
pub use runtime::{Provider, ProviderRequest, RuntimeInfo};
pub use session::{OnnxSession, SessionOptions, TensorInfo, TensorSpec};

/// What went wrong loading or running an ONNX model. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// No ONNX Runtime library was found.
    #[error(
        "ONNX Runtime library not found ({looked}): install it with `pip install onnxruntime` \
         (or `onnxruntime-gpu` for CUDA), or set ORT_DYLIB_PATH to the libonnxruntime file"
    )]
    RuntimeMissing {
        /// Where discovery looked.
        looked: String,
    },
    /// The library could not be loaded.
    #[error("ONNX Runtime library {library}: {message}")]
    RuntimeLoad {
        /// The library file.
        library: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The library is older than the bindings need.
    #[error(
        "ONNX Runtime library {library} is version {found}, too old: facesync needs {needed} or \
         newer (`pip install -U onnxruntime`)"
    )]
    RuntimeTooOld {
        /// The library file.
        library: PathBuf,
        /// Its version.
        found: String,
        /// The oldest version that works.
        needed: String,
    },
    /// The execution provider asked for cannot run.
    #[error("{provider} execution provider unavailable: {reason}")]
    ProviderUnavailable {
        /// The provider.
        provider: Provider,
        /// Why.
        reason: String,
    },
    /// The model file is missing or unreadable.
    #[error("model file {path}: {message}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is not a model ONNX Runtime can load.
    #[error("model file {path} is not a loadable ONNX model: {message}")]
    NotOnnx {
        /// The file.
        path: PathBuf,
        /// ONNX Runtime's reason.
        message: String,
    },
    /// The model's inputs or outputs do not match the contract.
    #[error("model file {path}: tensor `{tensor}`: {message}")]
    Contract {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What does not match.
        message: String,
    },
    /// A model call failed.
    #[error("model {path}: {message}")]
    Run {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
