//! Write under a temporary name next to the destination; rename on success, remove on drop.

use std::path::{Path, PathBuf};

use crate::MediaError;

/// A temporary output (file or folder) that becomes `dest` on [`commit`](Self::commit) and
/// disappears if dropped first.
#[derive(Debug)]
pub(crate) struct TempOutput {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl TempOutput {
    /// Picks `<dir>/.<name>.facesync-tmp-<pid>-<n>[.<ext>]` (the extension is kept so that
    /// tools which choose a format from it, like ffmpeg, still can).
    pub(crate) fn new(dest: &Path) -> Result<Self, MediaError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dest: PathBuf = dest.components().collect();
        let name = dest
            .file_name()
            .ok_or_else(|| MediaError::Invalid {
                path: dest.clone(),
                reason: "the output path has no file name".into(),
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(MediaError::Invalid {
                path: dest.clone(),
                reason: format!("the output folder {} does not exist", dir.display()),
            });
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stem = format!(".{name}.facesync-tmp-{}-{n}", std::process::id());
        let tmp_name = match dest.extension() {
            Some(ext) => format!("{stem}.{}", ext.to_string_lossy()),
            None => stem,
        };
        Ok(Self {
            tmp: dir.join(tmp_name),
            dest,
            committed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.tmp
    }

    pub(crate) fn dest(&self) -> &Path {
        &self.dest
    }

    /// Moves the temporary output to its destination, replacing what was there.
    pub(crate) fn commit(mut self) -> Result<(), MediaError> {
        if self.tmp.is_dir() && self.dest.is_dir() {
            // rename() cannot replace a non-empty folder: move the old one aside first.
            let old = self.tmp.with_extension("old");
            std::fs::rename(&self.dest, &old).map_err(|e| MediaError::io(&self.dest, e))?;
            std::fs::rename(&self.tmp, &self.dest).map_err(|e| MediaError::io(&self.dest, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.tmp, &self.dest).map_err(|e| MediaError::io(&self.dest, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if self.tmp.is_dir() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        } else {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
