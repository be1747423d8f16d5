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
    /// Renamed into place: the temporary name no longer exists.
    committed: bool,
}

fn io_error(path: &Path, e: std::io::Error) -> PipelineError {
    PipelineError::io(path, e)
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
            committed: false,
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
                Num(b.x),
                Num(b.y),
                Num(b.w),
                Num(b.h),
                Num(record.score),
                Num(m[0][0]),
                Num(m[0][1]),
                Num(m[0][2]),
                Num(m[1][0]),
                Num(m[1][1]),
                Num(m[1][2])
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

    /// Flushes and renames the file into place; on any error the temporary file is removed
    /// (when `self` drops).
    pub(crate) fn commit(mut self) -> Result<(), PipelineError> {
        let file = self.file.take().expect("committed once");
        let file = file
            .into_inner()
            .map_err(|e| io_error(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.path, e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.path).map_err(|e| io_error(&self.path, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for LandmarkLog {
    /// Not committed: nothing is left behind.
    fn drop(&mut self) {
        if !self.committed {
            self.file = None;
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
        let _ = write!(l, "[{},{}]", Num(p[0]), Num(p[1]));
    }
    l.push(']');
}

/// A number as JSON writes it: `null` when not finite (JSON has no NaN or infinity).
struct Num<T>(T);

impl<T: Into<f64> + Copy + std::fmt::Display> std::fmt::Display for Num<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.into().is_finite() {
            write!(f, "{}", self.0)
        } else {
            f.write_str("null")
        }
    }
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
    /// left; dropped before the commit (a run that failed or was cancelled): nothing at all;
    /// a number that is not finite is written as `null`.
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
        let mut odd = record(2);
        odd.found = true;
        odd.score = f32::NAN;
        let mut log = LandmarkLog::create(&dir.join("odd.jsonl")).unwrap();
        log.write(&odd).unwrap();
        log.commit().unwrap();
        let odd = std::fs::read_to_string(dir.join("odd.jsonl")).unwrap();
        assert!(odd.contains("\"score\":null"), "{odd}");
        std::fs::remove_file(dir.join("odd.jsonl")).unwrap();
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
