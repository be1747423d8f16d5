//! Detection with tracking through a run of consecutive frames, and the face mesh on the face
//! it follows.

use std::borrow::BorrowMut;

use frame::Frame;
use progress_core::CancelToken;

use crate::FaceError;
use crate::align;
use crate::detect::{BlazeFace, Detection, FaceDetector, Rect};
use face_net::facemesh::{self, CpuFaceMesh, Mesh};

/// What detection gave for one frame.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    /// The chosen face (`None` when none, or when its mesh presence is too low).
    pub(crate) det: Option<Detection>,
    /// Faces the detector found.
    pub(crate) faces: u32,
    /// The chosen face's mesh.
    pub(crate) mesh: Option<Mesh>,
    /// The mesh's presence score, also when it rejected the face.
    pub(crate) presence: Option<f32>,
}

/// Tracking state: carried from one frame to the next, and from one batch to the next.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    track: Option<Rect>,
    last: Option<Detection>,
    /// The detection before `last`, on the previous frame (for the motion prediction).
    before: Option<Detection>,
    since_detect: u32,
}

impl Tracker {
    fn found(&mut self, best: Option<Detection>) {
        self.track = best.as_ref().map(|d| d.bbox);
        self.before = std::mem::replace(&mut self.last, best);
    }

    /// The last face moved on by the similarity between the last two frames' keypoints
    /// (constant-velocity prediction); the last face itself without two of them.
    fn predicted(&self) -> Option<Detection> {
        let last = self.last.as_ref()?;
        let Some(before) = &self.before else {
            return Some(last.clone());
        };
        let pts = |d: &Detection| -> Vec<[f64; 2]> {
            d.landmarks
                .iter()
                .take(4)
                .map(|p| [f64::from(p[0]), f64::from(p[1])])
                .collect()
        };
        let Some(step) = align::umeyama(&pts(before), &pts(last)) else {
            return Some(last.clone());
        };
        let map = |p: [f32; 2]| {
            let q = step.apply([f64::from(p[0]), f64::from(p[1])]);
            [q[0] as f32, q[1] as f32]
        };
        let [cx, cy] = map(last.bbox.centre());
        let s = step.scale() as f32;
        let (w, h) = (last.bbox.w * s, last.bbox.h * s);
        Some(Detection {
            bbox: Rect {
                x: cx - w / 2.0,
                y: cy - h / 2.0,
                w,
                h,
            },
            landmarks: last.landmarks.iter().map(|&p| map(p)).collect(),
            score: last.score,
        })
    }
}

/// The detector of one tracking worker.
pub(crate) enum Det<'a> {
    Blaze(&'a mut BlazeFace),
    Other(&'a mut dyn FaceDetector),
}

impl Det<'_> {
    fn detector(&mut self) -> &mut dyn FaceDetector {
        match self {
            Det::Blaze(d) => &mut **d,
            Det::Other(d) => &mut **d,
        }
    }
}

/// How [`track_chunk`] tracks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    /// Full detection every k-th frame.
    pub(crate) every: u32,
    /// Side of the tracking region in multiples of the last box's larger side.
    pub(crate) roi_scale: f32,
    /// Mesh presence below which a face is rejected.
    pub(crate) min_presence: f32,
}

/// Detects through `frames` in order: following the last face when there is one (falling back
/// to the whole frame when that finds nothing); on frames between full detections
/// (`every` > 1) a single BlazeFace pass from the last face, or the last detection reused.
/// With a `mesh`, runs it on the chosen face (MediaPipe's region of the detection) and drops
/// the face when the mesh's presence is below `min_presence`.
pub(crate) fn track_chunk(
    mut det: Det<'_>,
    mut mesh: Option<&mut CpuFaceMesh>,
    t: &mut Tracker,
    frames: &[Frame],
    first_index: u64,
    how: Track,
    cancel: &progress_core::CancelToken,
) -> Result<Vec<Found>, FaceError> {
    let Track {
        every,
        roi_scale,
        min_presence,
    } = how;
    let mut out = Vec::with_capacity(frames.len());
    for (i, image) in frames.iter().enumerate() {
        // Before each frame: detection and the mesh are a face chunk's long work.
        cancel.check()?;
        let index = first_index + i as u64;
        let predicted = t.predicted();
        let mut light = None;
        if let Some(last) = &t.last
            && let Some(guess) = &predicted
            && t.since_detect > 0
            && t.since_detect < every
        {
            light = match &mut det {
                Det::Blaze(b) => b.follow(image, guess, 1)?.pop(),
                Det::Other(_) => Some(last.clone()),
            };
        }
        let (best, n) = match light {
            Some(d) => (Some(d), 1),
            None => {
                let roi = t.track.map(|b| {
                    let side = b.w.max(b.h) * roi_scale;
                    let [cx, cy] = b.centre();
                    Rect {
                        x: cx - side / 2.0,
                        y: cy - side / 2.0,
                        w: side,
                        h: side,
                    }
                });
                let det = det.detector();
                let mut faces = match (&predicted, roi) {
                    (Some(guess), Some(roi)) => det.track(index, image, guess, roi)?,
                    _ => det.detect(index, image, roi)?,
                };
                if faces.is_empty() && roi.is_some() {
                    faces = det.detect(index, image, None)?;
                }
                let n = faces.len() as u32;
                t.since_detect = 0;
                (largest(faces), n)
            }
        };
        let mut found = Found {
            det: best,
            faces: n,
            mesh: None,
            presence: None,
        };
        if let (Some(m), Some(d)) = (mesh.as_deref_mut(), &found.det) {
            let fm = m.landmarks(image, &facemesh::region_from_detection(d));
            found.presence = Some(fm.presence);
            if fm.presence < min_presence {
                found.det = None;
            } else {
                found.mesh = Some(fm);
            }
        }
        t.since_detect = if found.det.is_some() {
            t.since_detect + 1
        } else {
            0
        };
        t.found(found.det.clone());
        out.push(found);
    }
    Ok(out)
}

/// Where [`track_parts`] starts.
#[derive(Clone, Copy)]
pub(crate) struct Start<'a> {
    /// The tracking state before the first frame.
    pub(crate) seed: &'a Tracker,
    /// The first frame's index in the stream.
    pub(crate) first_index: u64,
    pub(crate) how: Track,
    pub(crate) cancel: &'a CancelToken,
}

/// Tracks `frames` in consecutive parts of `chunk` frames, each on a thread of its own with
/// its own BlazeFace (from `dets`) and mesh, every part from the same `start`; `serve` runs on
/// this thread meanwhile (the GPU batcher that the parts' detectors call, or nothing). The
/// results come in the parts' order.
pub(crate) fn track_parts<B: BorrowMut<BlazeFace> + Send>(
    frames: &[Frame],
    chunk: usize,
    dets: impl IntoIterator<Item = B>,
    meshes: Vec<Option<&mut CpuFaceMesh>>,
    start: Start<'_>,
    serve: impl FnOnce(),
) -> Vec<Result<(Vec<Found>, Tracker), FaceError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = frames
            .chunks(chunk)
            .zip(dets.into_iter().zip(meshes))
            .enumerate()
            .map(|(c, (part, (mut det, mesh)))| {
                let mut t = start.seed.clone();
                let first = start.first_index + (c * chunk) as u64;
                s.spawn(move || {
                    let det = Det::Blaze(det.borrow_mut());
                    track_chunk(det, mesh, &mut t, part, first, start.how, start.cancel)
                        .map(|o| (o, t))
                })
            })
            .collect();
        serve();
        handles
            .into_iter()
            .map(|h| h.join().expect("detection thread panicked"))
            .collect()
    })
}

/// The largest face by box area wins (ties: the higher score).
fn largest(faces: Vec<Detection>) -> Option<Detection> {
    faces.into_iter().max_by(|a, b| {
        a.bbox
            .area()
            .total_cmp(&b.bbox.area())
            .then(a.score.total_cmp(&b.score))
    })
}
