//! The ONNX subset reader: protobuf decoding and folding the graph into a layer plan
//! (`crates/face-proc/src/onnx.rs` and `plan.rs` on this branch).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = face_proc::fuzzing::onnx_plan(data);
});
