//! `gpu::validate_wgsl` rejects broken WGSL. Each crate validates the shaders it embeds (in
//! its own `shaders/` folder) in its own tests.
//!
//! Capabilities: `naga::valid::Capabilities::default()`, the set wgpu grants a device created
//! without optional features (which is how `gpu::acquire` creates devices), so a shader that
//! passes here also compiles on any adapter wgpu accepts.

use facesync_gpu as gpu;
use gpu::validate_wgsl as validate;

#[test]
fn broken_shaders_are_rejected() {
    // A syntax error, a type error and an undefined identifier.
    for bad in [
        "@compute @workgroup_size(64) fn main( { }",
        "@compute @workgroup_size(64) fn main() { let x: u32 = 1.5; }",
        "@compute @workgroup_size(64) fn main() { let x = nope + 1u; }",
    ] {
        assert!(validate(bad).is_err(), "accepted: {bad}");
    }
    assert_eq!(
        validate("@compute @workgroup_size(64) fn main() { let x = 1u + 2u; }"),
        Ok(())
    );
}
