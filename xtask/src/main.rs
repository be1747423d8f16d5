//! `cargo xtask`: the project's tasks, in Rust so that they run wherever cargo does.
//!
//! Commands: `pipeline` (`facesync run`: the lip-sync pipeline, on the built-in sample by
//! default; the same code as the installed `facesync` binary), `test` (check the system
//! packages the tests need, then run the whole test suite; `test comfyui`: the node in a
//! real ComfyUI server, see `comfyui.rs`), `bench <progress|face|mesh|restore|infer|model|latentsync|pipeline|queue>`
//! (measure side by side and print one summary line: the `facesync-bench` crate, `crates/bench`),
//! `dist [--check]` (the release artifacts, see `dist.rs`). The work-queue commands are
//! `facesync worker | submit | watch | cancel`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod comfyui;
mod dist;
mod dist_check;
mod parity;
mod python;
mod test;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "pipeline") {
        // `facesync run` with the sample under target/: paths stay relative to the caller's
        // directory, as for the installed binary.
        if let Err(e) = quiet_mesa(&project_root()) {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
        let defaults = facesync::Defaults {
            sample_dir: project_root().join("target/facesync-sample"),
        };
        let argv = ["facesync".into(), "run".into()]
            .into_iter()
            .chain(args.into_iter().skip(1));
        return facesync::main_with_args(argv, &defaults);
    }
    match tasks(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

fn tasks(args: &[OsString]) -> Result<()> {
    // The build tasks work from the project root whatever the caller's directory is.
    std::env::set_current_dir(project_root()).context("cannot change to the project root")?;
    quiet_mesa(&project_root())?;
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.clone()
                .into_string()
                .map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8"))
        })
        .collect::<Result<_>>()?;
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    match cmd {
        "bench" => bench(rest),
        "test" => test::run(rest),
        "dist" => dist::run_dist(rest),
        "parity" => {
            test::ensure_system_packages()?;
            let python = python::environment()?;
            let ort = python::onnx_runtime(&python)?;
            parity::run(&python, &ort, rest)
        }
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

const HELP: &str = "usage: cargo xtask <command>

commands:
  pipeline [options]   `facesync run` (the same code): the lip-sync pipeline, on the built-in
                       sample in target/facesync-sample without --video (`cargo xtask pipeline --help`)
  test                 check/install the system packages the tests need, then run all tests
  parity [args]        the learned models' parity with FaceFusion/LatentSync (part of `test`;
                       args go to tests/parity/run_parity.py, e.g. --cases sample)
  test comfyui [--runs N]
                       the ComfyUI node in the vendored ComfyUI server (installs torch; not in CI)
  dist [--check]       the release artifacts in target/dist: the manylinux wheel, the CLI
                       tarball, the ComfyUI node folder and zip, SHA256SUMS; --check installs
                       each where no Rust is and prints `dist-check: …` (CI runs it)
  bench <what>         measure and print one summary line; what: progress face restore infer model latentsync pipeline queue

The work queue and the sample have their own commands in the facesync CLI
(`cargo install --path crates/cli`; `facesync worker | submit | watch | cancel | sample`).";

/// `cargo xtask bench <what>`: the benchmark crate's binary, release build (the figures are
/// the optimised code's).
fn bench(args: &[String]) -> Result<()> {
    let status = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "facesync-bench",
            "--",
        ])
        .args(args)
        .status()
        .context("cannot run the benchmarks (crates/bench)")?;
    if !status.success() {
        bail!("benchmark failed ({status})");
    }
    Ok(())
}

/// A `cargo` command (the one running xtask) without what `cargo run` set for xtask itself.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    without_xtask_env(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment the variables `cargo run` set for xtask (its manifest and
/// package): build scripts that read them (ring's: `rerun-if-env-changed=CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_NAME`, …) would otherwise see them change between `cargo xtask …` and a plain
/// `cargo build`, and recompile ring, rustls, async-nats and everything above them each time.
/// For any tool that runs cargo (maturin too).
pub(crate) fn without_xtask_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("CARGO_PKG_")
            || name_str.starts_with("CARGO_MANIFEST_")
            || name_str == "CARGO_CRATE_NAME"
            || name_str == "CARGO_BIN_NAME"
            || name_str == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(&name);
        }
    }
    cmd
}

pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Mesa's window-system probing prints "XDG_RUNTIME_DIR is invalid or not set" at every device
/// creation when that variable is unset (containers, CI). Nothing here draws to a window, so a
/// private empty directory under `target/` is enough: `.cargo/config.toml` points
/// `XDG_RUNTIME_DIR` there (`[env]`, for every process cargo runs, unless the variable is already
/// set), and this makes sure the directory exists, private to its user as the spec asks.
fn quiet_mesa(root: &std::path::Path) -> Result<()> {
    let dir = root.join("target/xdg-runtime");
    std::fs::create_dir_all(&dir).context("cannot create target/xdg-runtime")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .context("cannot set the mode of target/xdg-runtime")?;
    }
    Ok(())
}
