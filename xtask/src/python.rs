//! `cargo xtask test`, Python part: builds the `facesync` wheel and runs the Python tests.
//!
//! A virtual environment under the target directory (`py-venv`, made once and reused) gets
//! maturin, pytest, tqdm and numpy from PyPI (major versions pinned); maturin builds the wheel
//! of `crates/python` with the release profile into the same target directory, so every
//! dependency compiled for `cargo xtask` and `cargo test --release` is reused and only pyo3 and the extension crate are compiled (about
//! 1.5 min on 2 cores, nothing when they are up to date; `.cargo/config.toml` sets
//! `PYO3_BUILD_EXTENSION_MODULE` for every build, so none links libpython). The wheel is
//! installed in the environment and pytest runs `crates/python/tests` (the ComfyUI node's tests
//! use stand-ins of the two ComfyUI modules it calls: neither ComfyUI nor torch is installed).
//! Without compiling, this part takes about 35 s; making the environment adds about a minute.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What the environment gets from PyPI.
const REQUIREMENTS: &[&str] = &[
    "maturin>=1.9,<2",
    "pytest>=8,<10",
    "tqdm>=4,<5",
    "numpy>=1.26,<3",
    // The learned-model tests (crates/onnx-models): ONNX Runtime's library for the Rust tests
    // (ORT_DYLIB_PATH), and `onnx` to generate the test models.
    "onnxruntime>=1.17,<2",
    "onnx>=1.16,<2",
    // LatentSync's Whisper log-mel is checked against librosa, which its ONNX port uses.
    "librosa>=0.10,<1",
    // The model parity harness (tests/parity): FaceFusion's and LatentSync's own steps, with
    // the OpenCV that FaceFusion 3.8.1 pins (its requirements.txt): OpenCV's arithmetic changes
    // between releases (4.14's bilinear warp rounds differently from 5.0's).
    "scipy>=1.10,<2",
    "opencv-python-headless==5.0.0.93",
    // The ComfyUI node's previews are PIL images, as in ComfyUI.
    "pillow>=10,<13",
];
pub(crate) const CRATE: &str = "crates/python";

/// The test environment's Python, made and filled with [`REQUIREMENTS`] when needed.
pub(crate) fn environment() -> Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let target = std::path::absolute(&target).context("cannot resolve the target directory")?;
    let venv = target.join("py-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!("creating a Python environment in {}", venv.display());
        let system_python = if crate::test::on_path("python3") {
            "python3"
        } else {
            "python"
        };
        run(
            Command::new(system_python).args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (on Debian: `apt-get install python3-venv`)",
        )?;
    }
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
        "pip install",
    )?;
    Ok(python)
}

/// The ONNX Runtime library of the environment's `onnxruntime` package.
pub(crate) fn onnx_runtime(python: &Path) -> Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .output()
        .context("cannot run the environment's python")?;
    if !out.status.success() {
        bail!(
            "onnxruntime is not importable in the test environment: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let capi = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
        .with_context(|| format!("cannot read {}", capi.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so") || n.starts_with("libonnxruntime.")
            })
        })
        .collect();
    libs.sort();
    libs.pop()
        .with_context(|| format!("no libonnxruntime in {}", capi.display()))
}

/// Builds the wheel into the environment of `python` and runs the Python tests; the
/// learned-model tests (`test_models.py`) get ONNX Runtime's library `ort` and must not skip.
pub(crate) fn test(python: &Path, ort: &Path) -> Result<()> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let target = std::path::absolute(&target).context("cannot resolve the target directory")?;
    let venv = python
        .parent()
        .and_then(Path::parent)
        .context("the environment's python is not in <venv>/bin")?;
    install_wheel(venv, &target.join("py-wheels"))?;
    run(
        Command::new(python)
            .env("ORT_DYLIB_PATH", ort)
            .env("FACESYNC_REQUIRE_ORT", "1")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(Path::new(CRATE).join("tests")),
        "the Python tests (pytest)",
    )
}

/// Builds the `facesync` wheel (release profile) into `wheels` and installs it in `venv`.
pub(crate) fn install_wheel(venv: &Path, wheels: &Path) -> Result<()> {
    let python = venv.join("bin").join("python");
    std::fs::create_dir_all(wheels).context("cannot create the wheel directory")?;
    for old in wheel_files(wheels)? {
        std::fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    run(
        Command::new(venv.join("bin").join("maturin"))
            .args([
                "build",
                "--profile",
                "release",
                "--compatibility",
                "linux",
                "--quiet",
            ])
            .arg("--manifest-path")
            .arg(Path::new(CRATE).join("Cargo.toml"))
            .arg("--interpreter")
            .arg(&python)
            .arg("--out")
            .arg(wheels),
        "maturin build",
    )?;
    let wheel = match wheel_files(wheels)?.as_slice() {
        [one] => one.clone(),
        other => bail!(
            "expected one wheel in {}, found {}",
            wheels.display(),
            other.len()
        ),
    };
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
            .arg(&wheel),
        "pip install the wheel",
    )?;
    Ok(())
}

fn wheel_files(dir: &Path) -> Result<Vec<PathBuf>> {
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
