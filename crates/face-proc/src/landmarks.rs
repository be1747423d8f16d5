//! [`LandmarkFile`]: faces read from a JSON file written by any external detector.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use frame::Frame;
use serde::Deserialize;

use crate::FaceError;
use crate::detect::{Detection, FaceDetector, Rect};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    frames: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameJson {
    index: u64,
    faces: Vec<FaceJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaceJson {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    landmarks: Vec<[f32; 2]>,
    #[serde(default = "one")]
    score: f32,
}

fn one() -> f32 {
    1.0
}

/// Faces per frame from a JSON file, as a [`FaceDetector`] (it ignores the pixels).
///
/// Format (frames not listed have no face; `score` is optional, default 1):
/// ```json
/// {"frames": [
///   {"index": 0, "faces": [
///     {"box": [x, y, w, h], "landmarks": [[x, y], ...], "score": 0.9}
///   ]}
/// ]}
/// ```
/// Coordinates are source-frame pixels (pixel centres at integers). `landmarks` is either
/// BlazeFace's 6 points (eye on the image left, eye on the image right, nose tip, mouth centre,
/// ear, ear) or the common 5-point layout of RetinaFace/InsightFace (eye on the image left, eye
/// on the image right, nose tip, mouth corner left, mouth corner right; the mouth centre is the
/// corners' mean).
#[derive(Debug, Clone)]
pub struct LandmarkFile {
    path: PathBuf,
    frames: HashMap<u64, Vec<Detection>>,
}

impl LandmarkFile {
    /// Reads and validates the whole file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FaceError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|e| FaceError::LandmarkFile {
            path: path.clone(),
            frame: None,
            why: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the contents of `path` (the path only names the input in errors).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self, FaceError> {
        let path = path.into();
        let err = |frame: Option<String>, why: String| FaceError::LandmarkFile {
            path: path.clone(),
            frame,
            why,
        };
        let file: FileJson = serde_json::from_str(text).map_err(|e| err(None, e.to_string()))?;
        let mut frames = HashMap::new();
        for (pos, value) in file.frames.into_iter().enumerate() {
            let name = value
                .get("index")
                .and_then(serde_json::Value::as_u64)
                .map_or_else(|| format!("entry {pos}"), |i| format!("index {i}"));
            let f: FrameJson = serde_json::from_value(value)
                .map_err(|e| err(Some(name.clone()), e.to_string()))?;
            let mut faces = Vec::with_capacity(f.faces.len());
            for (k, face) in f.faces.into_iter().enumerate() {
                let landmarks = match face.landmarks.len() {
                    6 => face.landmarks,
                    5 => {
                        let l = &face.landmarks;
                        let mouth = [(l[3][0] + l[4][0]) / 2.0, (l[3][1] + l[4][1]) / 2.0];
                        vec![l[0], l[1], l[2], mouth]
                    }
                    n => {
                        return Err(err(
                            Some(name),
                            format!("face {k} has {n} landmarks, expected 5 or 6"),
                        ));
                    }
                };
                let all = face.bbox.iter().chain(landmarks.iter().flatten());
                if all.clone().any(|v| !v.is_finite()) || face.bbox[2] <= 0.0 || face.bbox[3] <= 0.0
                {
                    return Err(err(
                        Some(name),
                        format!("face {k} has a non-finite value or an empty box"),
                    ));
                }
                let [x, y, w, h] = face.bbox;
                faces.push(Detection {
                    bbox: Rect { x, y, w, h },
                    landmarks,
                    score: face.score,
                });
            }
            if frames.insert(f.index, faces).is_some() {
                return Err(err(Some(name), "frame listed twice".into()));
            }
        }
        Ok(Self { path, frames })
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FaceDetector for LandmarkFile {
    fn detect(
        &mut self,
        index: u64,
        _image: &Frame,
        _roi: Option<Rect>,
    ) -> Result<Vec<Detection>, FaceError> {
        Ok(self.frames.get(&index).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(text: &str, expected: &str) {
        let e = LandmarkFile::parse("faces.json", text)
            .unwrap_err()
            .to_string();
        assert_eq!(e, expected);
    }

    #[test]
    fn parses_both_layouts_and_missing_frames_are_empty() {
        let text = r#"{"frames":[
            {"index":0,"faces":[{"box":[10,20,30,40],"landmarks":[[1,2],[3,4],[5,6],[7,8],[9,10],[11,12]],"score":0.9}]},
            {"index":2,"faces":[{"box":[0,0,5,5],"landmarks":[[1,1],[3,1],[2,2],[1,3],[3,5]]}]}
        ]}"#;
        let mut f = LandmarkFile::parse("faces.json", text).unwrap();
        let img = Frame::filled(4, 4, [0; 3]);
        let d0 = f.detect(0, &img, None).unwrap();
        assert_eq!(d0.len(), 1);
        assert_eq!(
            d0[0].bbox,
            Rect {
                x: 10.0,
                y: 20.0,
                w: 30.0,
                h: 40.0
            }
        );
        assert_eq!(d0[0].score, 0.9);
        assert!(f.detect(1, &img, None).unwrap().is_empty());
        let d2 = f.detect(2, &img, None).unwrap();
        assert_eq!(
            d2[0].landmarks,
            vec![[1.0, 1.0], [3.0, 1.0], [2.0, 2.0], [2.0, 4.0]]
        );
        assert_eq!(d2[0].score, 1.0);
    }

    #[test]
    fn errors_name_file_and_frame() {
        check_err(
            r#"{"frames":[{"index":0,"faces":[]},{"index":7,"faces":[{"box":[0,0,1,1],"landmarks":[[0,0]]}]}]}"#,
            "landmark file faces.json, frame index 7: face 0 has 1 landmarks, expected 5 or 6",
        );
        check_err(
            r#"{"frames":[{"faces":[]}]}"#,
            "landmark file faces.json, frame entry 0: missing field `index`",
        );
        check_err(
            r#"{"frames":[{"index":3,"faces":[{"box":[0,0,-1,1],"landmarks":[[0,0],[1,1],[2,2],[3,3],[4,4]]}]}]}"#,
            "landmark file faces.json, frame index 3: face 0 has a non-finite value or an empty box",
        );
        check_err(
            r#"{"frames":[{"index":1,"faces":[]},{"index":1,"faces":[]}]}"#,
            "landmark file faces.json, frame index 1: frame listed twice",
        );
        check_err(
            "{",
            "landmark file faces.json: EOF while parsing an object at line 1 column 1",
        );
    }
}
