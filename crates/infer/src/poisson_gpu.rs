//! The Poisson solver on the GPU (`crates/infer/shaders/infer_poisson.wgsl`), batched over a chunk.

use std::sync::Arc;

use frame::Frame;
use gpu::wgpu::{self, BufferUsages};
use gpu::{GpuContext, GpuError, GrowBuffer, Readback};

use crate::poisson::{Domain, FrameData, to_frame};

const SHADER: &str = include_str!("../shaders/infer_poisson.wgsl");
const WG: u32 = 256;

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    x0: u32,
    y0: u32,
    bw: u32,
    bh: u32,
    n_frames: u32,
    parity: u32,
    omega: f32,
    pad: [u32; 3],
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// Device buffers and pipelines, reused across chunks.
pub(crate) struct GpuSolver {
    ctx: Arc<GpuContext>,
    pipelines: Option<(wgpu::ComputePipeline, wgpu::ComputePipeline)>,
    f: GrowBuffer,
    b: GrowBuffer,
    mask: GrowBuffer,
    partial: GrowBuffer,
    params: [wgpu::Buffer; 2],
    readback: Readback,
    partial_readback: Readback,
    /// Bind groups of the loaded chunk: sweep parity 0, parity 1, residual.
    binds: Option<[wgpu::BindGroup; 3]>,
    n_frames: u32,
}

impl std::fmt::Debug for GpuSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSolver")
            .field("adapter", &self.ctx.adapter_name())
            .field("n_frames", &self.n_frames)
            .finish_non_exhaustive()
    }
}

impl GpuSolver {
    pub(crate) fn new(ctx: Arc<GpuContext>) -> Self {
        let storage = BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC;
        let params = [0, 1].map(|i| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(if i == 0 {
                    "infer params red"
                } else {
                    "infer params black"
                }),
                size: std::mem::size_of::<Params>() as u64,
                usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Self {
            pipelines: None,
            f: GrowBuffer::new("infer f", storage),
            b: GrowBuffer::new("infer b", storage),
            mask: GrowBuffer::new("infer mask", storage),
            partial: GrowBuffer::new("infer partial", storage),
            params,
            readback: Readback::new("infer readback"),
            partial_readback: Readback::new("infer partial readback"),
            binds: None,
            n_frames: 0,
            ctx,
        }
    }

    pub(crate) fn adapter_name(&self) -> &str {
        self.ctx.adapter_name()
    }

    fn pipelines(&mut self) -> Result<(wgpu::ComputePipeline, wgpu::ComputePipeline), GpuError> {
        if self.pipelines.is_none() {
            let sor = self
                .ctx
                .compute_pipeline("infer_poisson sor", SHADER, "sor")?;
            let res = self
                .ctx
                .compute_pipeline("infer_poisson residual", SHADER, "residual")?;
            self.pipelines = Some((sor, res));
        }
        Ok(self.pipelines.clone().expect("set above"))
    }

    fn bbox_dims(dom: &Domain) -> (u32, u32) {
        let [x0, y0, x1, y1] = dom.bbox;
        (x1 - x0, y1 - y0)
    }

    fn residual_groups(&self, dom: &Domain) -> u32 {
        let (bw, bh) = Self::bbox_dims(dom);
        gpu::workgroups_for(u64::from(bw) * u64::from(bh) * u64::from(self.n_frames), WG)
    }

    /// Uploads the chunk's frames and binds the buffers.
    pub(crate) fn load(
        &mut self,
        dom: &Domain,
        frames: &[FrameData],
        omega: f32,
    ) -> Result<(), GpuError> {
        let (sor, res) = self.pipelines()?;
        self.n_frames = frames.len() as u32;
        let plane_bytes = 3 * dom.size as u64 * dom.size as u64 * 4;
        let total = plane_bytes * frames.len() as u64;
        self.f.ensure(&self.ctx, total)?;
        self.b.ensure(&self.ctx, total)?;
        for (i, fd) in frames.iter().enumerate() {
            let off = plane_bytes * i as u64;
            self.ctx
                .upload(self.f.buffer(), off, bytemuck::cast_slice(&fd.f));
            self.ctx
                .upload(self.b.buffer(), off, bytemuck::cast_slice(&fd.b));
        }
        let mask: Vec<u32> = dom.mask.iter().map(|&m| u32::from(m)).collect();
        self.mask.ensure(&self.ctx, mask.len() as u64 * 4)?;
        self.ctx
            .upload(self.mask.buffer(), 0, bytemuck::cast_slice(&mask));
        let (rx, ry) = self.ctx.dispatch_grid(self.residual_groups(dom));
        self.partial
            .ensure(&self.ctx, u64::from(rx) * u64::from(ry) * 4)?;
        let [x0, y0, _, _] = dom.bbox;
        let (bw, bh) = Self::bbox_dims(dom);
        for (parity, buf) in self.params.iter().enumerate() {
            let p = Params {
                width: dom.size,
                height: dom.size,
                x0,
                y0,
                bw,
                bh,
                n_frames: self.n_frames,
                parity: parity as u32,
                omega,
                pad: [0; 3],
            };
            self.ctx
                .queue()
                .write_buffer(buf, 0, bytemuck::bytes_of(&p));
        }
        let device = self.ctx.device();
        let sor_layout = sor.get_bind_group_layout(0);
        let sor_bind = |params: &wgpu::Buffer| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("infer sor"),
                layout: &sor_layout,
                entries: &[
                    entry(0, params),
                    entry(1, self.f.buffer()),
                    entry(2, self.b.buffer()),
                    entry(3, self.mask.buffer()),
                ],
            })
        };
        let red = sor_bind(&self.params[0]);
        let black = sor_bind(&self.params[1]);
        let residual = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("infer residual"),
            layout: &res.get_bind_group_layout(0),
            entries: &[
                entry(0, &self.params[0]),
                entry(1, self.f.buffer()),
                entry(2, self.b.buffer()),
                entry(3, self.mask.buffer()),
                entry(4, self.partial.buffer()),
            ],
        });
        self.binds = Some([red, black, residual]);
        Ok(())
    }

    /// `iters` red-black sweeps over the chunk, then the summed squared residual.
    pub(crate) fn step(&mut self, dom: &Domain, iters: u32) -> Result<f64, GpuError> {
        let (sor, res) = self.pipelines()?;
        let binds = self.binds.as_ref().expect("load() before step()");
        let (bw, bh) = Self::bbox_dims(dom);
        let sweep_groups = gpu::workgroups_for(
            u64::from(bw.div_ceil(2)) * u64::from(bh) * u64::from(self.n_frames),
            WG,
        );
        let (sx, sy) = self.ctx.dispatch_grid(sweep_groups);
        let groups = self.residual_groups(dom);
        let (rx, ry) = self.ctx.dispatch_grid(groups);
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&sor);
            for _ in 0..iters {
                for bind in &binds[..2] {
                    pass.set_bind_group(0, bind, &[]);
                    pass.dispatch_workgroups(sx, sy, 1);
                }
            }
            pass.set_pipeline(&res);
            pass.set_bind_group(0, &binds[2], &[]);
            pass.dispatch_workgroups(rx, ry, 1);
        }
        // The grid may overshoot `groups`: extra workgroups write zero partial sums (the
        // buffer is sized for the whole grid in `load`).
        let bytes = u64::from(rx) * u64::from(ry) * 4;
        self.partial_readback.copy_from(
            &self.ctx,
            &mut encoder,
            self.partial.buffer(),
            0,
            bytes,
        )?;
        self.ctx.queue().submit([encoder.finish()]);
        self.partial_readback.read(&self.ctx, bytes, |raw| {
            let parts: &[f32] = bytemuck::cast_slice(raw);
            parts.iter().map(|&v| f64::from(v)).sum()
        })
    }

    /// Reads frames `range` of the chunk back as RGB8.
    pub(crate) fn frames(
        &mut self,
        dom: &Domain,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Frame>, GpuError> {
        let plane_bytes = 3 * dom.size as u64 * dom.size as u64 * 4;
        let off = plane_bytes * range.start as u64;
        let bytes = plane_bytes * range.len() as u64;
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        self.readback
            .copy_from(&self.ctx, &mut encoder, self.f.buffer(), off, bytes)?;
        self.ctx.queue().submit([encoder.finish()]);
        self.readback.read(&self.ctx, bytes, |raw| {
            let all: &[f32] = bytemuck::cast_slice(raw);
            all.chunks_exact(plane_bytes as usize / 4)
                .map(|planes| to_frame(planes, dom.size))
                .collect()
        })
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
