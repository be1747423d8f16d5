//! `cargo xtask parity` (and a step of `cargo xtask test`): the learned models' parity with
//! their reference pipelines (issue 27), `tests/parity/run_parity.py`.
//!
//! It runs the release `facesync` binary through the real product path with the recording
//! ONNX Runtime (`tests/ort-recorder`) in front of the test environment's library, and
//! compares every tensor fed to Wav2Lip-96, EDTalk-256 and LatentSync, and every pasted frame,
//! with an independent Python reference written from FaceFusion's and LatentSync's code, on
//! the built-in sample, two real photos moved with roll and scale and speaking espeak-ng
//! speech, and five frame rates. It prints one `model-parity:` line per model and case and
//! fails when a limit is broken. About 5 minutes on 2 cores.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Builds what the harness runs, then runs it; `args` go to `run_parity.py` (e.g.
/// `--cases sample --models-only wav2lip`).
pub(crate) fn run(python: &Path, ort: &Path, args: &[String]) -> Result<()> {
    let target = test_kit::python::target_dir();
    let status = crate::cargo()
        .args(["build", "--release", "--quiet", "-p", "facesync", "-p"])
        .arg("facesync-ort-recorder")
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of facesync and the ONNX Runtime recorder failed ({status})");
    }
    let release = target.join("release");
    let work = target.join("parity");
    let status = Command::new(python)
        .arg(Path::new("tests/parity/run_parity.py"))
        .arg("--facesync")
        .arg(release.join("facesync"))
        .arg("--recorder")
        .arg(release.join("libfacesync_ort_recorder.so"))
        .arg("--ort")
        .arg(ort)
        .arg("--models")
        .arg(work.join("models"))
        .arg("--work")
        .arg(&work)
        .args(args)
        .env("FACESYNC_REQUIRE_ORT", "1")
        .status()
        .context("cannot run the parity harness")?;
    if !status.success() {
        bail!("model parity failed ({status}): see the model-parity lines above");
    }
    Ok(())
}
