//! The face networks of facesync, with no ML runtime: MediaPipe's BlazeFace detector and its
//! FaceMesh landmark model (468 points, [`facemesh`]) read from their ONNX files, folded into
//! lists of layers, and run by our own CPU kernels (BlazeFace also by our WGSL network).
//!
//! # Why a crate of its own
//! - **All the workspace's `unsafe` lives here**, in the AVX2 + FMA kernels (the network's
//!   product and depthwise kernels, the resampler), each an `unsafe fn` or a
//!   `#[target_feature]` function reached only after the CPU reports the feature, with a
//!   `# Safety` section, every `unsafe {}` block documented
//!   (`clippy::undocumented_unsafe_blocks` is denied) and every kernel held by a test to its
//!   portable twin (bit for bit) or to an independent reference. The stage crates
//!   (`face-proc` and the others) are `#![forbid(unsafe_code)]`.
//! - The executor is small and specific: an ONNX subset reader (`onnx.rs`: the protobuf fields
//!   the folding reads, decoded by `prost`), a folder (`plan.rs`) that turns the graph into
//!   convolution layers with fused epilogues and rejects anything outside that vocabulary with
//!   a [`PlanError`] naming the node, and two executors of the folded plan: the CPU one
//!   (`cpu_net.rs`, checked against onnxruntime's outputs, `tests/golden/`) and the WGSL one
//!   ([`blazeface::GpuBlazeFace`], `shaders/blazeface_layers.wgsl`, checked against the CPU
//!   one). A general inference engine would spend more time between these small layers than in
//!   them, and its build would be the largest part of the workspace's.
//! - Pre- and post-processing come with the network: [`blazeface::preprocess`] resamples any
//!   (rotated, letterboxed) square of a frame into the network input, and
//!   [`blazeface::decode`] turns the raw output into [`blazeface::Detection`]s (anchors,
//!   sigmoid scores, MediaPipe's weighted non-max suppression); [`facemesh::CpuFaceMesh`]
//!   takes MediaPipe's landmark region of a detection ([`facemesh::region_from_detection`])
//!   and returns the 468 points in source pixels with the presence score. Tracking,
//!   refinement and alignment are the face stage's business (`face-proc`).
//! - FaceMesh runs on the CPU only: its 3×3 head convolutions over 1404 channels and PRelu
//!   have no WGSL kernel yet, and on this project's machines (no GPU; lavapipe runs the
//!   BlazeFace WGSL network ~100× slower than the CPU one) the CPU is the faster place anyway.
//!
//! # Example
//! ```
//! use facesync_face_net::blazeface::{self, CpuBlazeFace, INPUT_LEN, Letterbox};
//! # fn main() -> Result<(), facesync_face_net::PlanError> {
//! let frame = frame::Frame::filled(640, 360, [0, 0, 0]);
//! let mut net = CpuBlazeFace::new()?;
//! let region = Letterbox::whole(frame.width(), frame.height());
//! let mut input = vec![0.0; INPUT_LEN];
//! blazeface::preprocess(&frame, &region, &mut input);
//! let raw = net.run(&input);
//! let faces = blazeface::decode(&raw, &blazeface::anchors(), &region, 0.75, 0.3);
//! assert!(faces.is_empty()); // a black frame has no face
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::missing_safety_doc)]

pub mod blazeface;
mod cpu_net;
pub mod facemesh;
mod gpu;
mod onnx;
mod plan;
#[cfg(test)]
mod testutil;

/// Entry points for the fuzzers in `fuzz/` (feature `fuzzing`): not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes `bytes` as an ONNX model and folds its graph into a layer plan, as the
    /// detector does with its built-in model.
    pub fn onnx_plan(bytes: &[u8]) -> Result<(), String> {
        crate::plan::plan_from_onnx(bytes)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

pub use blazeface::floor_i64;
pub use plan::PlanError;
