//! `cargo xtask`: the project's tasks, in Rust so that they run wherever cargo does.
//!
//! Commands: `pipeline` (run the lip-sync pipeline, on the built-in sample by default),
//! `test` (check the system packages the tests need, then run the whole test suite; `test
//! comfyui`: the node in a real ComfyUI server, see `comfyui.rs`),
//! `bench <progress|face|restore|infer|pipeline|queue>` (measure side by side and print one summary line),
//! `worker | submit | watch | cancel` (the NATS JetStream work queue, see `queue.rs`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod comfyui;
mod pipeline;
mod python;
mod queue;
mod test;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    one_malloc_arena();
    // Paths the user gives are relative to where they ran the command; everything else works
    // from the project root whatever the caller's directory is.
    let caller_dir = std::env::current_dir().context("cannot read the current directory")?;
    std::env::set_current_dir(project_root()).context("cannot change to the project root")?;
    quiet_mesa()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    match cmd {
        "bench" => bench::run(rest),
        "pipeline" => pipeline::run(rest, &caller_dir),
        "test" => test::run(rest),
        "worker" | "submit" | "watch" | "cancel" => queue::run(cmd, rest, &caller_dir),
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

const HELP: &str = "usage: cargo xtask <command>

commands:
  pipeline [options]   run the lip-sync pipeline (on the built-in sample without --video)
  test                 check/install the system packages the tests need, then run all tests
  test comfyui         the ComfyUI node in the vendored ComfyUI server (installs torch; not in CI)
  bench <what>         measure and print one summary line; what: progress face restore infer pipeline queue
  worker | submit | watch | cancel   the NATS JetStream work queue (`cargo xtask worker --help`)";

pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Mesa's window-system probing prints "XDG_RUNTIME_DIR is invalid or not set" at every device
/// creation when that variable is unset (containers, CI). Nothing here draws to a window, so a
/// private empty directory under `target/` is enough; child processes (tests, the release
/// re-run of benchmarks) inherit it.
fn quiet_mesa() -> Result<()> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return Ok(());
    }
    let dir = PathBuf::from("target/xdg-runtime");
    std::fs::create_dir_all(&dir).context("cannot create target/xdg-runtime")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .context("cannot set the mode of target/xdg-runtime")?;
    }
    let dir = std::fs::canonicalize(&dir).context("cannot resolve target/xdg-runtime")?;
    // SAFETY: called at the start of `main`, before this process starts any thread, so no other
    // thread can read the environment concurrently.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", dir) };
    Ok(())
}

/// The pipeline hands frame buffers from thread to thread (decode → stages → encode); glibc's
/// per-thread malloc arenas then fragment and the resident size creeps up with the video's
/// length (measured: 190 MB for a 10 s clip, 227 MB for 120 s). One arena keeps it flat
/// (169 MB, 178 MB) for about 2 % of speed. Embedders of `pipeline` can do the same, or use
/// `MALLOC_ARENA_MAX=1`.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets an allocator parameter; this runs first in `main`, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
