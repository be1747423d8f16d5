//! The ONNX subset reader: protobuf decoding and folding the graph into a layer plan
//! (`crates/face-net/src/onnx.rs` and `plan.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = facesync_face_net::fuzzing::onnx_plan(data);
});
