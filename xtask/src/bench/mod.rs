//! `cargo xtask bench <what>`: each benchmark measures its contenders side by side in one run
//! and prints, last, one `<what>-bench: key=value ...` line.

use anyhow::{Result, bail};

mod progress;

pub(crate) fn run(args: &[String]) -> Result<()> {
    let Some((what, rest)) = args.split_first() else {
        bail!("usage: cargo xtask bench <progress|face|restore|infer|pipeline>");
    };
    match what.as_str() {
        "progress" => progress::run(rest),
        other => bail!("unknown benchmark `{other}`; known: progress face restore infer pipeline"),
    }
}
