//! Stage "Restoring faces": paste each generated R×R face back into its original frame with
//! a soft, eroded mask, the way LatentSync's `restore_img` does, but only over the face's
//! bounding region and without the intermediate resize.
//!
//! # Why
//! The reference resizes the R×R face back to the crop size (bicubic), warps it into the
//! frame, warps a mask of ones, erodes and blurs it over the *whole* frame and blends. Most of
//! that work touches pixels far from the face. Here the face-proc stage hands over one
//! [`Affine2`] per frame that maps frame pixels straight to R×R face coordinates (the alignment
//! transform composed with the crop→R scale), so the face is sampled directly with bilinear
//! interpolation (**deviation**: no bicubic crop-size resize, one bilinear resampling instead
//! of two), and every per-pixel step runs only inside the warped face's bounding box padded by
//! the blur radius.
//!
//! # The mask, step by step (what is reproduced, and how)
//! For each frame pixel `p` let `q = to_crop(p)` (face coordinates, pixel centres).
//! 1. `mask(p)` = bilinear sample of an R×R image of ones at `q`, zero outside (OpenCV
//!    `warpAffine(ones, inv, BORDER_CONSTANT 0)`; computed exactly in f32, where OpenCV
//!    quantises the weights to 1/32).
//! 2. `mask_e` = erosion of `mask` with a 2×2 kernel, anchor at (1, 1): the minimum over
//!    offsets {-1, 0}². As in `cv2.erode`, pixels outside the frame do not erode (+∞ border).
//! 3. `w_edge = floor(sqrt(Σ mask_e)) / 20` (integer division), the sum over the float values
//!    of the eroded mask, accumulated in f64 on the CPU for both paths (it is one scalar per
//!    face and decides the kernel sizes, so both paths must agree on it).
//! 4. `centre` = erosion of `mask_e` with a `2·w_edge` square (anchor `w_edge`, offsets
//!    `-w_edge ..= w_edge-1`). For `w_edge = 0` OpenCV receives an empty kernel and then uses
//!    its default 3×3 element; that is reproduced (offsets -1..=1).
//! 5. `soft` = Gaussian blur of `centre` with `k = 2·w_edge+1`, separable (rows, then
//!    columns), border `BORDER_REFLECT_101` at the frame edges; the weights follow
//!    `cv2.getGaussianKernel(k, 0)`: OpenCV's fixed tables for k = 1, 3, 5, 7 and
//!    `sigma = 0.3·((k−1)·0.5−1)+0.8` otherwise, normalised to sum 1.
//! 6. `out = round(soft·face' + (1−soft)·frame)` per channel, where `face'` is the bilinear
//!    sample of the face at `q` with border 127. The reference truncates (`astype(uint8)`) and
//!    also multiplies `face'` by `mask_e`; we round as the issue asks, and use `face'` alone
//!    (`soft` is zero wherever `mask_e` is below one except within one pixel of the fractional
//!    edge, where the difference is below 1 LSB in practice).
//!
//! Where `soft == 0` the output equals the frame bit for bit; frames without a face (`None`)
//! are not touched at all.
//!
//! # Mesh mask (optional, per face)
//! A [`FacePaste::mask`] (the pipeline gives the face mesh's lower-face hull for models that
//! edit only the mouth region) multiplies `soft` by the mask's weight at `q` (a convex polygon
//! in face pixels, feathered inwards): outside the polygon the frame keeps its pixels bit for
//! bit, so the rest of the crop is not resampled through the two warps. LatentSync's faces
//! come without one (its own mask semantics, as above).
//!
//! # FaceFusion's paste (optional, per face)
//! A face with [`FacePaste::weights`] is pasted the way FaceFusion's lip syncer pastes
//! (`face_helper.paste_back`): its weights (an R×R image, e.g. [`FaceWeights::facefusion_lower_face`]
//! or [`FaceWeights::facefusion_box`]) and the face are warped into the frame with OpenCV's
//! bilinear arithmetic ([`frame::cv`]) and blended there, truncated to 8 bits; none of the
//! steps above apply. This runs on the CPU whatever the compute (one warp of the face's
//! region per frame).
//!
//! # Compute paths
//! [`Restorer::new`] takes a [`gpu::Compute`]: with `Compute::Gpu` every batch runs as WGSL
//! compute shaders (`crates/restore/shaders/restore_warp.wgsl`, `restore_erode.wgsl`,
//! `restore_blur.wgsl`, each compiled after their shared prologue `restore_common.wgsl`, and
//! `restore_blend.wgsl`: the steps above, batched over all faces of a batch, one submit and
//! one readback per batch, device buffers reused across batches); with `Compute::Cpu` the
//! same steps run on scoped threads. Both paths compute `w_edge` with the same host code and
//! use the same f32 kernel taps and arithmetic order, so they agree within 1 LSB: the tests
//! require, over the pixels a face changes, ≥ 99.9% within 1 LSB and ≥ 99% identical (on
//! lavapipe a few pixels per face differ, by 1, from float contraction on the device). Only
//! the faces' regions are uploaded and read back, not whole frames.
//!
//! # Example
//! ```
//! use frame::{Affine2, Frame};
//! use restore::{FacePaste, RestoreConfig, Restorer};
//! let mut frames = vec![Frame::filled(64, 48, [10, 20, 30]), Frame::filled(64, 48, [0, 0, 0])];
//! // A 16×16 "face" that covers frame pixels 20..36 × 10..26 (frame → face: shift).
//! let face = Frame::filled(16, 16, [200, 100, 50]);
//! let to_crop = Affine2::similarity(1.0, 0.0, -20.0, -10.0);
//! let faces = vec![Some(FacePaste { face, to_crop, mask: None, weights: None }), None];
//! let mut restorer = Restorer::new(gpu::Compute::Cpu, RestoreConfig::default()).unwrap();
//! let phase = progress_core::Phase::detached("Restoring faces", Some(2), "frames");
//! restorer.restore_batch(&mut frames, &faces, &phase).unwrap();
//! assert_eq!(frames[0].pixel(28, 18), [200, 100, 50]); // face centre
//! assert_eq!(frames[0].pixel(2, 2), [10, 20, 30]);     // far away: untouched
//! assert_eq!(phase.pos(), 2);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cpu;
mod facefusion;
mod mask;
mod wgsl;

use std::sync::Arc;

use frame::{Affine2, Frame};

pub use facefusion::{FaceWeights, facefusion_box_shared};
use progress_core::{Cancelled, Phase};

/// Settings of a [`Restorer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreConfig {
    /// Frames per batch (one progress update per batch; the cancel token is looked at before
    /// each batch, and on the CPU before each frame).
    pub batch: usize,
    /// Worker threads for the CPU path, and for the host-side `w_edge` computation of the
    /// GPU path (0 = available parallelism).
    pub threads: usize,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            batch: 16,
            threads: 0,
        }
    }
}

/// One generated face and where it goes.
#[derive(Debug, Clone)]
pub struct FacePaste {
    /// The R×R face (square).
    pub face: Frame,
    /// Frame pixel coordinates → face pixel coordinates (face-proc's alignment composed with
    /// the crop→R scale).
    pub to_crop: Affine2,
    /// A region of the face the paste is confined to, e.g. the lower face from a face mesh;
    /// `None`: the whole face under the eroded mask alone.
    pub mask: Option<PasteMask>,
    /// FaceFusion's paste instead of the eroded mask: these weights (R×R, face pixels) and the
    /// face warped into the frame and blended there (see the crate docs); `mask` must then be
    /// `None`.
    pub weights: Option<Arc<FaceWeights>>,
}

/// A convex region of the face (face pixels, pixel centres at integers), feathered inwards:
/// the paste's weight is multiplied by `clamp(d / feather, 0, 1)`, `d` the distance from the
/// face point to the nearest edge line, positive inside. Outside the polygon the weight is 0,
/// so the frame keeps its pixels there bit for bit. The polygon is convex and in the order
/// `infer::convex_hull` gives (counter-clockwise in image coordinates, y down); anything else
/// is a [`RestoreError::Mask`].
#[derive(Debug, Clone, PartialEq)]
pub struct PasteMask {
    /// The polygon's corners, at least 3.
    pub polygon: Vec<[f32; 2]>,
    /// Width of the inward ramp, face pixels (positive).
    pub feather: f32,
}

/// Why restoration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The run was cancelled (seen between batches, and on the CPU between frames).
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// `frames` and `faces` differ in length.
    #[error("restore batch has {frames} frames but {faces} face entries")]
    LengthMismatch {
        /// Number of frames.
        frames: usize,
        /// Number of face entries.
        faces: usize,
    },
    /// A face is not square.
    #[error("face for frame {index} is {width}x{height}, expected a square R×R image")]
    NotSquare {
        /// Index in the batch.
        index: usize,
        /// Face width.
        width: u32,
        /// Face height.
        height: u32,
    },
    /// The transform cannot be inverted.
    #[error("face transform for frame {index} is singular or not finite")]
    SingularTransform {
        /// Index in the batch.
        index: usize,
    },
    /// A face's [`PasteMask`] is not a convex polygon in the expected order, or its feather
    /// is not positive.
    #[error("paste mask for frame {index}: {why}")]
    Mask {
        /// Index in the batch.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A GPU error.
    #[error(transparent)]
    Gpu(#[from] gpu::GpuError),
}

/// Pastes faces back into frames; holds reusable scratch and device buffers.
#[derive(Debug)]
pub struct Restorer {
    compute: gpu::Compute,
    cfg: RestoreConfig,
    scratch: Vec<cpu::Scratch>,
    wgsl: Option<Box<wgsl::GpuRestore>>,
}

impl Restorer {
    /// A restorer on `compute`: the WGSL path for `Compute::Gpu` (its shaders are compiled
    /// here, so a device that rejects them fails now), the CPU path for `Compute::Cpu`.
    pub fn new(compute: gpu::Compute, cfg: RestoreConfig) -> Result<Self, RestoreError> {
        let threads = match cfg.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let wgsl = match &compute {
            gpu::Compute::Gpu(ctx) => {
                let path = wgsl::GpuRestore::new(std::sync::Arc::clone(ctx))?;
                tracing::debug!(adapter = path.adapter_name(), "restore: WGSL path");
                Some(Box::new(path))
            }
            gpu::Compute::Cpu => None,
        };
        Ok(Self {
            compute,
            cfg,
            scratch: (0..threads).map(|_| cpu::Scratch::default()).collect(),
            wgsl,
        })
    }

    /// Whether the WGSL path runs (true exactly when created with `Compute::Gpu`).
    pub fn uses_gpu(&self) -> bool {
        self.wgsl.is_some()
    }

    #[cfg(test)]
    pub(crate) fn gpu_buffer_generations(&self) -> Option<Vec<u64>> {
        self.wgsl.as_ref().map(|p| p.buffer_generations())
    }

    /// The compute this restorer was created with.
    pub fn compute(&self) -> &gpu::Compute {
        &self.compute
    }

    /// Restores `frames[i]` with `faces[i]` in place, `cfg.batch` frames at a time:
    /// `phase.check()?` before and `phase.inc(n)` after each batch, and on the CPU the cancel
    /// token looked at before each frame too (a cancelled batch returns
    /// [`RestoreError::Cancelled`] with some of its frames restored and the others not).
    /// `None` leaves a frame untouched. Inputs are validated before any frame is modified.
    pub fn restore_batch(
        &mut self,
        frames: &mut [Frame],
        faces: &[Option<FacePaste>],
        phase: &Phase,
    ) -> Result<(), RestoreError> {
        if frames.len() != faces.len() {
            return Err(RestoreError::LengthMismatch {
                frames: frames.len(),
                faces: faces.len(),
            });
        }
        let mut plans = Vec::with_capacity(faces.len());
        for (index, (frame, face)) in frames.iter().zip(faces).enumerate() {
            plans.push(match face {
                None => None,
                Some(paste) => match &paste.weights {
                    Some(w) => {
                        facefusion::check(index, paste, w)?;
                        None
                    }
                    None => mask::plan(index, frame, paste)?,
                },
            });
        }
        let batch = self.cfg.batch.max(1);
        for ((frames, faces), plans) in frames
            .chunks_mut(batch)
            .zip(faces.chunks(batch))
            .zip(plans.chunks(batch))
        {
            phase.check()?;
            match &mut self.wgsl {
                Some(path) => {
                    let w_edges = cpu::edge_widths(frames, plans, &mut self.scratch);
                    path.restore_frames(frames, faces, plans, &w_edges)?;
                }
                None => cpu::restore_frames(
                    frames,
                    faces,
                    plans,
                    &mut self.scratch,
                    phase.cancel_token(),
                ),
            }
            paste_weighted(frames, faces, self.scratch.len(), phase.cancel_token());
            phase.check()?;
            phase.inc(frames.len() as u64);
        }
        Ok(())
    }
}

/// FaceFusion's paste of every face with weights, spread over `threads` scoped threads; each
/// looks at `cancel` before each frame.
fn paste_weighted(
    frames: &mut [Frame],
    faces: &[Option<FacePaste>],
    threads: usize,
    cancel: &progress_core::CancelToken,
) {
    let weighted = faces
        .iter()
        .filter(|f| f.as_ref().is_some_and(|p| p.weights.is_some()))
        .count();
    if weighted == 0 {
        return;
    }
    let one = |frame: &mut Frame, face: &Option<FacePaste>| {
        if !cancel.is_cancelled()
            && let Some(p) = face
            && let Some(w) = &p.weights
        {
            facefusion::paste_back(frame, &p.face, w, &p.to_crop);
        }
    };
    let threads = threads.clamp(1, weighted);
    if threads == 1 {
        frames.iter_mut().zip(faces).for_each(|(f, p)| one(f, p));
        return;
    }
    let per = frames.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (frames, faces) in frames.chunks_mut(per).zip(faces.chunks(per)) {
            s.spawn(move || frames.iter_mut().zip(faces).for_each(|(f, p)| one(f, p)));
        }
    });
}

/// Convenience for a whole clip: creates the phase "Restoring faces" (unit "frames") under
/// `parent`, restores, and finishes the phase (or fails it on error).
pub fn restore(
    restorer: &mut Restorer,
    frames: &mut [Frame],
    faces: &[Option<FacePaste>],
    parent: &Phase,
) -> Result<(), RestoreError> {
    let phase = parent.child("Restoring faces", Some(frames.len() as u64), "frames");
    match restorer.restore_batch(frames, faces, &phase) {
        Ok(()) => {
            phase.finish();
            Ok(())
        }
        Err(err) => {
            phase.fail(&err);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests;
