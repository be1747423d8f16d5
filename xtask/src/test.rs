//! `cargo xtask test`: makes sure the system packages the tests need are there (installing them
//! with apt when run as root on Debian, as on a fresh machine or CI), then runs every test.
//!
//! What the tests need beyond the Rust toolchain:
//! - Mesa's software Vulkan driver (`mesa-vulkan-drivers`, `libvulkan1`), so that wgpu finds an
//!   adapter (llvmpipe) on a machine without a GPU and the WGSL shaders run against the CPU path;
//! - `ffmpeg`, for the media I/O tests of containers other than Y4M and PNG;
//! - `nats-server` (with JetStream), which the work-queue tests start on loopback ports;
//! - the test Python environment (see `python.rs`): `onnxruntime` (its library runs the
//!   learned-model tests, through `ORT_DYLIB_PATH`) and `onnx` (generates their models);
//! - `espeak-ng`, the speech of the model parity clips (`parity.rs`, run after the Rust tests).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

// g++: libFuzzer, which `fuzz/run` (CI's short fuzz runs, after the tests) compiles.
// espeak-ng: the real speech of the model parity clips (tests/parity).
const PACKAGES: &[&str] = &[
    "mesa-vulkan-drivers",
    "libvulkan1",
    "ffmpeg",
    "nats-server",
    "g++",
    "espeak-ng",
];

pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some((first, rest)) = args.split_first()
        && first == "comfyui"
    {
        return crate::comfyui::run_bench(rest);
    }
    ensure_system_packages()?;
    // The Python environment first: the learned-model tests load its ONNX Runtime library and
    // generate their models with its `onnx`; FACESYNC_REQUIRE_ORT makes them fail, not skip,
    // when either is missing.
    let python = crate::python::environment()?;
    let ort = crate::python::onnx_runtime(&python)?;
    let mut cmd = crate::cargo();
    cmd.env("ORT_DYLIB_PATH", &ort)
        .env("FACESYNC_REQUIRE_ORT", "1")
        .env("FACESYNC_TEST_PYTHON", &python);
    // `--release`: the profile the `cargo xtask` alias builds, so the tests reuse its compiled
    // dependencies instead of building them a second time (and the pixel loops run optimised).
    cmd.args(["test", "--workspace", "--release"]).args(args);
    let status = cmd.status().context("cannot run cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    crate::parity::run(&python, &ort, &[])?;
    crate::python::test(&python, &ort)
}

/// Lists the missing pieces and installs them when we can.
pub(crate) fn ensure_system_packages() -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let has_apt = Path::new("/usr/bin/apt-get").exists();
    if !(is_root && has_apt) {
        bail!(
            "the tests need these system packages: {}; install them with \
             `sudo apt-get install -y {}` (Debian/Ubuntu) and run again",
            missing.join(", "),
            PACKAGES.join(" ")
        );
    }
    eprintln!(
        "installing system packages for the tests: {}",
        PACKAGES.join(" ")
    );
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .context("cannot run apt-get update")?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get install")?;
    if !install.success() {
        bail!("apt-get install {} failed ({install})", PACKAGES.join(" "));
    }
    let still = self::missing();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

fn missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !has_lavapipe() {
        missing.push("Mesa's software Vulkan driver (mesa-vulkan-drivers, libvulkan1)");
    }
    if !on_path("ffmpeg") {
        missing.push("ffmpeg");
    }
    if test_kit::nats::binary().is_none() {
        missing.push("nats-server");
    }
    if !on_path("c++") {
        missing.push("a C++ compiler (g++)");
    }
    if !on_path("espeak-ng") {
        missing.push("espeak-ng");
    }
    missing
}

fn has_lavapipe() -> bool {
    let icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"];
    let icd = icd_dirs.iter().any(|dir| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
        })
    });
    let loader = [
        "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
        "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
        "/usr/lib/libvulkan.so.1",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    icd && loader
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
