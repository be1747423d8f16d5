//! `cargo xtask`: the project's tasks, in Rust so that they run wherever cargo does.
//!
//! Commands: `pipeline` (run the lip-sync pipeline, on the built-in sample by default),
//! `test` (check the system packages the tests need, then run the whole test suite),
//! `bench <progress|face|restore|infer|pipeline>` (measure side by side and print one summary line).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod pipeline;
mod test;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    // Paths the user gives are relative to where they ran the command; everything else works
    // from the project root whatever the caller's directory is.
    let caller_dir = std::env::current_dir().context("cannot read the current directory")?;
    std::env::set_current_dir(project_root()).context("cannot change to the project root")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    match cmd {
        "bench" => bench::run(rest),
        "pipeline" => pipeline::run(rest, &caller_dir),
        "test" => test::run(rest),
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
  bench <what>         measure and print one summary line; what: progress face restore infer pipeline";

pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}
