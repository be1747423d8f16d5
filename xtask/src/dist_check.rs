//! `cargo xtask dist --check`: installs each artifact of `cargo xtask dist` where no Rust is, as a
//! user would, and prints
//! `dist-check: wheel_tag=<tag> py310=<ok|fail> py313=<ok|fail> cli_glibc_max=<x.y> node=<ok|fail>`
//! (then a line per part with what it measured); any failure fails the command.
//!
//! - **Wheel**: `auditwheel show` (PyPI's, independent of maturin's own check) gives its tag.
//!   For CPython 3.10 and 3.13 (pyenv's, or `python3.X` on `PATH`): a fresh venv, the wheel
//!   installed by pip from the file with `PATH` holding no cargo or rustc, then the README's
//!   Python example (the first `python` block of README.md, as written), a `run_frames` call on
//!   the sample's frames, and the import time (median of three fresh interpreters).
//! - **CLI**: the tarball unpacked and run under `env -i PATH=/usr/bin:/bin`: `--version`,
//!   `facesync run` on the sample, and `--model wav2lip:<file>` (the generated test model, random
//!   weights) with ONNX Runtime found as a user's would be: `VIRTUAL_ENV` naming an environment
//!   with the `onnxruntime` package (the test environment). `objdump` gives the newest glibc
//!   symbol version it needs and its `NEEDED` libraries (glibc's only).
//! - **Node**: the node folder dropped into a `custom_nodes/` and loaded the way ComfyUI 0.12.1
//!   loads custom nodes, in the 3.13 venv, with stand-ins of ComfyUI's modules (no torch; the real
//!   server is `cargo xtask test comfyui`, which installs these same artifacts).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail, ensure};

use crate::dist::{Artifacts, GLIBC, target_dir};
use crate::python;

/// glibc's own libraries: all the wheel and the CLI may need.
const GLIBC_LIBS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
];

pub(crate) fn run(artifacts: &Artifacts, test_python: &Path) -> Result<()> {
    let work = target_dir().join("dist-check");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot empty {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let script = crate::dist::script()?;

    let mut failures = Vec::new();
    let mut details = Vec::new();
    let mut verdict = |part: &str, result: Result<String>| match result {
        Ok(detail) => {
            details.push(format!("dist-check {part}: {detail}"));
            "ok".to_owned()
        }
        Err(e) => {
            failures.push(format!("{part}: {e:#}"));
            "fail".to_owned()
        }
    };
    let readme = readme_names(artifacts);
    let wheel_tag = wheel_tag(test_python, &artifacts.wheel);
    let py310 = verdict("py310", python_check("3.10", artifacts, &work, &script));
    let py313 = verdict("py313", python_check("3.13", artifacts, &work, &script));
    let cli = cli_check(artifacts, &work, test_python);
    let cli_glibc_max = cli
        .as_ref()
        .map_or_else(|_| "fail".to_owned(), |(max, _)| max.clone());
    let _ = verdict("cli", cli.map(|(_, detail)| detail));
    let node = verdict("node", node_check(artifacts, &work, &script, test_python));
    if let Err(e) = readme {
        failures.push(format!("README.md: {e:#}"));
    }
    let wheel_tag = match wheel_tag {
        Ok(tag) => tag,
        Err(e) => {
            failures.push(format!("wheel tag: {e:#}"));
            "fail".into()
        }
    };
    println!(
        "dist-check: wheel_tag={wheel_tag} py310={py310} py313={py313} cli_glibc_max={cli_glibc_max} node={node}"
    );
    for line in details {
        println!("{line}");
    }
    if !failures.is_empty() {
        bail!("dist check failed:\n- {}", failures.join("\n- "));
    }
    Ok(())
}

/// README.md's install lines name the files this version writes.
fn readme_names(artifacts: &Artifacts) -> Result<()> {
    let readme = std::fs::read_to_string("README.md").context("cannot read README.md")?;
    for file in [&artifacts.wheel, &artifacts.tarball, &artifacts.node_zip] {
        let name = file.file_name().context("no file name")?.to_string_lossy();
        ensure!(
            readme.contains(name.as_ref()),
            "its install lines do not name {name}"
        );
    }
    Ok(())
}

/// The platform tag `auditwheel show` finds the wheel consistent with.
fn wheel_tag(python: &Path, wheel: &Path) -> Result<String> {
    let out = output(
        Command::new(python.with_file_name("auditwheel"))
            .arg("show")
            .arg(wheel),
        "auditwheel show",
    )?;
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let tag = text
        .split("consistent with the following platform tag: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .with_context(|| format!("auditwheel show said: {text}"))?;
    let wanted = format!("manylinux_{}_x86_64", GLIBC.replace('.', "_"));
    ensure!(
        tag == wanted,
        "auditwheel: the wheel is {tag}, not {wanted}"
    );
    let listing = output(
        Command::new(python)
            .args(["-m", "zipfile", "-l"])
            .arg(wheel),
        "listing the wheel",
    )?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in ["LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY.md"] {
        ensure!(
            listing.contains(&format!(".dist-info/licenses/{file}")),
            "the wheel has no .dist-info/licenses/{file}"
        );
    }
    Ok(tag.to_owned())
}

/// A fresh venv of CPython `minor` with the wheel, then the README example and `run_frames`.
fn python_check(minor: &str, artifacts: &Artifacts, work: &Path, script: &Path) -> Result<String> {
    let interpreter = find_python(minor)?;
    let venv = work.join(format!("py{}", minor.replace('.', "")));
    status(
        Command::new(&interpreter).args(["-m", "venv"]).arg(&venv),
        &format!("{} -m venv", interpreter.display()),
    )?;
    let bin = venv.join("bin");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    for tool in ["cargo", "rustc", "rustup"] {
        if let Some(dir) = std::env::split_paths(&path).find(|d| d.join(tool).exists()) {
            bail!("{tool} is in {} on the check's PATH", dir.display());
        }
    }
    let python = bin.join("python");
    let user = |cmd: &mut Command| {
        cmd.env_clear()
            .env("PATH", &path)
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .current_dir(&venv);
    };
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .arg(&artifacts.wheel);
    user(&mut pip);
    status(&mut pip, "pip install the wheel")?;

    let example = readme_python_example()?;
    std::fs::write(venv.join("readme_example.py"), example)?;
    let mut readme = Command::new(&python);
    readme.arg("readme_example.py");
    user(&mut readme);
    let out = output(&mut readme, "the README's Python example")?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let mut frames = Command::new(&python);
    frames.arg(script).args(["run_frames", "frames"]);
    user(&mut frames);
    output(&mut frames, "run_frames")?;

    let mut times = Vec::new();
    let mut version = String::new();
    for _ in 0..3 {
        let mut import = Command::new(&python);
        import.arg(script).arg("import_time");
        user(&mut import);
        let out = String::from_utf8_lossy(&output(&mut import, "import facesync")?.stdout)
            .trim()
            .to_owned();
        let (seconds, v) = out.split_once(' ').context("import_time: no version")?;
        times.push(
            seconds
                .parse::<f64>()
                .context("import_time: not a number")?,
        );
        version = v.to_owned();
    }
    ensure!(
        version == artifacts.version,
        "facesync.__version__ is {version}, the workspace's {}",
        artifacts.version
    );
    times.sort_by(f64::total_cmp);
    Ok(format!(
        "python={} version={version} import_s={:.3} readme_example=\"{said}\" run_frames=ok",
        interpreter.display(),
        times[1]
    ))
}

/// CPython `minor` (e.g. "3.10"): pyenv's newest 3.10.x, else `python3.10` on `PATH` (not
/// pyenv's shims, which answer only for the versions pyenv has activated).
fn find_python(minor: &str) -> Result<PathBuf> {
    let name = format!("python{minor}");
    let root = std::env::var_os("PYENV_ROOT").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv"),
        PathBuf::from,
    );
    let versions = root.join("versions");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&versions)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(minor)
                .is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|e| e.path().join("bin").join(&name))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    if let Some(newest) = found.pop() {
        return Ok(newest);
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .filter(|d| !d.ends_with("shims"))
                .find(|d| d.join(&name).is_file())
        })
        .map(|dir| dir.join(&name))
        .with_context(|| {
            format!(
                "no Python {minor}: neither in {} nor {name} on PATH",
                versions.display()
            )
        })
}

/// The first ```python block of README.md.
fn readme_python_example() -> Result<String> {
    let readme = std::fs::read_to_string("README.md").context("cannot read README.md")?;
    let start = readme
        .find("```python\n")
        .context("README.md has no ```python block")?
        + "```python\n".len();
    let len = readme[start..]
        .find("```")
        .context("README.md: the python block does not end")?;
    Ok(readme[start..start + len].to_owned())
}

/// The tarball unpacked and run as a user with nothing but /usr/bin and /bin.
fn cli_check(artifacts: &Artifacts, work: &Path, test_python: &Path) -> Result<(String, String)> {
    let dir = work.join("cli");
    std::fs::create_dir_all(&dir)?;
    status(
        Command::new("tar")
            .arg("-xzf")
            .arg(&artifacts.tarball)
            .arg("-C")
            .arg(&dir),
        "tar -x (the CLI)",
    )?;
    let name = artifacts
        .tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .context("the tarball's name")?;
    let unpacked = dir.join(name);
    for file in [
        "facesync",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "THIRD-PARTY.md",
    ] {
        ensure!(unpacked.join(file).is_file(), "the tarball has no {file}");
    }
    let binary = unpacked.join("facesync");
    let (glibc_max, needed) = elf_needs(&binary)?;
    let user = |cmd: &mut Command| {
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&dir);
    };
    let mut version = Command::new(&binary);
    version.arg("--version");
    user(&mut version);
    let said = String::from_utf8_lossy(&output(&mut version, "facesync --version")?.stdout)
        .trim()
        .to_owned();
    ensure!(
        said == format!("facesync {}", artifacts.version),
        "facesync --version says {said:?}, the workspace is {}",
        artifacts.version
    );
    // `facesync run` on a small built-in sample, as a user with /usr/bin and /bin only.
    let sample_run = || {
        let mut cmd = Command::new(&binary);
        cmd.args(["run", "--sample-seconds", "2", "--sample-size", "256"])
            .args(["--progress", "none"]);
        user(&mut cmd);
        cmd
    };
    let mut sample = sample_run();
    output(&mut sample, "facesync run (the sample)")?;
    let out = dir.join("facesync-sample").join("lipsync.mp4");
    ensure!(out.is_file(), "facesync run wrote no {}", out.display());

    let models = test_kit::models::generate_with(test_python, &work.join("models"))
        .map_err(anyhow::Error::msg)?;
    let venv = test_python
        .parent()
        .and_then(Path::parent)
        .context("the test environment's python is not in <venv>/bin")?;
    let model_out = dir.join("wav2lip.mp4");
    let mut model = sample_run();
    model
        .arg("--model")
        .arg(format!(
            "wav2lip:{}",
            models.dir.join("wav2lip_96.onnx").display()
        ))
        .arg("--out")
        .arg(&model_out)
        .env("VIRTUAL_ENV", venv);
    output(
        &mut model,
        "facesync run --model wav2lip:… (ONNX Runtime of VIRTUAL_ENV)",
    )?;
    ensure!(
        model_out.is_file(),
        "facesync run --model wrote no {}",
        model_out.display()
    );
    let size = std::fs::metadata(&binary)?.len() as f64 / 1e6;
    Ok((
        glibc_max.clone(),
        format!(
            "binary_mb={size:.1} glibc_max={glibc_max} needed={} version=ok sample=ok wav2lip=ok",
            needed.join(",")
        ),
    ))
}

/// The newest `GLIBC_x.y` symbol version an ELF file needs, and its `NEEDED` libraries (which
/// must all be glibc's).
fn elf_needs(binary: &Path) -> Result<(String, Vec<String>)> {
    let symbols = output(Command::new("objdump").arg("-T").arg(binary), "objdump -T")?;
    let max = newest_glibc(&String::from_utf8_lossy(&symbols.stdout));
    let (major, minor) = max.context("objdump -T: no GLIBC symbol versions")?;
    let (want_major, want_minor) = GLIBC.split_once('.').context("GLIBC")?;
    ensure!(
        (major, minor) <= (want_major.parse()?, want_minor.parse()?),
        "{} needs GLIBC_{major}.{minor}, newer than {GLIBC}",
        binary.display()
    );
    let headers = output(Command::new("objdump").arg("-p").arg(binary), "objdump -p")?;
    let needed: Vec<String> = String::from_utf8_lossy(&headers.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(|l| l.trim().to_owned())
        .collect();
    if let Some(other) = needed.iter().find(|n| !GLIBC_LIBS.contains(&n.as_str())) {
        bail!("{} needs {other}, which is not glibc's", binary.display());
    }
    Ok((format!("{major}.{minor}"), needed))
}

/// The newest `GLIBC_x.y` version named in `objdump -T`'s output.
fn newest_glibc(objdump: &str) -> Option<(u32, u32)> {
    objdump
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| {
            let mut parts = word.strip_prefix("GLIBC_")?.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .max()
}

/// The node's zip unpacked into a `custom_nodes/`, loaded as ComfyUI loads it, in the 3.13 venv.
fn node_check(
    artifacts: &Artifacts,
    work: &Path,
    script: &Path,
    test_python: &Path,
) -> Result<String> {
    let custom_nodes = work.join("comfyui").join("custom_nodes");
    let dest = custom_nodes.join(crate::dist::NODE);
    std::fs::create_dir_all(&dest)?;
    // The zip, unpacked as the Comfy Registry's installers do; it must hold the folder's files.
    status(
        Command::new(test_python)
            .args(["-m", "zipfile", "-e"])
            .arg(&artifacts.node_zip)
            .arg(&dest),
        "unzip (the node)",
    )?;
    for entry in std::fs::read_dir(&artifacts.node_dir)? {
        let name = entry?.file_name();
        ensure!(
            dest.join(&name).is_file(),
            "the node zip has no {}",
            name.to_string_lossy()
        );
    }
    for file in ["pyproject.toml", "requirements.txt", "README.md"] {
        ensure!(dest.join(file).is_file(), "the node folder has no {file}");
    }
    let pyproject = std::fs::read_to_string(dest.join("pyproject.toml"))?;
    ensure!(
        pyproject.contains("[tool.comfy]"),
        "the node's pyproject.toml has no [tool.comfy]"
    );
    let python = work.join("py313").join("bin").join("python");
    ensure!(
        python.exists(),
        "no Python 3.13 venv with the wheel (see py313)"
    );
    let standins = std::path::absolute(Path::new(python::CRATE).join("tests").join("standins"))?;
    let out = output(
        Command::new(&python)
            .arg(script)
            .arg("node")
            .arg(&custom_nodes)
            .arg(&standins)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(work),
        "loading the node as ComfyUI does",
    )?;
    let nodes = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    for wanted in ["FacesyncLipSync", "FacesyncLipSyncVideo"] {
        ensure!(
            nodes.split(' ').any(|n| n == wanted),
            "the node folder declares {nodes:?}, not {wanted}"
        );
    }
    Ok(format!("nodes={}", nodes.replace(' ', ",")))
}

fn status(cmd: &mut Command, what: &str) -> Result<()> {
    output(cmd, what).map(drop)
}

/// Runs `cmd`, keeping its output; on failure the error carries its stderr's end.
fn output(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::newest_glibc;

    #[test]
    fn newest_glibc_compares_versions_as_numbers() {
        let objdump = "\
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) free
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.28) fcntl64
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.9)  pipe2
0000000000000000  w   D  *UND*  0000000000000000  GLIBC_PRIVATE __libc_single_threaded
";
        assert_eq!(newest_glibc(objdump), Some((2, 28)));
        assert_eq!(newest_glibc("no versions here"), None);
    }
}
