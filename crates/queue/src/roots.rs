//! Which files a worker may read and write for a job.
//!
//! A job message is input from anyone allowed to publish on `facesync.jobs`: without limits,
//! a worker would read any file its user can read (as the "video") and replace any file its
//! user can write (the output is renamed into place). A worker therefore runs only jobs whose
//! inputs lie under an input root and whose output lies under the output root, both resolved
//! the way the kernel will resolve them (`..` and symlinks followed, the output's folder
//! resolved since the output does not exist yet). The pipeline then gets the resolved paths,
//! so a symlink swapped after the check cannot redirect it outside the roots either (short of
//! someone rewriting folders inside the roots in between, which needs write access there).

use std::path::{Component, Path, PathBuf};

use crate::QueueError;
use crate::job::Job;

/// Where a worker's jobs may read and write.
///
/// The default, [`PathPolicy::Unset`], makes [`Queue::run_worker`](crate::Queue::run_worker)
/// refuse to start: running jobs that may name any path must be asked for explicitly
/// ([`PathPolicy::AnyPath`]), never be the result of a forgotten option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathPolicy {
    /// Nothing chosen: the worker refuses to start.
    #[default]
    Unset,
    /// Inputs under one of the input roots, outputs under the output root.
    Roots(PathRoots),
    /// Any path the worker's user may read or write (a trusted, single-user set-up).
    AnyPath,
}

/// The folders a worker's jobs may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRoots {
    /// Folders the video and audio inputs must lie under (at least one).
    pub inputs: Vec<PathBuf>,
    /// The folder outputs must lie under.
    pub output: PathBuf,
}

/// A [`PathPolicy`] with its roots resolved, ready to check jobs.
#[derive(Debug, Clone)]
pub(crate) enum Allowed {
    Roots {
        inputs: Vec<PathBuf>,
        output: PathBuf,
    },
    Any,
}

/// A job's paths as the pipeline must use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobPaths {
    pub(crate) video: PathBuf,
    pub(crate) audio: PathBuf,
    pub(crate) output: PathBuf,
}

impl PathPolicy {
    /// Resolves the roots (they must exist and be folders).
    pub(crate) fn resolve(&self) -> Result<Allowed, QueueError> {
        let roots = match self {
            Self::Unset => {
                return Err(QueueError::PathRoots(
                    "no input and output roots are set: a job could read and overwrite any \
                     file this worker's user may; give --input-root and --output-root (or \
                     --allow-any-path for a trusted set-up)"
                        .into(),
                ));
            }
            Self::AnyPath => return Ok(Allowed::Any),
            Self::Roots(roots) => roots,
        };
        if roots.inputs.is_empty() {
            return Err(QueueError::PathRoots(
                "at least one input root is needed".into(),
            ));
        }
        let folder = |what: &str, path: &Path| -> Result<PathBuf, QueueError> {
            let real = std::fs::canonicalize(path).map_err(|e| {
                QueueError::PathRoots(format!("the {what} root {}: {e}", path.display()))
            })?;
            if !real.is_dir() {
                return Err(QueueError::PathRoots(format!(
                    "the {what} root {} is not a folder",
                    path.display()
                )));
            }
            Ok(real)
        };
        Ok(Allowed::Roots {
            inputs: roots
                .inputs
                .iter()
                .map(|p| folder("input", p))
                .collect::<Result<_, _>>()?,
            output: folder("output", &roots.output)?,
        })
    }
}

impl Allowed {
    /// The job's paths resolved, or why the job may not run here. Reads nothing but the
    /// file system's metadata (to resolve), writes nothing.
    pub(crate) fn check(&self, job: &Job) -> Result<JobPaths, String> {
        let (inputs, output_root) = match self {
            Self::Any => {
                return Ok(JobPaths {
                    video: job.video.clone(),
                    audio: job.audio.clone(),
                    output: job.output.clone(),
                });
            }
            Self::Roots { inputs, output } => (inputs, output),
        };
        let input = |what: &str, path: &Path| -> Result<PathBuf, String> {
            absolute(what, path)?;
            let real = std::fs::canonicalize(path)
                .map_err(|e| format!("the {what} {}: cannot resolve it: {e}", path.display()))?;
            if inputs.iter().any(|root| real.starts_with(root)) {
                Ok(real)
            } else {
                Err(format!(
                    "the {what} {} resolves to {}, outside the input root{} {}",
                    path.display(),
                    real.display(),
                    if inputs.len() == 1 { "" } else { "s" },
                    list(inputs)
                ))
            }
        };
        let video = input("video", &job.video)?;
        let audio = input("audio", &job.audio)?;
        let path = &job.output;
        absolute("output", path)?;
        let name = match path.components().next_back() {
            Some(Component::Normal(name)) => name,
            _ => {
                return Err(format!(
                    "the output {} does not end in a file name",
                    path.display()
                ));
            }
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        let real_parent = std::fs::canonicalize(parent).map_err(|e| {
            format!(
                "the output's folder {}: cannot resolve it: {e}",
                parent.display()
            )
        })?;
        let output = real_parent.join(name);
        if !real_parent.starts_with(output_root) {
            return Err(format!(
                "the output {} resolves to {}, outside the output root {}",
                path.display(),
                output.display(),
                output_root.display()
            ));
        }
        Ok(JobPaths {
            video,
            audio,
            output,
        })
    }
}

fn absolute(what: &str, path: &Path) -> Result<(), String> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(format!(
            "the {what} {} is a relative path: job paths must be absolute",
            path.display()
        ))
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunOptions;

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    /// `in/v.y4m`, `in/a.wav`, `out/`, `secret/key`, `in/link -> ../secret/key`,
    /// `out/escape -> ../secret` (canonical paths).
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["in", "out", "secret"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        for f in ["in/v.y4m", "in/a.wav", "secret/key"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink("../secret/key", root.join("in/link")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out/escape")).unwrap();
        Tree { _dir: dir, root }
    }

    fn allowed(t: &Tree) -> Allowed {
        PathPolicy::Roots(PathRoots {
            inputs: vec![t.root.join("in")],
            output: t.root.join("out"),
        })
        .resolve()
        .unwrap()
    }

    fn check(t: &Tree, video: &str, output: &str) -> Result<JobPaths, String> {
        let job = Job::new(
            t.root.join(video),
            t.root.join("in/a.wav"),
            t.root.join(output),
            RunOptions::default(),
        );
        allowed(t).check(&job)
    }

    #[test]
    fn paths_inside_the_roots_pass_resolved() {
        let t = tree();
        let paths = check(&t, "in/../in/v.y4m", "out/o.y4m").unwrap();
        assert_eq!(paths.video, t.root.join("in/v.y4m"));
        assert_eq!(paths.output, t.root.join("out/o.y4m"));
    }

    #[test]
    fn paths_leaving_the_roots_are_refused_naming_the_path_and_the_root() {
        let t = tree();
        let (root_in, root_out) = (t.root.join("in"), t.root.join("out"));
        for (video, output, expected) in [
            (
                "in/../secret/key",
                "out/o.y4m",
                format!("outside the input root {}", root_in.display()),
            ),
            (
                "in/link",
                "out/o.y4m",
                format!("resolves to {}", t.root.join("secret/key").display()),
            ),
            (
                "in/v.y4m",
                "out/../secret/o.y4m",
                format!("outside the output root {}", root_out.display()),
            ),
            (
                "in/v.y4m",
                "out/escape/o.y4m",
                format!("resolves to {}", t.root.join("secret/o.y4m").display()),
            ),
            (
                "in/v.y4m",
                "out/..",
                "does not end in a file name".to_string(),
            ),
            (
                "in/missing.y4m",
                "out/o.y4m",
                "cannot resolve it".to_string(),
            ),
        ] {
            let err = check(&t, video, output).unwrap_err();
            assert!(err.contains(&expected), "{video} → {output}: {err}");
        }
    }

    #[test]
    fn relative_paths_are_refused() {
        let t = tree();
        let job = Job::new("v.y4m", "a.wav", "o.y4m", RunOptions::default());
        let err = allowed(&t).check(&job).unwrap_err();
        assert!(err.contains("the video v.y4m is a relative path"), "{err}");
    }

    #[test]
    fn no_roots_is_refused_unless_any_path_is_asked_for() {
        let err = PathPolicy::default().resolve().unwrap_err().to_string();
        assert!(err.contains("--allow-any-path"), "{err}");
        assert!(matches!(PathPolicy::AnyPath.resolve(), Ok(Allowed::Any)));
        let err = PathPolicy::Roots(PathRoots {
            inputs: vec!["/no/such/root".into()],
            output: "/tmp".into(),
        })
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("the input root /no/such/root"), "{err}");
    }
}
