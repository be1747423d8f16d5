//! `gpu::validate_wgsl` rejects broken WGSL; the shaders still in the workspace's `shaders/`
//! folder (only `blazeface_layers.wgsl`, until it moves into its crate) validate. Each stage
//! crate validates the shaders it embeds in its own tests.
//!
//! Capabilities: `naga::valid::Capabilities::default()`, the set wgpu grants a device created
//! without optional features (which is how `gpu::acquire` creates devices), so a shader that
//! passes here also compiles on any adapter wgpu accepts.

use std::path::{Path, PathBuf};

use gpu::validate_wgsl as validate;

fn shader_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

#[test]
fn every_shader_in_the_shaders_folder_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wgsl files in {:?}", shader_dir());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let source = std::fs::read_to_string(path).expect("readable shader");
            validate(&source)
                .err()
                .map(|e| format!("{}:\n{e}", path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "invalid shaders:\n{}",
        failures.join("\n")
    );
}

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
