//! The test environment's Python: made in one place ([`environment`], which `cargo xtask test`
//! and the benchmarks call), found by one rule ([`interpreter`], which the tests use).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the test environment gets from PyPI.
pub const REQUIREMENTS: &[&str] = &[
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
    // The wheel and the CLI link against glibc 2.28's symbols through `zig cc` (see xtask's
    // dist.rs: portable artifacts with no container), and auditwheel checks the wheel's tag.
    "ziglang>=0.15,<0.18",
    "auditwheel>=6,<7",
];

/// The test environment's Python, made and filled with [`REQUIREMENTS`] when needed.
// Test support, not a library: it says why the first run waits (a venv, pip installs).
#[allow(clippy::print_stderr)]
pub fn environment() -> Result<PathBuf, String> {
    let venv = target_dir().join("py-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!("creating a Python environment in {}", venv.display());
        let system_python = if on_path("python3") {
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
pub fn onnx_runtime(python: &Path) -> Result<PathBuf, String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .output()
        .map_err(|e| {
            format!(
                "cannot run the environment's python {}: {e}",
                python.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "onnxruntime is not importable in the test environment: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let capi = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
        .map_err(|e| format!("cannot read {}: {e}", capi.display()))?
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
        .ok_or_else(|| format!("no libonnxruntime in {}", capi.display()))
}

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    Ok(())
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/` at the root).
pub fn target_dir() -> PathBuf {
    // crates/test-kit → the workspace root, without `..` in the paths it hands out.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new("."));
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The interpreter tests run Python helpers with: `FACESYNC_TEST_PYTHON`, else the test
/// environment `target/py-venv` (`cargo xtask test` makes it, with numpy, onnx, onnxruntime,
/// librosa…), else `$VIRTUAL_ENV/bin/python`, else `python3` on `PATH`.
pub fn interpreter() -> PathBuf {
    if let Some(python) = std::env::var_os("FACESYNC_TEST_PYTHON") {
        return python.into();
    }
    let venv = target_dir().join("py-venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    if let Some(env) = std::env::var_os("VIRTUAL_ENV") {
        let python = Path::new(&env).join("bin/python");
        if python.is_file() {
            return python;
        }
    }
    "python3".into()
}
