//! LatentSync (temporary module root).

mod ddim;
mod engine;
mod mask;
mod mel;
mod noise;
mod tensor;
#[cfg(test)]
mod testing;
mod vae;

pub use engine::LatentSyncConfig;

/// What went wrong loading or running the LatentSync export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LatentSyncError {
    /// The folder lacks one of the export's files.
    #[error("latentsync folder {dir}: missing {file}")]
    MissingFile {
        /// The folder.
        dir: std::path::PathBuf,
        /// The missing file's name.
        file: &'static str,
    },
    /// A file's inputs or outputs differ from the export's contract.
    #[error("{file}: tensor `{tensor}`: {problem}")]
    Contract {
        /// The file.
        file: String,
        /// The tensor's name (as the contract names it).
        tensor: String,
        /// What differs.
        problem: String,
    },
    /// The runtime cannot run the file's float16 tensors.
    #[error("{file}: this ONNX Runtime cannot run the file's float16 tensors: {message}")]
    NoF16 {
        /// The file.
        file: String,
        /// The runtime's message.
        message: String,
    },
    /// The runtime failed loading or running a file.
    #[error("{file}: {message}")]
    Runtime {
        /// The file.
        file: String,
        /// What failed.
        message: String,
    },
    /// The audio is unusable.
    #[error("latentsync audio: {0}")]
    Audio(String),
    /// A chunk of faces does not fit the export.
    #[error("latentsync input: {0}")]
    Input(String),
}
