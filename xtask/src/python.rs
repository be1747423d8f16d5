//! `cargo xtask test`, Python part: builds the `facesync` wheel and runs the Python tests.
//!
//! The test environment under the target directory (`py-venv`, made once and reused by
//! `test_kit::python::environment`) has maturin, ziglang, pytest, tqdm, numpy… from PyPI (major
//! versions pinned); maturin builds the release wheel (`dist::build_wheel`: manylinux_2_28,
//! linked by `zig cc`) of `crates/python` with the release profile into the same target
//! directory, so every dependency compiled for `cargo xtask` and `cargo test --release` is
//! reused and only pyo3 and the extension crate are compiled (about 1.5 min on 2 cores, nothing
//! when they are up to date; `.cargo/config.toml` sets `PYO3_BUILD_EXTENSION_MODULE` for every
//! build, so none links libpython). The wheel is
//! installed in the environment and pytest runs `crates/python/tests` (the ComfyUI node's tests
//! use stand-ins of the two ComfyUI modules it calls: neither ComfyUI nor torch is installed).
//! Without compiling, this part takes about 35 s; making the environment adds about a minute.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub(crate) const CRATE: &str = "crates/python";

/// The test environment's Python ([`test_kit::python::environment`]: made and filled when
/// needed).
pub(crate) fn environment() -> Result<PathBuf> {
    test_kit::python::environment().map_err(anyhow::Error::msg)
}

/// The ONNX Runtime library of the environment's `onnxruntime` package.
pub(crate) fn onnx_runtime(python: &Path) -> Result<PathBuf> {
    test_kit::python::onnx_runtime(python).map_err(anyhow::Error::msg)
}

/// Builds the release wheel ([`crate::dist::build_wheel`]) into `target/py-wheels`, installs
/// it into the environment of `python` and runs the Python tests; the learned-model tests
/// (`test_models.py`) get ONNX Runtime's library `ort` and must not skip.
pub(crate) fn test(python: &Path, ort: &Path) -> Result<()> {
    let wheels = test_kit::python::target_dir().join("py-wheels");
    let wheel = crate::dist::build_wheel(python, &crate::dist::Metadata::read()?, &wheels)?;
    pip_install_wheel(python, &wheel)?;
    run(
        Command::new(python)
            .env("ORT_DYLIB_PATH", ort)
            .env("FACESYNC_REQUIRE_ORT", "1")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(Path::new(CRATE).join("tests")),
        "the Python tests (pytest)",
    )
}

/// Installs `wheel` (alone, replacing an installed facesync) for `python`.
pub(crate) fn pip_install_wheel(python: &Path, wheel: &Path) -> Result<()> {
    run(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(wheel),
        "pip install the wheel",
    )
}

/// The wheels in `dir`.
pub(crate) fn wheel_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            found.push(path);
        }
    }
    Ok(found)
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
