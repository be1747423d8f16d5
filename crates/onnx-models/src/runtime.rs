//! Finding and loading the ONNX Runtime shared library, and choosing the execution provider.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::OnnxError;

/// The environment variable `ort` itself reads: a full path to the library.
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// How the library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySource {
    /// The caller's explicit path.
    Explicit,
    /// The `ORT_DYLIB_PATH` environment variable.
    Environment,
    /// An installed `onnxruntime` / `onnxruntime-gpu` Python package.
    PythonPackage,
}

/// The loaded ONNX Runtime library (one per process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The shared library.
    pub library: PathBuf,
    /// How it was found.
    pub source: LibrarySource,
    /// Its version, as its build string reports it (`"1.22.0"`), when readable.
    pub version: Option<String>,
}

/// The library file name on this platform.
#[cfg(target_os = "windows")]
const LIB_PREFIX: &str = "onnxruntime";
#[cfg(not(target_os = "windows"))]
const LIB_PREFIX: &str = "libonnxruntime";
#[cfg(target_os = "windows")]
const LIB_EXT: &str = ".dll";
#[cfg(target_os = "macos")]
const LIB_EXT: &str = ".dylib";
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
const LIB_EXT: &str = ".so";

/// Where the ONNX Runtime library is: `explicit`, else `ORT_DYLIB_PATH`, else the `capi`
/// folder of an installed `onnxruntime`/`onnxruntime-gpu` Python package (asked of `python3`,
/// then of `$VIRTUAL_ENV`'s site-packages), else [`OnnxError::RuntimeMissing`] saying how to
/// get one.
pub fn find_library(explicit: Option<&Path>) -> Result<(PathBuf, LibrarySource), OnnxError> {
    if let Some(p) = explicit {
        return existing(p, "the explicit runtime path").map(|p| (p, LibrarySource::Explicit));
    }
    if let Some(p) = std::env::var_os(ORT_DYLIB_PATH).filter(|v| !v.is_empty()) {
        return existing(Path::new(&p), ORT_DYLIB_PATH).map(|p| (p, LibrarySource::Environment));
    }
    let mut looked = Vec::new();
    for dir in python_package_dirs() {
        let capi = dir.join("capi");
        if let Some(lib) = library_in(&capi) {
            return Ok((lib, LibrarySource::PythonPackage));
        }
        looked.push(capi.display().to_string());
    }
    Err(OnnxError::RuntimeMissing {
        looked: if looked.is_empty() {
            "no onnxruntime Python package found".into()
        } else {
            format!("no library in {}", looked.join(", "))
        },
    })
}

fn existing(p: &Path, what: &str) -> Result<PathBuf, OnnxError> {
    if p.is_file() {
        Ok(p.to_path_buf())
    } else {
        Err(OnnxError::RuntimeLoad {
            library: p.to_path_buf(),
            message: format!("no such file (from {what})"),
        })
    }
}

/// The shared library in a wheel's `capi` folder (`libonnxruntime.so.1.22.0`, not the provider
/// libraries beside it).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(LIB_PREFIX).is_some_and(|rest| {
                    rest.starts_with(LIB_EXT) || (rest.starts_with('.') && rest.ends_with(LIB_EXT))
                })
            })
        })
        .collect();
    found.sort();
    found.pop()
}

/// Folders of installed `onnxruntime` packages: what `python3`'s import system finds (without
/// importing the package), then `$VIRTUAL_ENV`'s site-packages.
fn python_package_dirs() -> Vec<PathBuf> {
    const ASK: &str = "import importlib.util as u\nfor n in ('onnxruntime',):\n s=u.find_spec(n)\n if s and s.submodule_search_locations:\n  print(list(s.submodule_search_locations)[0])";
    let mut dirs = Vec::new();
    for python in ["python3", "python"] {
        if let Ok(out) = Command::new(python).args(["-c", ASK]).output()
            && out.status.success()
        {
            dirs.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from),
            );
            break;
        }
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        let lib = Path::new(&venv).join("lib");
        if let Ok(entries) = std::fs::read_dir(&lib) {
            for e in entries.flatten() {
                dirs.push(e.path().join("site-packages").join("onnxruntime"));
            }
        }
        dirs.push(Path::new(&venv).join("Lib/site-packages/onnxruntime"));
    }
    dirs.dedup();
    dirs
}

/// The process-wide runtime: loaded on first use, from `explicit` or the discovery of
/// [`find_library`]. Later calls return the same library (a process can hold one ONNX Runtime);
/// a later explicit path naming another file is an error.
pub fn runtime(explicit: Option<&Path>) -> Result<RuntimeInfo, OnnxError> {
    static LOADED: OnceLock<RuntimeInfo> = OnceLock::new();
    static LOADING: Mutex<()> = Mutex::new(());
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(info) = LOADED.get() {
        if let Some(p) = explicit
            && !same_file(p, &info.library)
        {
            return Err(OnnxError::RuntimeLoad {
                library: p.to_path_buf(),
                message: format!(
                    "this process already runs ONNX Runtime from {}",
                    info.library.display()
                ),
            });
        }
        return Ok(info.clone());
    }
    let (library, source) = find_library(explicit)?;
    let builder = ort::init_from(&library).map_err(|e| load_error(&library, e))?;
    builder.with_name("facesync").commit();
    let version = build_version(ort::info()).or_else(|| file_version(&library));
    let info = RuntimeInfo {
        library,
        source,
        version,
    };
    Ok(LOADED.get_or_init(|| info).clone())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn load_error(library: &Path, e: ort::LoadDynamicError) -> OnnxError {
    match e {
        ort::LoadDynamicError::BadVersion { version_str, .. } => OnnxError::RuntimeTooOld {
            library: library.to_path_buf(),
            found: version_str,
            needed: format!("1.{}", ort::MINOR_VERSION),
        },
        other => OnnxError::RuntimeLoad {
            library: library.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// `"1.22.0"` from ONNX Runtime's build string (`"ORT Build Info: git-branch=rel-1.22.0, ..."`).
fn build_version(info: &str) -> Option<String> {
    let rest = &info[info.find("rel-")? + 4..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

/// `"1.22.0"` from a versioned file name (`libonnxruntime.so.1.22.0`,
/// `libonnxruntime.1.22.0.dylib`).
fn file_version(library: &Path) -> Option<String> {
    let name = library.file_name()?.to_str()?;
    let digits: Vec<&str> = name
        .split('.')
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    (digits.len() >= 2).then(|| digits.join("."))
}

/// Which execution provider the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProviderRequest {
    /// CUDA when the library has it and it registers, else the CPU (default).
    #[default]
    Auto,
    /// A GPU provider (CUDA) or an error.
    Gpu,
    /// TensorRT (CUDA for the operators it does not take) or an error.
    TensorRt,
    /// The CPU provider.
    Cpu,
}

/// The execution provider that runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// CUDA.
    Cuda,
    /// TensorRT (with CUDA behind it).
    TensorRt,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Cpu => "CPU",
            Provider::Cuda => "CUDA",
            Provider::TensorRt => "TensorRT",
        })
    }
}

impl Provider {
    /// ONNX Runtime's name of the provider (`CUDAExecutionProvider`).
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::TensorRt => "TensorrtExecutionProvider",
        }
    }
}

/// Whether the loaded library was built with `provider` (it may still fail to register, e.g.
/// without the CUDA libraries; [`crate::session`] registers with `error_on_failure`).
pub(crate) fn compiled_with(provider: Provider) -> bool {
    use ort::ep::ExecutionProvider;
    match provider {
        Provider::Cpu => true,
        Provider::Cuda => ort::ep::CUDA::default().is_available().unwrap_or(false),
        Provider::TensorRt => ort::ep::TensorRT::default().is_available().unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_build_string() {
        let check = |s: &str, v: Option<&str>| assert_eq!(build_version(s).as_deref(), v, "{s}");
        check(
            "ORT Build Info: git-branch=rel-1.22.0, git-commit-id=a, build type=Release",
            Some("1.22.0"),
        );
        check("ORT Build Info: git-branch=main", None);
    }

    #[test]
    fn version_from_file_name() {
        let check =
            |s: &str, v: Option<&str>| assert_eq!(file_version(Path::new(s)).as_deref(), v, "{s}");
        check("/x/libonnxruntime.so.1.22.0", Some("1.22.0"));
        check("/x/libonnxruntime.1.19.2.dylib", Some("1.19.2"));
        check("/x/libonnxruntime.so", None);
    }

    #[test]
    fn a_too_old_library_is_named_with_both_versions() {
        let e = load_error(
            Path::new("/x/libonnxruntime.so.1.10.0"),
            ort::LoadDynamicError::BadVersion {
                version_str: "1.10.0".into(),
                path: "/x/libonnxruntime.so.1.10.0".into(),
            },
        )
        .to_string();
        assert!(e.contains("/x/libonnxruntime.so.1.10.0"), "{e}");
        assert!(e.contains("version 1.10.0, too old"), "{e}");
        assert!(e.contains(&format!("1.{}", ort::MINOR_VERSION)), "{e}");
    }

    #[test]
    fn library_in_a_wheel_folder() {
        let dir = std::env::temp_dir().join(format!("facesync-ort-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in [
            format!("{LIB_PREFIX}_providers_shared{LIB_EXT}"),
            format!("{LIB_PREFIX}{LIB_EXT}.1.22.0"),
            "onnxruntime_pybind11_state.so".into(),
        ] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let found = library_in(&dir).map(|p| p.file_name().unwrap().to_owned());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            found.unwrap().to_str().unwrap(),
            format!("{LIB_PREFIX}{LIB_EXT}.1.22.0")
        );
    }

    #[test]
    fn explicit_missing_file_names_it() {
        let e = find_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/libonnxruntime.so"),
            "{e}"
        );
    }
}
