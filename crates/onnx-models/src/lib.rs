//! Temporary skeleton: replaced by the `onnx` branch's crate on merge.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(dead_code)]

pub(crate) mod latentsync;
