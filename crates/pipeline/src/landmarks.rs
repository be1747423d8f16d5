//! `PipelineConfig::landmarks_out`: the faces the run used, one JSON line per frame, written
//! beside the output and renamed into place only when the run succeeds.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use face_proc::FaceRecord;

use crate::PipelineError;

/// The landmarks file being written (a temporary name until [`LandmarkLog::commit`]).
#[derive(Debug)]
pub(crate) struct LandmarkLog {
    path: PathBuf,
    temp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    line: String,
}

fn io_error(path: &Path, e: std::io::Error) -> PipelineError {
    PipelineError::Config(format!("landmarks file {}: {e}", path.display()))
}

impl LandmarkLog {
    pub(crate) fn create(path: &Path) -> Result<Self, PipelineError> {
        let name = path.file_name().ok_or_else(|| {
            PipelineError::Config(format!(
                "landmarks file {}: not a file name",
                path.display()
            ))
        })?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(".facesync-partial");
        let temp = path.with_file_name(temp_name);
        let file = std::fs::File::create(&temp).map_err(|e| io_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            file: Some(std::io::BufWriter::new(file)),
            line: String::new(),
        })
    }

    /// One line: `{"frame": i, "faces": [...]}`, the face (when found) with its box
    /// `[x, y, w, h]`, detection score, the 2×3 frame → crop map, and (with a mesh) the 5
    /// FaceFusion points, the 68 points and the 468 mesh points, in frame pixels.
    pub(crate) fn write(&mut self, record: &FaceRecord) -> Result<(), PipelineError> {
        let l = &mut self.line;
        l.clear();
        let _ = write!(l, "{{\"frame\":{},\"faces\":[", record.index);
        if record.found {
            let b = &record.bbox;
            let m = record.to_crop.m;
            let _ = write!(
                l,
                "{{\"box\":[{},{},{},{}],\"score\":{},\"to_crop\":[[{},{},{}],[{},{},{}]]",
                b.x,
                b.y,
                b.w,
                b.h,
                record.score,
                m[0][0],
                m[0][1],
                m[0][2],
                m[1][0],
                m[1][1],
                m[1][2]
            );
            if let Some(lm68) = face_proc::landmarks_68(&record.mesh) {
                if let Some(lm5) = face_proc::landmarks_5_from_68(&lm68) {
                    points(l, "points5", &lm5);
                }
                points(l, "points68", &lm68);
                points(l, "mesh", &record.mesh);
            }
            l.push('}');
        }
        l.push_str("]}\n");
        let file = self.file.as_mut().expect("written before commit");
        file.write_all(l.as_bytes())
            .map_err(|e| io_error(&self.path, e))
    }

    /// Flushes and renames the file into place.
    pub(crate) fn commit(mut self) -> Result<(), PipelineError> {
        let file = self.file.take().expect("committed once");
        let file = file
            .into_inner()
            .map_err(|e| io_error(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.path, e))?;
        std::fs::rename(&self.temp, &self.path).map_err(|e| io_error(&self.path, e))
    }
}

impl Drop for LandmarkLog {
    /// Not committed: nothing is left behind.
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn points(l: &mut String, key: &str, pts: &[[f32; 2]]) {
    let _ = write!(l, ",\"{key}\":[");
    for (i, p) in pts.iter().enumerate() {
        if i > 0 {
            l.push(',');
        }
        let _ = write!(l, "[{},{}]", p[0], p[1]);
    }
    l.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u64) -> FaceRecord {
        FaceRecord {
            index,
            found: false,
            crop: None,
            to_crop: frame::Affine2::IDENTITY,
            bbox: face_proc::Rect::default(),
            landmarks: Vec::new(),
            score: 0.0,
            mesh: Vec::new(),
            mouth_open: None,
            presence: None,
        }
    }

    /// Committed: the file holds one line per frame under its own name and nothing else is
    /// left; dropped before the commit (a run that failed or was cancelled): nothing at all.
    #[test]
    fn written_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("facesync-landmarks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("faces.jsonl");
        let mut log = LandmarkLog::create(&path).unwrap();
        log.write(&record(0)).unwrap();
        log.write(&record(1)).unwrap();
        log.commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"frame\":0,\"faces\":[]}\n{\"frame\":1,\"faces\":[]}\n"
        );
        let failed = dir.join("failed.jsonl");
        let mut log = LandmarkLog::create(&failed).unwrap();
        log.write(&record(0)).unwrap();
        drop(log);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["faces.jsonl"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
