//! `cargo xtask test comfyui`: the facesync node in a real ComfyUI server (not part of
//! `cargo xtask test` or CI: it installs torch and ComfyUI's other requirements from PyPI,
//! several GB).
//!
//! Sets up the vendored ComfyUI 0.12.1 (`FACESYNC_COMFYUI_TARBALL`, by default
//! `../shared/vendor/comfyui-0.12.1.tar.gz` next to the checkout) under
//! `<target>/comfyui/ComfyUI`, a virtual environment with its requirements
//! (`FACESYNC_COMFYUI_VENV` to reuse one that has them), the release artifacts of
//! `cargo xtask dist` installed as a user installs them (the manylinux wheel by pip, the node's
//! zip unpacked into `custom_nodes/comfyui-facesync`), and `onnxruntime` in that environment;
//! then `crates/python/bench/comfyui_bench.py` starts fresh servers on a loopback port,
//! drives LoadVideo -> GetVideoComponents -> facesync -> CreateVideo -> SaveVideo over HTTP and
//! websocket on a 300-frame 720p clip five times (`--runs N` for another count), runs a
//! Wav2Lip ONNX file from `models/facesync/` in a server started without an activated
//! environment, and prints
//! `comfyui-bench: first_progress_s=… last_gap_s=… max_stall_ms=… interrupt_max_s=…
//! interrupt_node_max_s=… peak_rss_gb=… model_run=…`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::python::{CRATE, run};

const TARBALL: &str = "../shared/vendor/comfyui-0.12.1.tar.gz";

pub(crate) fn run_bench(args: &[String]) -> Result<()> {
    let runs = match args {
        [] => None,
        [flag, n] if flag == "--runs" => Some(
            n.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("--runs {n}: expected a positive whole number"))?,
        ),
        _ => bail!("`cargo xtask test comfyui` takes only `--runs N`, got {args:?}"),
    };
    let target = test_kit::python::target_dir();
    let root = target.join("comfyui");
    let comfyui = root.join("ComfyUI");
    if !comfyui.join("main.py").exists() {
        let tarball = std::env::var_os("FACESYNC_COMFYUI_TARBALL")
            .map_or_else(|| PathBuf::from(TARBALL), PathBuf::from);
        if !tarball.exists() {
            bail!(
                "{}: no ComfyUI tarball there (set FACESYNC_COMFYUI_TARBALL to comfyui-0.12.1.tar.gz)",
                tarball.display()
            );
        }
        std::fs::create_dir_all(&root).context("cannot create the ComfyUI directory")?;
        eprintln!("unpacking {} into {}", tarball.display(), root.display());
        run(
            Command::new("tar")
                .arg("xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&root),
            "tar (unpacking ComfyUI)",
        )?;
    }
    let venv = match std::env::var_os("FACESYNC_COMFYUI_VENV") {
        Some(v) => PathBuf::from(v),
        None => root.join("venv"),
    };
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!("creating a Python environment in {}", venv.display());
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
    }
    eprintln!("installing ComfyUI's requirements (torch included: several GB the first time)");
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(comfyui.join("requirements.txt"))
            // The model run: ONNX Runtime as a user installs it into ComfyUI's environment,
            // and `onnx` to generate the test model.
            .args([
                "websocket-client>=1.6,<2",
                "onnxruntime>=1.17,<2",
                "onnx>=1.16,<2",
            ]),
        "pip install (ComfyUI's requirements)",
    )?;
    // The release artifacts, built with the test environment (maturin, zig), installed here.
    let artifacts = crate::dist::build(&crate::python::environment()?, &root.join("dist"))?;
    crate::python::pip_install_wheel(&python, &artifacts.wheel)?;
    install_node(&python, &artifacts.node_zip, &comfyui.join("custom_nodes"))?;
    let mut bench = Command::new(&python);
    bench
        .arg(Path::new(CRATE).join("bench").join("comfyui_bench.py"))
        .arg("--comfyui")
        .arg(&comfyui)
        .arg("--work")
        .arg(root.join("work"));
    if let Some(n) = runs {
        bench.arg("--runs").arg(n.to_string());
    }
    run(&mut bench, "the ComfyUI benchmark")
}

/// The node's zip unpacked into `custom_nodes/comfyui-facesync` (replacing an older copy, and
/// the link to `crates/python/comfyui` that earlier versions of this task made).
fn install_node(python: &Path, zip: &Path, custom_nodes: &Path) -> Result<()> {
    let old_link = custom_nodes.join("facesync");
    if std::fs::symlink_metadata(&old_link).is_ok() {
        std::fs::remove_file(&old_link)
            .with_context(|| format!("cannot remove {}", old_link.display()))?;
    }
    let dest = custom_nodes.join(crate::dist::NODE);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)
            .with_context(|| format!("cannot replace {}", dest.display()))?;
    }
    run(
        Command::new(python)
            .args(["-m", "zipfile", "-e"])
            .arg(zip)
            .arg(&dest),
        "unzip (the node)",
    )
}
