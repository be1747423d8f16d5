//! The "Processing faces" stage: detection with tracking, smoothing, alignment, batched warp.

use frame::{Affine2, Frame};
use gpu::Compute;
use progress_core::Phase;

use crate::FaceError;
use crate::align::{self, Alignment, MeshSmoother, Smoother, Smoothing};
use crate::batcher::{self, Proxy};
use crate::config::{DetectBackend, FaceConfig, NoFacePolicy};
use crate::detect::{BlazeFace, DecodeConfig, FaceDetector, Rect};
use crate::face_record::{FaceRecord, mouth_open};
use crate::status::{FaceAction, FaceStatus, NoFaceReason};
use crate::tracking::{Det, Found, Start, Track, Tracker, track_chunk, track_parts};
use crate::warp::{self, GpuWarp, WarpJob};
use face_net::blazeface::GpuBlazeFace;
use face_net::facemesh::CpuFaceMesh;

/// Tracking segments per batch when BlazeFace runs on the GPU: the batch is split into this
/// many runs of consecutive frames, tracked in lockstep so that each GPU submission carries
/// one inference per segment (see `batcher`).
const GPU_SEGMENTS: usize = 8;

enum Detectors {
    /// One BlazeFace per worker thread (sharing the packed plan).
    Blaze(Vec<BlazeFace>),
    /// BlazeFace on the GPU, batched over the segments of a batch.
    BlazeGpu {
        net: Box<GpuBlazeFace>,
        decode: DecodeConfig,
    },
    /// A single detector, run on the calling thread.
    Custom(Box<dyn FaceDetector>),
}

enum Warper {
    Cpu,
    Gpu(Box<GpuWarp>),
}

/// The face stage. Create once per video and feed batches of consecutive frames.
pub struct FaceProcessor {
    config: FaceConfig,
    detectors: Detectors,
    /// One face mesh per tracking worker (empty without the mesh).
    meshes: Vec<CpuFaceMesh>,
    /// The mesh's smoothing, in the face's own frame.
    mesh_smoother: MeshSmoother,
    warper: Warper,
    compute_name: String,
    next_index: u64,
    /// Tracking state at the end of the last batch.
    tracker: Tracker,
    smoother: Smoother,
    last_transform: Option<Affine2>,
    gap: u32,
}

impl std::fmt::Debug for FaceProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceProcessor")
            .field("config", &self.config)
            .field("compute", &self.compute_name)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl FaceProcessor {
    /// BlazeFace detection (the CPU network, or the WGSL network per [`FaceConfig::detect_backend`]);
    /// the warp runs on `compute`.
    pub fn new(compute: &Compute, config: FaceConfig) -> Result<Self, FaceError> {
        let on_gpu = match (config.detect_backend, compute) {
            (DetectBackend::Gpu, Compute::Gpu(ctx)) => Some(ctx),
            (DetectBackend::Auto, Compute::Gpu(ctx))
                if ctx.adapter_info().device_type != wgpu::DeviceType::Cpu =>
            {
                Some(ctx)
            }
            _ => None,
        };
        if config.decode.refine_passes == 0 {
            return Err(FaceError::Config(
                "decode.refine_passes must be positive".into(),
            ));
        }
        let detectors = match on_gpu {
            Some(ctx) => Detectors::BlazeGpu {
                net: Box::new(GpuBlazeFace::new(ctx)?),
                decode: config.decode,
            },
            None => {
                let first = BlazeFace::cpu(config.decode)?;
                let mut all = vec![first];
                for _ in 1..config.threads.max(1) {
                    all.push(all[0].clone_shared());
                }
                Detectors::Blaze(all)
            }
        };
        Self::build(compute, config, detectors)
    }

    /// Whether BlazeFace runs on the GPU (the WGSL network) rather than on the CPU (the CPU network or a
    /// custom detector).
    pub fn detects_on_gpu(&self) -> bool {
        matches!(self.detectors, Detectors::BlazeGpu { .. })
    }

    /// Any [`FaceDetector`] (e.g. a [`crate::LandmarkFile`]); the warp runs on `compute`.
    pub fn with_detector(
        compute: &Compute,
        config: FaceConfig,
        detector: Box<dyn FaceDetector>,
    ) -> Result<Self, FaceError> {
        Self::build(compute, config, Detectors::Custom(detector))
    }

    fn build(
        compute: &Compute,
        config: FaceConfig,
        detectors: Detectors,
    ) -> Result<Self, FaceError> {
        if config.resolution == 0 {
            return Err(FaceError::Config("resolution must be positive".into()));
        }
        if matches!(config.alignment, Alignment::LatentSync | Alignment::Ffhq512)
            && config.mesh.is_none()
        {
            return Err(FaceError::Config(format!(
                "alignment {} needs the face mesh (mesh is off)",
                config.alignment
            )));
        }
        let meshes = match config.mesh {
            Some(_) => {
                let first = CpuFaceMesh::new().map_err(|e| FaceError::Model(e.to_string()))?;
                let workers = match &detectors {
                    Detectors::Blaze(d) => d.len(),
                    Detectors::BlazeGpu { .. } => GPU_SEGMENTS,
                    Detectors::Custom(_) => 1,
                };
                let mut all = vec![first];
                for _ in 1..workers {
                    all.push(all[0].clone_shared());
                }
                all
            }
            None => Vec::new(),
        };
        let warper = match compute {
            Compute::Gpu(ctx) => Warper::Gpu(Box::new(GpuWarp::new(ctx.clone())?)),
            _ => Warper::Cpu,
        };
        Ok(Self {
            config,
            detectors,
            meshes,
            mesh_smoother: MeshSmoother::default(),
            warper,
            compute_name: compute.name().to_owned(),
            next_index: 0,
            tracker: Tracker::default(),
            smoother: Smoother::default(),
            last_transform: None,
            gap: 0,
        })
    }

    /// Processes the next consecutive frames: checks for cancellation first (and again before
    /// each frame's detection: a cancelled batch returns [`FaceError::Cancelled`]), then detects,
    /// aligns and warps, emits one face-status event per frame and advances `phase` by the
    /// number of frames.
    pub fn process_batch(
        &mut self,
        frames: &[Frame],
        phase: &Phase,
    ) -> Result<Vec<FaceRecord>, FaceError> {
        phase.check()?;
        let first_index = self.next_index;
        let detections = self.detect_all(frames, first_index, phase.cancel_token())?;
        let mut records = Vec::with_capacity(frames.len());
        let mut jobs = Vec::new();
        let mut statuses = Vec::with_capacity(frames.len());
        for (i, found) in detections.into_iter().enumerate() {
            let index = first_index + i as u64;
            let (record, to_crop, status) = self.align_one(index, found)?;
            if let Some(to_crop) = to_crop {
                jobs.push((i, to_crop));
            }
            records.push(record);
            statuses.push(status);
        }
        interpolate_gaps(&mut records, &mut jobs, &statuses);
        let crops = self.warp(frames, &jobs)?;
        for ((i, _), crop) in jobs.iter().zip(crops) {
            records[*i].crop = Some(crop);
        }
        for status in &statuses {
            phase.record(status);
        }
        self.next_index += frames.len() as u64;
        phase.inc(frames.len() as u64);
        Ok(records)
    }

    /// Detection (with tracking) for every frame: the chosen face and the number found.
    fn detect_all(
        &mut self,
        frames: &[Frame],
        first_index: u64,
        cancel: &progress_core::CancelToken,
    ) -> Result<Vec<Found>, FaceError> {
        let how = Track {
            every: self.config.detect_every.max(1),
            roi_scale: self.config.roi_scale,
            min_presence: self.config.mesh.map_or(0.0, |m| m.min_presence),
        };
        let seed = self.tracker.clone();
        let start = Start {
            seed: &seed,
            first_index,
            how,
            cancel,
        };
        let mut meshes: Vec<Option<&mut CpuFaceMesh>> = self.meshes.iter_mut().map(Some).collect();
        meshes.resize_with(GPU_SEGMENTS.max(self.config.threads.max(1)), || None);
        let out = match &mut self.detectors {
            Detectors::Custom(det) => {
                let mut t = seed.clone();
                let det = Det::Other(det.as_mut());
                let mesh = meshes.swap_remove(0);
                vec![
                    track_chunk(det, mesh, &mut t, frames, first_index, how, cancel)
                        .map(|o| (o, t)),
                ]
            }
            Detectors::Blaze(dets) => {
                let chunk = frames.len().div_ceil(dets.len()).max(1);
                track_parts(frames, chunk, dets.iter_mut(), meshes, start, || {})
            }
            Detectors::BlazeGpu { net, decode } => {
                let chunk = frames.len().div_ceil(GPU_SEGMENTS).max(1);
                let segments = frames.len().div_ceil(chunk);
                let (proxies, rx) = Proxy::group(segments);
                let decode = *decode;
                let dets = proxies
                    .into_iter()
                    .map(|proxy| BlazeFace::with_backend(Box::new(proxy), decode));
                track_parts(frames, chunk, dets, meshes, start, || {
                    batcher::serve(net, &rx, segments);
                })
            }
        };
        let mut all = Vec::with_capacity(frames.len());
        for r in out {
            let (part, t) = r?;
            all.extend(part);
            // Continue tracking from the batch's last frame.
            self.tracker = t;
        }
        Ok(all)
    }

    /// Smoothing, transform and the no-face policy for one frame: its record, the transform
    /// to warp it with (`None`: it passes through) and its face status.
    fn align_one(
        &mut self,
        index: u64,
        found: Found,
    ) -> Result<(FaceRecord, Option<Affine2>, FaceStatus), FaceError> {
        let r = self.config.resolution;
        let Found {
            det,
            faces,
            mesh,
            presence,
        } = found;
        let one_euro = self.config.smoothing == Smoothing::OneEuro;
        let mut points: Vec<[f32; 2]> = mesh
            .map(|m| m.points.iter().map(|p| [p[0], p[1]]).collect())
            .unwrap_or_default();
        let aligned = det.and_then(|mut d| {
            if one_euro {
                self.smoother
                    .filter_landmarks(&self.config.one_euro, &mut d.landmarks[..4]);
                self.mesh_smoother
                    .filter(&self.config.one_euro, &mut points);
            }
            let mut t = match self.config.alignment {
                Alignment::LatentSync => align::latentsync_to_crop(&points, r)?,
                Alignment::Ffhq512 => align::ffhq_to_crop(&points, r)?,
                _ => align::to_crop(&d.landmarks, r)?,
            };
            if self.config.smoothing == Smoothing::TranslationEma {
                self.smoother.filter_translation(&mut t);
            }
            Some((d, t))
        });
        let status = |action, reason, record: &FaceRecord| FaceStatus {
            frame: index,
            faces,
            action,
            mouth_open: record.mouth_open,
            presence: record.presence,
            reason,
        };
        if let Some((d, t)) = aligned {
            self.last_transform = Some(t);
            self.gap = 0;
            let record = FaceRecord {
                index,
                found: true,
                crop: None,
                to_crop: t,
                bbox: d.bbox,
                landmarks: d.landmarks,
                score: d.score,
                mouth_open: mouth_open(&points),
                mesh: points,
                presence,
            };
            let status = status(FaceAction::Aligned, None, &record);
            return Ok((record, Some(t), status));
        }
        self.smoother.reset();
        self.mesh_smoother.reset();
        self.gap += 1;
        let reason = Some(if faces > 0 && presence.is_some() {
            NoFaceReason::LowPresence
        } else {
            NoFaceReason::NotDetected
        });
        let mut record = FaceRecord {
            index,
            found: false,
            crop: None,
            to_crop: Affine2::IDENTITY,
            bbox: Rect::default(),
            landmarks: Vec::new(),
            score: 0.0,
            mesh: Vec::new(),
            mouth_open: None,
            presence,
        };
        let held = match self.config.no_face {
            NoFacePolicy::Error => return Err(FaceError::NoFace { frame: index }),
            NoFacePolicy::Interpolate { max_gap } if self.gap <= max_gap => self.last_transform,
            _ => None,
        };
        let Some(t) = held else {
            let status = status(FaceAction::PassedThrough, reason, &record);
            return Ok((record, None, status));
        };
        record.to_crop = t;
        let status = status(FaceAction::Interpolated, reason, &record);
        Ok((record, Some(t), status))
    }

    fn warp(
        &mut self,
        frames: &[Frame],
        jobs: &[(usize, Affine2)],
    ) -> Result<Vec<Frame>, FaceError> {
        let r = self.config.resolution;
        // FaceFusion's crop replicates the frame's edge (`BORDER_REPLICATE`); the others keep
        // the reference's grey 127.
        let replicate = self.config.alignment == Alignment::Ffhq512;
        // LatentSync's crop: the reference's two Lanczos-4 passes, on the CPU.
        let latentsync = self.config.alignment == Alignment::LatentSync;
        match &mut self.warper {
            Warper::Gpu(g) if !latentsync => {
                let refs: Vec<&Frame> = frames.iter().collect();
                let jobs: Vec<WarpJob> = jobs
                    .iter()
                    .map(|&(frame, to_crop)| WarpJob {
                        frame,
                        to_crop,
                        replicate,
                    })
                    .collect();
                g.run(&refs, &jobs, r)
            }
            _ => {
                let threads = self.config.threads.max(1);
                let chunk = jobs.len().div_ceil(threads).max(1);
                let parts: Vec<Result<Vec<Frame>, FaceError>> = std::thread::scope(|s| {
                    let handles: Vec<_> = jobs
                        .chunks(chunk)
                        .map(|part| {
                            s.spawn(move || {
                                part.iter()
                                    .map(|(i, t)| {
                                        if latentsync {
                                            warp::warp_latentsync(&frames[*i], t, r)
                                        } else {
                                            let border = warp::Border::replicated_if(replicate);
                                            warp::warp_cpu(&frames[*i], t, r, border)
                                        }
                                    })
                                    .collect()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("warp thread panicked"))
                        .collect()
                });
                let mut out = Vec::with_capacity(jobs.len());
                for p in parts {
                    out.extend(p?);
                }
                Ok(out)
            }
        }
    }
}

/// Replaces the held transforms of each run of [`FaceAction::Interpolated`] frames that the
/// batch closes with a found face by the linear blend of the transforms on either side (the
/// run's first record holds the one before it). The blend of two similarities, entry by
/// entry, is again a similarity.
fn interpolate_gaps(
    records: &mut [FaceRecord],
    jobs: &mut [(usize, Affine2)],
    statuses: &[FaceStatus],
) {
    let actions: Vec<FaceAction> = statuses.iter().map(|s| s.action).collect();
    let mut i = 0;
    while i < actions.len() {
        if actions[i] != FaceAction::Interpolated {
            i += 1;
            continue;
        }
        let start = i;
        while i < actions.len() && actions[i] == FaceAction::Interpolated {
            i += 1;
        }
        if i == actions.len() || actions[i] != FaceAction::Aligned {
            continue;
        }
        let (from, to) = (records[start].to_crop, records[i].to_crop);
        let steps = (i - start + 1) as f64;
        for (k, record) in records[start..i].iter_mut().enumerate() {
            let w = (k + 1) as f64 / steps;
            let mut t = from;
            for (row, (a, b)) in t.m.iter_mut().zip(from.m.iter().zip(&to.m)) {
                for (v, (x, y)) in row.iter_mut().zip(a.iter().zip(b)) {
                    *v = x + (y - x) * w;
                }
            }
            record.to_crop = t;
            if let Some(job) = jobs.iter_mut().find(|(j, _)| *j == start + k) {
                job.1 = t;
            }
        }
    }
}

#[cfg(test)]
mod tests;
