//! facesync's benchmarks, `cargo xtask bench <what>` (which runs this binary, release build):
//! each measures its contenders side by side in one run and prints, last, one
//! `<what>-bench: key=value ...` line. A crate of its own (not published) so that the product
//! crates and xtask carry none of what only measurement needs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

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

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    // The benchmarks read and write paths under the workspace root (`target/facesync-bench`).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::set_current_dir(&root).context("cannot change to the workspace root")?;
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
