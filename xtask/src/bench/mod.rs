//! `cargo xtask bench <what>`: each benchmark measures its contenders side by side in one run
//! and prints, last, one `<what>-bench: key=value ...` line.

use anyhow::{Context, Result, bail};

mod face;
mod infer;
mod latentsync;
mod mesh;
mod model;
mod pipeline;
mod progress;
mod queue;
mod restore;

pub(crate) fn run(args: &[String]) -> Result<()> {
    // FACESYNC_BENCH_DEV=1 measures the dev build as it is (to try a benchmark quickly; the
    // figures are then not the optimised ones).
    if cfg!(debug_assertions) && std::env::var_os("FACESYNC_BENCH_DEV").is_none() {
        // Measure optimised code only: run this same command from a release build.
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "run",
                    "--quiet",
                    "--release",
                    "--package",
                    "xtask",
                    "--",
                    "bench",
                ])
                .args(args)
                .status()
                .context("cannot run the release build of xtask")?;
        if !status.success() {
            bail!("benchmark failed ({status})");
        }
        return Ok(());
    }
    let Some((what, rest)) = args.split_first() else {
        bail!(
            "usage: cargo xtask bench <progress|face|mesh|restore|infer|model|latentsync|pipeline|queue>"
        );
    };
    match what.as_str() {
        "progress" => progress::run(rest),
        "face" => face::run(rest),
        "mesh" => mesh::run(rest),
        "restore" => restore::run(rest),
        "infer" => infer::run(rest),
        "model" => model::run(rest),
        "latentsync" => latentsync::run(rest),
        "pipeline" => pipeline::run(rest),
        "queue" => queue::run(rest),
        other => {
            bail!(
                "unknown benchmark `{other}`; known: progress face mesh restore infer model latentsync pipeline queue"
            )
        }
    }
}
