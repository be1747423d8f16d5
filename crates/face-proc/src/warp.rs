//! The face warp: source frame → R×R crop in one bilinear pass, border 127 (or the edge
//! replicated, for FaceFusion's alignment), on the CPU and as the batched WGSL shader
//! `crates/face-proc/shaders/face_warp.wgsl` (same arithmetic order); and LatentSync's crop,
//! the reference's two Lanczos-4 passes, on the CPU ([`warp_latentsync`]).

use std::sync::Arc;

use frame::{Affine2, Frame};
use gpu::{GpuContext, GrowBuffer, Readback, wgpu};

use crate::FaceError;
use face_net::floor_i64;

const SHADER: &str = include_str!("../shaders/face_warp.wgsl");
const WORKGROUP: u32 = 64;
const BORDER: f32 = 127.0;

/// One face to cut out: which frame, and the map source → crop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WarpJob {
    /// Index into the batch's frames.
    pub(crate) frame: usize,
    /// Source → crop (the stage's `to_crop`).
    pub(crate) to_crop: Affine2,
    /// Outside the source: the nearest edge pixel (FaceFusion's `BORDER_REPLICATE`) instead
    /// of 127.
    pub(crate) replicate: bool,
}

/// What the warp reads outside the source frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Border {
    /// This value in every channel.
    Value(f32),
    /// The nearest pixel of the frame's edge.
    Replicate,
}

/// The crop → source map as the six f32 the CPU and GPU both use, or an error when the
/// transform cannot be inverted.
fn inverse_f32(t: &Affine2) -> Result<[f32; 6], FaceError> {
    t.inverse()
        .map(|inv| inv.to_f32())
        .ok_or(FaceError::SingularTransform)
}

/// The reference's grey outside the source frame.
pub(crate) const GREY: Border = Border::Value(BORDER);

impl Border {
    /// [`Border::Replicate`] when `replicate` (FaceFusion's alignment), else [`GREY`].
    pub(crate) fn replicated_if(replicate: bool) -> Self {
        if replicate { Border::Replicate } else { GREY }
    }
}

/// CPU warp of one face into an R×R crop.
pub(crate) fn warp_cpu(
    image: &Frame,
    to_crop: &Affine2,
    r: u32,
    border: Border,
) -> Result<Frame, FaceError> {
    render(image, to_crop, r, r, border)
}

/// The crop of [`crate::Alignment::LatentSync`], made as LatentSync's ONNX export makes it
/// (its `affine_transform.py` and `image_processor.py`): `cv2.warpAffine` with Lanczos-4 into
/// its `int(75·k) × int(100·k)` crop (border 127), then `cv2.resize` with Lanczos-4 to R×R, with
/// OpenCV's arithmetic ([`frame::cv`]); `to_crop` is the composed frame → R×R map of
/// `align::latentsync_to_crop`. On the CPU whatever the compute: LatentSync's diffusion dwarfs
/// it (about 5 ms a face on one core).
pub(crate) fn warp_latentsync(
    image: &Frame,
    to_crop: &Affine2,
    r: u32,
) -> Result<Frame, FaceError> {
    use frame::cv;
    let (cw, ch) = crate::align::latentsync_crop_size(r);
    let resize = crate::align::latentsync_resize(r);
    let to_ref_crop = resize
        .inverse()
        .ok_or(FaceError::SingularTransform)?
        .after(to_crop);
    if to_ref_crop.inverse().is_none() {
        return Err(FaceError::SingularTransform);
    }
    let crop = cv::warp_affine_lanczos4_u8(
        image.data(),
        image.width() as usize,
        image.height() as usize,
        3,
        to_ref_crop.m,
        false,
        cw as usize,
        ch as usize,
        cv::Border::Constant(127.0),
    );
    let face = cv::resize_lanczos4_u8(&crop, cw as usize, ch as usize, 3, r as usize, r as usize);
    Ok(Frame::new(r, r, face).expect("r*r*3 bytes"))
}

/// Renders `image` through `to_out` (source → output) into a `w`×`h` frame, bilinear, with
/// `border` outside the source. The arithmetic order matches `face_warp.wgsl`.
pub(crate) fn render(
    image: &Frame,
    to_out: &Affine2,
    out_w: u32,
    out_h: u32,
    border: Border,
) -> Result<Frame, FaceError> {
    let m = inverse_f32(to_out)?;
    let (w, h) = (image.width() as i32, image.height() as i32);
    let data = image.data();
    let texel = |x: i32, y: i32| -> [f32; 3] {
        let (x, y) = match border {
            Border::Value(v) if x < 0 || y < 0 || x >= w || y >= h => return [v; 3],
            Border::Value(_) => (x, y),
            Border::Replicate => (x.clamp(0, w - 1), y.clamp(0, h - 1)),
        };
        let i = (y as usize * w as usize + x as usize) * 3;
        [data[i] as f32, data[i + 1] as f32, data[i + 2] as f32]
    };
    let mut out = vec![0u8; out_w as usize * out_h as usize * 3];
    for (p, px) in out.chunks_exact_mut(3).enumerate() {
        let x = (p as u32 % out_w) as f32;
        let y = (p as u32 / out_w) as f32;
        let sx = (m[0] * x + m[1] * y) + m[2];
        let sy = (m[3] * x + m[4] * y) + m[5];
        // `floor` without libm's call (the same values; see `floor_i64`).
        let (ix, iy) = (floor_i64(sx), floor_i64(sy));
        let (fx, fy) = (sx - ix as f32, sy - iy as f32);
        // Far outside any frame either way, and room for the `+ 1` below.
        let far = |i: i64| i.clamp(-(1 << 30), 1 << 30) as i32;
        let (ix, iy) = (far(ix), far(iy));
        let p00 = texel(ix, iy);
        let p10 = texel(ix + 1, iy);
        let p01 = texel(ix, iy + 1);
        let p11 = texel(ix + 1, iy + 1);
        for c in 0..3 {
            let top = p00[c] + (p10[c] - p00[c]) * fx;
            let bot = p01[c] + (p11[c] - p01[c]) * fx;
            px[c] = floor_i64(top + (bot - top) * fy + 0.5).clamp(0, 255) as u8;
        }
    }
    Ok(Frame::new(out_w, out_h, out).expect("output buffer has w*h*3 bytes"))
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FaceParams {
    m: [f32; 6],
    src_offset: u32,
    width: u32,
    height: u32,
    /// 1: replicate the edge outside the source; 0: 127.
    replicate: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Info {
    r: u32,
    n_faces: u32,
    total: u32,
    _pad: u32,
}

fn gpu_err(e: gpu::GpuError) -> FaceError {
    FaceError::Gpu(e.to_string())
}

/// The batched GPU warp with reused buffers (no buffer creation once batches stop growing).
#[derive(Debug)]
pub(crate) struct GpuWarp {
    ctx: Arc<GpuContext>,
    pipeline: wgpu::ComputePipeline,
    src: GrowBuffer,
    params: GrowBuffer,
    dst: GrowBuffer,
    info: GrowBuffer,
    readback: Readback,
    words: Vec<u32>,
}

impl GpuWarp {
    pub(crate) fn new(ctx: Arc<GpuContext>) -> Result<Self, FaceError> {
        let pipeline = ctx
            .compute_pipeline("face_warp", SHADER, "main")
            .map_err(gpu_err)?;
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        Ok(Self {
            ctx,
            pipeline,
            src: GrowBuffer::new("face_warp src", storage),
            params: GrowBuffer::new("face_warp faces", storage),
            dst: GrowBuffer::new(
                "face_warp dst",
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            ),
            info: GrowBuffer::new(
                "face_warp info",
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            ),
            readback: Readback::new("face_warp readback"),
            words: Vec::new(),
        })
    }

    /// Warps every job in one dispatch; crops come back in job order.
    pub(crate) fn run(
        &mut self,
        frames: &[&Frame],
        jobs: &[WarpJob],
        r: u32,
    ) -> Result<Vec<Frame>, FaceError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = self.ctx.clone();
        // Frame byte offsets, each 4-aligned; only frames some job uses are uploaded.
        let mut offsets = vec![None; frames.len()];
        let mut total_src = 0u64;
        for job in jobs {
            if offsets[job.frame].is_none() {
                offsets[job.frame] = Some(total_src);
                total_src += (frames[job.frame].data().len() as u64).next_multiple_of(4);
            }
        }
        let params: Vec<FaceParams> = jobs
            .iter()
            .map(|job| {
                let f = frames[job.frame];
                Ok(FaceParams {
                    m: inverse_f32(&job.to_crop)?,
                    src_offset: offsets[job.frame].expect("offset assigned above") as u32,
                    width: f.width(),
                    height: f.height(),
                    replicate: u32::from(job.replicate),
                })
            })
            .collect::<Result<_, FaceError>>()?;
        if total_src > u32::MAX as u64 {
            return Err(FaceError::Gpu(format!(
                "face warp batch of {total_src} source bytes exceeds 4 GiB"
            )));
        }
        let per_face = r as u64 * r as u64;
        let total = per_face * jobs.len() as u64;
        let info = Info {
            r,
            n_faces: jobs.len() as u32,
            total: u32::try_from(total).map_err(|_| {
                FaceError::Gpu(format!("face warp batch of {total} pixels is too large"))
            })?,
            _pad: 0,
        };
        self.src.ensure(&ctx, total_src).map_err(gpu_err)?;
        self.params
            .ensure(&ctx, std::mem::size_of_val(params.as_slice()) as u64)
            .map_err(gpu_err)?;
        self.dst.ensure(&ctx, total * 4).map_err(gpu_err)?;
        self.info.ensure(&ctx, 16).map_err(gpu_err)?;
        for (i, off) in offsets.iter().enumerate() {
            if let Some(off) = off {
                ctx.upload(self.src.buffer(), *off, frames[i].data());
            }
        }
        ctx.upload(self.params.buffer(), 0, bytemuck::cast_slice(&params));
        ctx.upload(self.info.buffer(), 0, bytemuck::bytes_of(&info));
        let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("face_warp"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.src.buffer().as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.params.buffer().as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: self.dst.buffer().as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: self.info.buffer(),
                        offset: 0,
                        size: wgpu::BufferSize::new(16),
                    }),
                },
            ],
        });
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            let (x, y) = ctx.dispatch_grid(gpu::workgroups_for(total, WORKGROUP));
            pass.dispatch_workgroups(x, y, 1);
        }
        self.readback
            .copy_from(&ctx, &mut encoder, self.dst.buffer(), 0, total * 4)
            .map_err(gpu_err)?;
        ctx.queue().submit([encoder.finish()]);
        let words = &mut self.words;
        words.resize(total as usize, 0);
        self.readback
            .read(&ctx, total * 4, |b| {
                words.copy_from_slice(bytemuck::cast_slice(&b[..total as usize * 4]));
            })
            .map_err(gpu_err)?;
        Ok(self
            .words
            .chunks_exact(per_face as usize)
            .map(|face| {
                let data = face
                    .iter()
                    .flat_map(|w| [*w as u8, (w >> 8) as u8, (w >> 16) as u8])
                    .collect();
                Frame::new(r, r, data).expect("crop buffer has r*r*3 bytes")
            })
            .collect())
    }
}

#[cfg(test)]
mod shader_tests {
    #[test]
    fn the_embedded_shader_validates_with_naga() {
        if let Err(e) = gpu::validate_wgsl(super::SHADER) {
            panic!("{e}");
        }
    }
}
