//! Every `shaders/*.wgsl` of this crate must parse and validate with naga, with no adapter
//! involved (the capabilities wgpu grants a device created without optional features, which
//! is how `gpu::acquire` creates devices).

use std::path::{Path, PathBuf};

fn validate(source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok(())
}

#[test]
fn every_shader_of_the_crate_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("shaders/ folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wgsl files in {}", dir.display());
    for path in files {
        let source = std::fs::read_to_string(&path).expect("readable shader");
        if let Err(e) = validate(&source) {
            panic!("{}:\n{e}", path.display());
        }
    }
}
