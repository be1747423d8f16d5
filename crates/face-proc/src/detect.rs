//! Face detection: the [`FaceDetector`] trait, BlazeFace decoding (anchors, sigmoid scores,
//! MediaPipe's weighted non-max suppression) and the BlazeFace detector with its back-ends.

use frame::Frame;

use crate::FaceError;
use crate::model::{self, INPUT_LEN, Letterbox, NUM_ANCHORS, NUM_COORDS, RawOutput};

/// An axis-aligned box in source-frame pixels (pixel centres at integer coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Rect {
    /// Area (`w * h`).
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Centre point.
    pub fn centre(&self) -> [f32; 2] {
        [self.x + self.w / 2.0, self.y + self.h / 2.0]
    }

    pub(crate) fn iou(&self, other: &Rect) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// One detected face in source-frame pixels.
///
/// `landmarks` follow BlazeFace's order: eye on the image left (the subject's right eye), eye
/// on the image right, nose tip, mouth centre, ear on the image left, ear on the image right.
/// Alignment uses the first four.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Face box.
    pub bbox: Rect,
    /// Keypoints, at least four (see above).
    pub landmarks: Vec<[f32; 2]>,
    /// Confidence in [0, 1].
    pub score: f32,
}

/// A source of faces for a frame. `roi` is a hint: a square region where the face was last
/// seen; detectors that cannot use it ignore it. `index` is the frame's index in the stream,
/// for sources that read precomputed landmarks.
pub trait FaceDetector: Send {
    /// The faces in `image` (any order; the stage picks the largest).
    fn detect(
        &mut self,
        index: u64,
        image: &Frame,
        roi: Option<Rect>,
    ) -> Result<Vec<Detection>, FaceError>;
}

/// Decoding parameters (MediaPipe's defaults for the front model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeConfig {
    /// Minimum sigmoid score to keep a candidate (MediaPipe: 0.75).
    pub min_score: f32,
    /// IoU above which candidates merge in weighted NMS (MediaPipe: 0.3).
    pub iou_threshold: f32,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            min_score: 0.75,
            iou_threshold: 0.3,
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}

/// Decodes one raw output into detections in normalised input coordinates (0..1), then maps
/// them through `letterbox` into source pixels.
pub(crate) fn decode(
    raw: &RawOutput,
    anchors: &[[f32; 2]],
    letterbox: &Letterbox,
    cfg: &DecodeConfig,
) -> Vec<Detection> {
    debug_assert_eq!(raw.scores.len(), NUM_ANCHORS);
    let scale = model::INPUT_SIDE as f32;
    let mut candidates: Vec<Detection> = Vec::new();
    for (i, (&logit, anchor)) in raw.scores.iter().zip(anchors).enumerate() {
        let score = sigmoid(logit);
        if score < cfg.min_score {
            continue;
        }
        let r = &raw.regressors[i * NUM_COORDS..(i + 1) * NUM_COORDS];
        let cx = r[0] / scale + anchor[0];
        let cy = r[1] / scale + anchor[1];
        let (w, h) = (r[2] / scale, r[3] / scale);
        // The box is axis-aligned in the (possibly rotated) region: keep its size, map its centre.
        let centre = letterbox.to_source([cx, cy]);
        let (bw, bh) = (w * letterbox.side, h * letterbox.side);
        let landmarks = (0..6)
            .map(|k| {
                letterbox.to_source([
                    r[4 + 2 * k] / scale + anchor[0],
                    r[5 + 2 * k] / scale + anchor[1],
                ])
            })
            .collect();
        candidates.push(Detection {
            bbox: Rect {
                x: centre[0] - bw / 2.0,
                y: centre[1] - bh / 2.0,
                w: bw,
                h: bh,
            },
            landmarks,
            score,
        });
    }
    weighted_nms(candidates, cfg.iou_threshold)
}

type Numbered = (usize, Detection);

/// MediaPipe's weighted non-max suppression: take the best remaining candidate, gather every
/// remaining candidate overlapping it by more than `iou`, replace the group by the
/// score-weighted mean of its boxes and keypoints (keeping the best score).
pub(crate) fn weighted_nms(mut candidates: Vec<Detection>, iou: f32) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = candidates.first().cloned() {
        let (group, rest): (Vec<Numbered>, Vec<Numbered>) = candidates
            .into_iter()
            .enumerate()
            .partition(|(i, c)| *i == 0 || c.bbox.iou(&best.bbox) > iou);
        candidates = rest.into_iter().map(|(_, c)| c).collect();
        let group: Vec<Detection> = group.into_iter().map(|(_, c)| c).collect();
        let total: f32 = group.iter().map(|d| d.score).sum();
        let mut merged = Detection {
            bbox: Rect::default(),
            landmarks: vec![[0.0; 2]; best.landmarks.len()],
            score: best.score,
        };
        for d in &group {
            let w = d.score / total;
            merged.bbox.x += d.bbox.x * w;
            merged.bbox.y += d.bbox.y * w;
            merged.bbox.w += d.bbox.w * w;
            merged.bbox.h += d.bbox.h * w;
            for (m, p) in merged.landmarks.iter_mut().zip(&d.landmarks) {
                m[0] += p[0] * w;
                m[1] += p[1] * w;
            }
        }
        out.push(merged);
    }
    out
}

/// Runs BlazeFace on a batch of preprocessed inputs.
pub(crate) trait BlazeFaceBackend: Send {
    /// `inputs` holds `inputs.len() / INPUT_LEN` NHWC inputs; one raw output per input.
    fn run(&mut self, inputs: &[f32]) -> Result<Vec<RawOutput>, FaceError>;
    /// Another handle on the same model (for another worker thread).
    fn boxed_clone(&self) -> Box<dyn BlazeFaceBackend>;
}

/// The CPU back-end (tract). The plan is shared (`Arc` inside), so clones are cheap.
#[derive(Debug, Clone)]
pub(crate) struct TractBackend {
    plan: model::TractPlan,
}

impl TractBackend {
    pub(crate) fn new() -> Result<Self, FaceError> {
        let plan = model::load_tract().map_err(|e| FaceError::Model(format!("{e:#}")))?;
        Ok(Self { plan })
    }
}

impl BlazeFaceBackend for TractBackend {
    fn run(&mut self, inputs: &[f32]) -> Result<Vec<RawOutput>, FaceError> {
        inputs
            .chunks_exact(INPUT_LEN)
            .map(|one| {
                model::run_tract(&self.plan, one).map_err(|e| FaceError::Model(format!("{e:#}")))
            })
            .collect()
    }

    fn boxed_clone(&self) -> Box<dyn BlazeFaceBackend> {
        Box::new(self.clone())
    }
}

/// MediaPipe BlazeFace (short-range) as a [`FaceDetector`]: letterboxes the region hint (a
/// square around it) or else the whole frame to 128×128, runs the network, decodes. When the
/// whole frame gives nothing and the frame is wide (aspect ≥ 1.2), it also scans overlapping
/// squares of the short side (faces below ~20 px in the 128 px input are missed otherwise).
pub struct BlazeFace {
    backend: Box<dyn BlazeFaceBackend>,
    anchors: Vec<[f32; 2]>,
    config: DecodeConfig,
    input: Vec<f32>,
}

impl std::fmt::Debug for BlazeFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlazeFace")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BlazeFace {
    /// The CPU (tract) detector.
    pub fn cpu(config: DecodeConfig) -> Result<Self, FaceError> {
        Ok(Self::with_backend(Box::new(TractBackend::new()?), config))
    }

    pub(crate) fn with_backend(backend: Box<dyn BlazeFaceBackend>, config: DecodeConfig) -> Self {
        Self {
            backend,
            anchors: model::anchors(),
            config,
            input: vec![0.0; INPUT_LEN],
        }
    }

    /// Another detector on the same loaded model.
    pub(crate) fn clone_shared(&self) -> Self {
        Self::with_backend(self.backend.boxed_clone(), self.config)
    }

    /// Detects in `region` of `image` (letterboxed to the network input).
    pub(crate) fn detect_region(
        &mut self,
        image: &Frame,
        region: &Letterbox,
    ) -> Result<Vec<Detection>, FaceError> {
        model::preprocess(image, region, &mut self.input);
        let raw = self.backend.run(&self.input)?;
        let raw = raw
            .first()
            .ok_or_else(|| FaceError::Model("blazeface back-end returned no output".into()))?;
        Ok(decode(raw, &self.anchors, region, &self.config))
    }
}

impl FaceDetector for BlazeFace {
    fn detect(
        &mut self,
        _index: u64,
        image: &Frame,
        roi: Option<Rect>,
    ) -> Result<Vec<Detection>, FaceError> {
        if let Some(r) = roi {
            let [cx, cy] = r.centre();
            let faces =
                self.detect_region(image, &Letterbox::centred(cx, cy, r.w.max(r.h), 0.0))?;
            return self.refine(image, faces, 1);
        }
        let (w, h) = (image.width(), image.height());
        let faces = self.detect_region(image, &Letterbox::whole(w, h))?;
        if !faces.is_empty() {
            return self.refine(image, faces, 2);
        }
        // Nothing in the whole (letterboxed) frame: a small face in a wide frame may be too
        // small at 128 px, so scan overlapping squares of the short side along the long one.
        let (long, short) = (w.max(h) as f32, w.min(h) as f32);
        if long < 1.2 * short {
            return Ok(faces);
        }
        let tiles = (long / short).ceil() as usize + 1;
        let step = (long - short) / (tiles - 1) as f32;
        let mut all = Vec::new();
        for t in 0..tiles {
            let along = t as f32 * step - 0.5;
            let region = if w >= h {
                Letterbox {
                    left: along,
                    top: -0.5,
                    side: short,
                    angle: 0.0,
                }
            } else {
                Letterbox {
                    left: -0.5,
                    top: along,
                    side: short,
                    angle: 0.0,
                }
            };
            all.extend(self.detect_region(image, &region)?);
        }
        let faces = weighted_nms(all, self.config.iou_threshold);
        self.refine(image, faces, 2)
    }
}

impl BlazeFace {
    /// Re-detects each face (at most 4) `passes` times in a square region 2.2× its box,
    /// rotated so that its eye line is horizontal: a face found in a downscaled whole frame
    /// has coarse keypoints (a 100 px face in a 1280 px frame is 10 px at the network input),
    /// and BlazeFace's keypoints drift on tilted faces; upright in its own region the face
    /// fills a third of the input. Keeps the previous estimate when a pass finds nothing
    /// overlapping it.
    fn refine(
        &mut self,
        image: &Frame,
        faces: Vec<Detection>,
        passes: usize,
    ) -> Result<Vec<Detection>, FaceError> {
        let mut out = Vec::with_capacity(faces.len());
        for (i, coarse) in faces.into_iter().enumerate() {
            if i >= 4 {
                out.push(coarse);
                continue;
            }
            let mut anchor = coarse;
            for _ in 0..passes {
                let [cx, cy] = anchor.bbox.centre();
                let side = anchor.bbox.w.max(anchor.bbox.h) * 2.2;
                let (l, r) = (anchor.landmarks[0], anchor.landmarks[1]);
                let angle = (r[1] - l[1]).atan2(r[0] - l[0]);
                let region = Letterbox::centred(cx, cy, side, angle);
                let fine = self.detect_region(image, &region)?;
                let best = fine
                    .into_iter()
                    .map(|d| (d.bbox.iou(&anchor.bbox), d))
                    .filter(|(iou, _)| *iou > 0.3)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                match best {
                    Some((_, d)) => anchor = d,
                    None => break,
                }
            }
            out.push(anchor);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::astronaut;

    #[test]
    fn finds_the_astronaut_face() {
        let img = astronaut();
        let mut det = BlazeFace::cpu(DecodeConfig::default()).unwrap();
        let faces = det.detect(0, &img, None).unwrap();
        assert_eq!(faces.len(), 1, "{faces:?}");
        let f = &faces[0];
        let b = f.bbox;
        // Reference box (scikit-image docs): x 173, y 68, 99×99; tolerance 15 px per edge/side.
        for (got, want) in [(b.x, 173.0), (b.y, 68.0), (b.w, 99.0), (b.h, 99.0)] {
            assert!((got - want).abs() < 15.0, "box {b:?}");
        }
        let l = &f.landmarks;
        // Eyes left/right of each other, above the nose, above the mouth; all inside the box.
        assert!(l[0][0] < l[1][0], "{l:?}");
        assert!(l[0][1].max(l[1][1]) < l[2][1] && l[2][1] < l[3][1], "{l:?}");
        for p in &l[..4] {
            assert!(
                p[0] > b.x && p[0] < b.x + b.w && p[1] > b.y && p[1] < b.y + b.h,
                "{l:?}"
            );
        }
        assert!(f.score > 0.9, "score {}", f.score);
    }

    #[test]
    fn no_face_in_flat_or_noise_frames() {
        let mut det = BlazeFace::cpu(DecodeConfig::default()).unwrap();
        let flat = Frame::filled(320, 240, [128, 128, 128]);
        assert!(det.detect(0, &flat, None).unwrap().is_empty());
        let mut state = 12345u32;
        let noise: Vec<u8> = (0..320 * 240 * 3)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        let noise = Frame::new(320, 240, noise).unwrap();
        assert!(det.detect(0, &noise, None).unwrap().is_empty());
    }

    #[test]
    fn roi_detection_agrees_with_whole_frame() {
        let img = astronaut();
        let mut det = BlazeFace::cpu(DecodeConfig::default()).unwrap();
        let whole = det.detect(0, &img, None).unwrap();
        let roi = Rect {
            x: 113.0,
            y: 8.0,
            w: 220.0,
            h: 220.0,
        };
        let near = det.detect(0, &img, Some(roi)).unwrap();
        assert_eq!(near.len(), 1);
        let (a, b) = (whole[0].bbox.centre(), near[0].bbox.centre());
        assert!(
            (a[0] - b[0]).abs() < 6.0 && (a[1] - b[1]).abs() < 6.0,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn nms_merges_overlaps_weighted_by_score() {
        let d = |x: f32, score: f32| Detection {
            bbox: Rect {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            landmarks: vec![[x, 0.0]],
            score,
        };
        let out = weighted_nms(vec![d(0.0, 0.9), d(2.0, 0.3), d(50.0, 0.8)], 0.3);
        assert_eq!(out.len(), 2);
        assert!((out[0].bbox.x - 0.5).abs() < 1e-5 && out[0].score == 0.9);
        assert_eq!(out[1].bbox.x, 50.0);
    }

    #[test]
    fn anchors_match_mediapipe_layout() {
        let a = model::anchors();
        assert_eq!(a.len(), NUM_ANCHORS);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [1.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[517], a[512]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
    }
}
