//! The WGSL path: one submit and one readback per batch.
//!
//! Per batch the host computes each face's `w_edge` (same code as the CPU path, so both agree
//! on the kernel sizes), lays the faces' regions (bounding box padded by the blur radius) end
//! to end, uploads the faces and the regions' frame pixels, and records eight dispatches in
//! one compute pass: warp (`crates/restore/shaders/restore_warp.wgsl`), 2×2 erosion rows/cols
//! and centre erosion rows/cols (`restore_erode.wgsl`), blur rows/cols (`restore_blur.wgsl`)
//! and blend (`restore_blend.wgsl`). The first seven run on a 3-D grid of 8×8 tiles with one
//! layer per face (no per-pixel face lookup or division), from sources that start with
//! `restore_common.wgsl` (`Face`, `Info`, their bindings 0 and 1, the region addressing); the
//! blend uses the linear index. Only the regions travel back; the host writes them into the
//! frames.
//! Device buffers grow to the largest batch seen and are reused; bind groups are rebuilt only
//! when a buffer was reallocated.

use std::sync::Arc;

use frame::Frame;
use gpu::wgpu::{self, BufferUsages};
use gpu::{GpuContext, GpuError, GrowBuffer, Readback};

use crate::mask::{self, Plan, Rect};

/// `restore_common.wgsl` (the `Face`/`Info` prologue) + the stage file: the source the
/// per-face pipelines compile and the naga test validates.
macro_rules! per_face_shader {
    ($stage:literal) => {
        concat!(
            include_str!("../shaders/restore_common.wgsl"),
            include_str!(concat!("../shaders/", $stage))
        )
    };
}

const WARP: &str = per_face_shader!("restore_warp.wgsl");
const ERODE: &str = per_face_shader!("restore_erode.wgsl");
const BLUR: &str = per_face_shader!("restore_blur.wgsl");
/// The blend has no per-face data: its own `Info` binding 0, no prologue.
const BLEND: &str = include_str!("../shaders/restore_blend.wgsl");
/// Workgroup size of the blend (linear index).
const WG: u32 = 64;
/// Tile side of the per-face passes (8×8 workgroups, one grid layer per face).
const TILE: u32 = 8;

/// One face as the shaders see it (`Face` in restore_common.wgsl).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FaceParams {
    a: [f32; 6],
    r: u32,
    face_off: u32,
    base: u32,
    frame_w: u32,
    frame_h: u32,
    roi: [u32; 4],
    bbox: [u32; 4],
    w_edge: u32,
    koff: u32,
    /// The paste mask's edges: first index in `edges`, count (0: no mask), `1 / feather`.
    e_off: u32,
    e_n: u32,
    inv_feather: f32,
}

/// The batch as the shaders see it (`Info` in restore_common.wgsl and restore_blend.wgsl).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    n_faces: u32,
    total: u32,
    pad: [u32; 2],
}

/// A face of the current batch: which frame, and its region.
#[derive(Debug, Clone, Copy)]
struct Job {
    frame: usize,
    roi: Rect,
    base: usize,
}

struct Pipelines {
    warp: wgpu::ComputePipeline,
    erode_rows: wgpu::ComputePipeline,
    erode_cols: wgpu::ComputePipeline,
    blur_rows: wgpu::ComputePipeline,
    blur_cols: wgpu::ComputePipeline,
    blend: wgpu::ComputePipeline,
}

/// Bind groups in dispatch order: warp, erode 2×2 rows, cols, centre rows, cols, blur rows,
/// cols, blend.
struct Binds {
    key: [u64; 8],
    groups: [wgpu::BindGroup; 8],
}

/// Pipelines, reused device buffers and host scratch of the GPU path.
pub(crate) struct GpuRestore {
    ctx: Arc<GpuContext>,
    pipelines: Pipelines,
    faces: GrowBuffer,
    weights: GrowBuffer,
    face_px: GrowBuffer,
    /// Ping-pong mask buffers (f32 per region pixel); the soft mask ends in `a`.
    a: GrowBuffer,
    b: GrowBuffer,
    /// Warped face per region pixel (vec4<f32>: rgb, and the paste mask's weight in a).
    warped: GrowBuffer,
    /// The paste masks' edges (vec4<f32> each) of the batch's faces.
    edges: GrowBuffer,
    /// Frame pixels of the regions, R | G << 8 | B << 16; blended in place.
    pixels: GrowBuffer,
    info: wgpu::Buffer,
    /// `Pass.kind` 0 (2×2 erosion) and 1 (centre erosion).
    kinds: [wgpu::Buffer; 2],
    readback: Readback,
    binds: Option<Binds>,
    params: Vec<FaceParams>,
    kernel: Vec<f32>,
    host_edges: Vec<[f32; 4]>,
    host_px: Vec<u32>,
    jobs: Vec<Job>,
}

impl std::fmt::Debug for GpuRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuRestore")
            .field("adapter", &self.ctx.adapter_name())
            .finish_non_exhaustive()
    }
}

fn uniform(ctx: &GpuContext, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.len() as u64,
        usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue().write_buffer(&buffer, 0, bytes);
    buffer
}

fn bind(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

fn too_large(what: &str, value: usize) -> GpuError {
    GpuError::Device(format!(
        "restore batch needs {value} {what}, more than a u32 index can address"
    ))
}

impl GpuRestore {
    pub(crate) fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let pipelines = Pipelines {
            warp: ctx.compute_pipeline("restore_warp", WARP, "main")?,
            erode_rows: ctx.compute_pipeline("restore_erode rows", ERODE, "erode_rows")?,
            erode_cols: ctx.compute_pipeline("restore_erode cols", ERODE, "erode_cols")?,
            blur_rows: ctx.compute_pipeline("restore_blur rows", BLUR, "blur_rows")?,
            blur_cols: ctx.compute_pipeline("restore_blur cols", BLUR, "blur_cols")?,
            blend: ctx.compute_pipeline("restore_blend", BLEND, "main")?,
        };
        let storage = BufferUsages::STORAGE | BufferUsages::COPY_DST;
        let info = uniform(&ctx, "restore info", bytemuck::bytes_of(&[0u32; 4]));
        let kinds = [0u32, 1].map(|k| {
            uniform(
                &ctx,
                "restore erosion kind",
                bytemuck::bytes_of(&[k, 0, 0, 0]),
            )
        });
        Ok(Self {
            pipelines,
            faces: GrowBuffer::new("restore faces", storage),
            weights: GrowBuffer::new("restore kernels", storage),
            face_px: GrowBuffer::new("restore face pixels", storage),
            a: GrowBuffer::new("restore mask a", BufferUsages::STORAGE),
            b: GrowBuffer::new("restore mask b", BufferUsages::STORAGE),
            warped: GrowBuffer::new("restore warped face", BufferUsages::STORAGE),
            edges: GrowBuffer::new("restore paste mask edges", storage),
            pixels: GrowBuffer::new("restore frame pixels", storage | BufferUsages::COPY_SRC),
            info,
            kinds,
            readback: Readback::new("restore readback"),
            binds: None,
            params: Vec::new(),
            kernel: Vec::new(),
            host_edges: Vec::new(),
            host_px: Vec::new(),
            jobs: Vec::new(),
            ctx,
        })
    }

    pub(crate) fn adapter_name(&self) -> &str {
        self.ctx.adapter_name()
    }

    /// Restores one batch: `faces[i]`/`plans[i]`/`w_edges[i]` belong to `frames[i]`.
    pub(crate) fn restore_frames(
        &mut self,
        frames: &mut [Frame],
        faces: &[Option<crate::FacePaste>],
        plans: &[Option<Plan>],
        w_edges: &[usize],
    ) -> Result<(), GpuError> {
        let ctx = Arc::clone(&self.ctx);
        // gid.z is the face: at most `max_z` faces per submit.
        let max_z = ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize;
        if frames.len() > max_z {
            for start in (0..frames.len()).step_by(max_z) {
                let end = (start + max_z).min(frames.len());
                self.restore_frames(
                    &mut frames[start..end],
                    &faces[start..end],
                    &plans[start..end],
                    &w_edges[start..end],
                )?;
            }
            return Ok(());
        }
        self.plan_batch(frames, faces, plans, w_edges)?;
        if self.jobs.is_empty() {
            return Ok(());
        }
        let tiles = |extent: usize| -> Result<u32, GpuError> {
            let groups = gpu::workgroups_for(extent as u64, TILE);
            if groups > ctx.limits().max_compute_workgroups_per_dimension {
                return Err(GpuError::Device(format!(
                    "a restore region of {extent} pixels needs {groups} workgroups in one \
                     dimension, more than the device allows"
                )));
            }
            Ok(groups)
        };
        let tx = tiles(self.jobs.iter().map(|j| j.roi.width()).max().unwrap_or(0))?;
        let ty = tiles(self.jobs.iter().map(|j| j.roi.height()).max().unwrap_or(0))?;
        let tz = self.jobs.len() as u32;
        let total = self.host_px.len();
        let total_u32 = u32::try_from(total).map_err(|_| too_large("pixels", total))?;
        let n = total as u64;
        self.faces
            .ensure(&ctx, std::mem::size_of_val(self.params.as_slice()) as u64)?;
        self.weights.ensure(&ctx, self.kernel.len() as u64 * 4)?;
        let face_bytes = self
            .params
            .last()
            .map_or(0, |p| u64::from(p.face_off) + u64::from(p.r).pow(2) * 3);
        self.face_px.ensure(&ctx, face_bytes)?;
        self.a.ensure(&ctx, n * 4)?;
        self.b.ensure(&ctx, n * 4)?;
        self.warped.ensure(&ctx, n * 16)?;
        // At least one edge: a storage binding may not be empty.
        self.edges
            .ensure(&ctx, self.host_edges.len().max(1) as u64 * 16)?;
        self.pixels.ensure(&ctx, n * 4)?;

        ctx.upload(self.faces.buffer(), 0, bytemuck::cast_slice(&self.params));
        ctx.upload(self.weights.buffer(), 0, bytemuck::cast_slice(&self.kernel));
        if !self.host_edges.is_empty() {
            ctx.upload(
                self.edges.buffer(),
                0,
                bytemuck::cast_slice(&self.host_edges),
            );
        }
        for (job, p) in self.jobs.iter().zip(&self.params) {
            let face = faces[job.frame]
                .as_ref()
                .expect("jobs are built from planned faces");
            ctx.upload(
                self.face_px.buffer(),
                u64::from(p.face_off),
                face.face.data(),
            );
        }
        ctx.upload(self.pixels.buffer(), 0, bytemuck::cast_slice(&self.host_px));
        let info = Info {
            n_faces: self.params.len() as u32,
            total: total_u32,
            pad: [0; 2],
        };
        ctx.queue()
            .write_buffer(&self.info, 0, bytemuck::bytes_of(&info));

        self.ensure_binds();
        let groups = &self.binds.as_ref().expect("built above").groups;
        let p = &self.pipelines;
        let order = [
            &p.warp,
            &p.erode_rows,
            &p.erode_cols,
            &p.erode_rows,
            &p.erode_cols,
            &p.blur_rows,
            &p.blur_cols,
            &p.blend,
        ];
        let (x, y) = ctx.dispatch_grid(gpu::workgroups_for(n, WG));
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("restore"),
                timestamp_writes: None,
            });
            for (k, (pipeline, group)) in order.into_iter().zip(groups).enumerate() {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                if k + 1 < groups.len() {
                    pass.dispatch_workgroups(tx, ty, tz);
                } else {
                    // The blend is per pixel: a linear index over all regions.
                    pass.dispatch_workgroups(x, y, 1);
                }
            }
        }
        self.readback
            .copy_from(&ctx, &mut encoder, self.pixels.buffer(), 0, n * 4)?;
        ctx.queue().submit([encoder.finish()]);
        let host_px = &mut self.host_px;
        self.readback.read(&ctx, n * 4, |bytes| {
            host_px.copy_from_slice(bytemuck::cast_slice(bytes));
        })?;
        for job in &self.jobs {
            write_region(&mut frames[job.frame], job.roi, &self.host_px[job.base..]);
        }
        Ok(())
    }

    /// Fills `jobs`, `params`, `kernel` and `host_px` (the regions' frame pixels).
    fn plan_batch(
        &mut self,
        frames: &[Frame],
        faces: &[Option<crate::FacePaste>],
        plans: &[Option<Plan>],
        w_edges: &[usize],
    ) -> Result<(), GpuError> {
        self.jobs.clear();
        self.params.clear();
        self.kernel.clear();
        self.host_edges.clear();
        self.host_px.clear();
        let mut face_off = 0usize;
        for (i, (frame, plan)) in frames.iter().zip(plans).enumerate() {
            let (Some(plan), Some(_)) = (plan, &faces[i]) else {
                continue;
            };
            let (w, h) = (frame.width() as usize, frame.height() as usize);
            let w_edge = w_edges[i];
            let roi = plan.bbox.padded(w_edge, w, h);
            let base = self.host_px.len();
            let b = plan.bbox;
            let to_u32 = |v: usize| u32::try_from(v).map_err(|_| too_large("pixels", v));
            self.params.push(FaceParams {
                a: plan.a,
                r: plan.r,
                face_off: to_u32(face_off)?,
                base: to_u32(base)?,
                frame_w: frame.width(),
                frame_h: frame.height(),
                roi: [roi.x0, roi.y0, roi.width(), roi.height()].map(|v| v as u32),
                bbox: [b.x0, b.y0, b.x1, b.y1].map(|v| v as u32),
                w_edge: w_edge as u32,
                koff: to_u32(self.kernel.len())?,
                e_off: to_u32(self.host_edges.len())?,
                e_n: to_u32(plan.edges.len())?,
                inv_feather: plan.inv_feather,
            });
            self.host_edges.extend_from_slice(&plan.edges);
            self.kernel
                .extend_from_slice(&mask::gaussian_kernel(2 * w_edge + 1));
            face_off += (plan.r as usize * plan.r as usize * 3).next_multiple_of(4);
            read_region(frame, roi, &mut self.host_px);
            self.jobs.push(Job {
                frame: i,
                roi,
                base,
            });
        }
        Ok(())
    }

    fn ensure_binds(&mut self) {
        let key = [
            self.faces.generation(),
            self.weights.generation(),
            self.face_px.generation(),
            self.a.generation(),
            self.b.generation(),
            self.warped.generation(),
            self.pixels.generation(),
            self.edges.generation(),
        ];
        if self.binds.as_ref().is_some_and(|b| b.key == key) {
            return;
        }
        let ctx = &self.ctx;
        let p = &self.pipelines;
        let (faces, info, weights) = (self.faces.buffer(), &self.info, self.weights.buffer());
        let (a, b) = (self.a.buffer(), self.b.buffer());
        let (warped, pixels) = (self.warped.buffer(), self.pixels.buffer());
        let [k0, k1] = &self.kinds;
        // The per-face passes bind `faces` and `info` at 0 and 1 (restore_common.wgsl), then
        // their own buffers.
        let per_face = |label: &str, pipeline: &wgpu::ComputePipeline, own: &[&wgpu::Buffer]| {
            bind(ctx, label, pipeline, &[&[faces, info], own].concat())
        };
        let groups = [
            per_face(
                "restore warp",
                &p.warp,
                &[self.face_px.buffer(), a, warped, self.edges.buffer()],
            ),
            per_face("restore erode 2x2 rows", &p.erode_rows, &[k0, a, b]),
            per_face("restore erode 2x2 cols", &p.erode_cols, &[k0, b, a]),
            per_face("restore erode centre rows", &p.erode_rows, &[k1, a, b]),
            per_face("restore erode centre cols", &p.erode_cols, &[k1, b, a]),
            per_face("restore blur rows", &p.blur_rows, &[weights, a, b]),
            per_face("restore blur cols", &p.blur_cols, &[weights, b, a]),
            bind(ctx, "restore blend", &p.blend, &[info, a, warped, pixels]),
        ];
        self.binds = Some(Binds { key, groups });
    }
}

/// Appends the pixels of `roi` as R | G << 8 | B << 16, row by row.
fn read_region(frame: &Frame, roi: Rect, out: &mut Vec<u32>) {
    let w = frame.width() as usize;
    let data = frame.data();
    for y in roi.y0..roi.y1 {
        let row = &data[(y * w + roi.x0) * 3..(y * w + roi.x1) * 3];
        out.extend(
            row.chunks_exact(3)
                .map(|p| u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16),
        );
    }
}

/// Writes the region pixels `px` (layout of [`read_region`]) back into `frame`.
fn write_region(frame: &mut Frame, roi: Rect, px: &[u32]) {
    let w = frame.width() as usize;
    let rw = roi.width();
    let data = frame.data_mut();
    for (ry, y) in (roi.y0..roi.y1).enumerate() {
        let row = &mut data[(y * w + roi.x0) * 3..(y * w + roi.x1) * 3];
        for (dst, &word) in row.chunks_exact_mut(3).zip(&px[ry * rw..(ry + 1) * rw]) {
            dst.copy_from_slice(&word.to_le_bytes()[..3]);
        }
    }
}

#[cfg(test)]
impl GpuRestore {
    /// Allocation counts of the device buffers (tests check steady-state reuse).
    pub(crate) fn buffer_generations(&self) -> Vec<u64> {
        [
            &self.faces,
            &self.weights,
            &self.face_px,
            &self.a,
            &self.b,
            &self.warped,
            &self.pixels,
            &self.edges,
        ]
        .iter()
        .map(|b| b.generation())
        .collect()
    }
}

#[cfg(test)]
mod shader_tests {
    #[test]
    fn the_embedded_shaders_validate_with_naga() {
        for (name, source) in [
            ("restore_common.wgsl + restore_warp.wgsl", super::WARP),
            ("restore_common.wgsl + restore_erode.wgsl", super::ERODE),
            ("restore_common.wgsl + restore_blur.wgsl", super::BLUR),
            ("restore_blend.wgsl", super::BLEND),
        ] {
            if let Err(e) = gpu::validate_wgsl(source) {
                panic!("{name}:\n{e}");
            }
        }
    }
}
