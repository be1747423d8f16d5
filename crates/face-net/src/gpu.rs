//! BlazeFace (MediaPipe short-range face detector) on the GPU with our own WGSL kernels.
//!
//! Why our own kernels: the network is tiny (about 0.1 M parameters) and uses only a handful of
//! layer types, so a few compute shaders cover it, run batched over many frames in one
//! submission, and need no ML runtime on the GPU side. The CPU network (`cpu_net`, checked
//! against onnxruntime) is the reference.
//!
//! # The graph (`face_detection_front_128x128_barracuda.onnx`, tf2onnx, opset 12)
//!
//! Input `input:0` NHWC [1,128,128,3] in [-1,1]. 37 `Conv`, 17 `Relu`, 16 `Add`,
//! 11 `ConstantOfShape` + 11 `Concat`, 5 `Transpose`, 4 `Reshape`, 3 `MaxPool`:
//! - `Transpose` [0,3,1,2] (NHWC → NCHW), then the stem: `Conv` 5x5 stride 2, pads
//!   [t1,l1,b2,r2], 3→24 channels, bias, `Relu` → 64x64x24.
//! - 16 BlazeBlocks: depthwise 3x3 `Conv` (group = channels, no bias; stride 1 pads 1, or
//!   stride 2 pads [t0,l0,b1,r1]), 1x1 `Conv` + bias to the block's channels, `Add` of the
//!   residual, `Relu`. The residual is the block input, for stride-2 blocks through
//!   `MaxPool` 2x2/2, and when channels grow it is `Concat`ed (axis 1) with a
//!   `ConstantOfShape` of zeros (channel padding). Channels 24, 28, 32 (s2), 36, 42,
//!   48 (s2), 56, 64, 72, 80, 88, 96 (s2), 96, 96, 96, 96; spatial 64 → 32 → 16 → 8.
//! - Heads, 1x1 `Conv` + bias → `Transpose` [0,2,3,1] → `Reshape` [1,k,d]:
//!   on the 16x16x88 map 2 score and 32 regressor channels (outputs `Identity:0` [1,512,1],
//!   `Identity_2:0` [1,512,16]); on the 8x8x96 map 6 and 96 channels (`Identity_1:0`
//!   [1,384,1], `Identity_3:0` [1,384,16]). Anchors 512 + 384 = 896, in (y, x, anchor) order.
//!
//! # How it maps to the GPU
//!
//! `plan` folds the graph (read from the ONNX protobuf, weights from its initializers) into
//! 37 dispatches of three entry points in `shaders/blazeface_layers.wgsl`: `conv` (the stem,
//! bias + ReLU fused), `depthwise`, and `pointwise` (1x1 conv + bias + residual with zero
//! channel padding and optional 2x2 max-pool + ReLU: a whole block tail in one pass). All
//! activations are NHWC with the frames one after another, so the head transposes are free and
//! the head convs write straight into the concatenated N×896 score and N×896×16 regressor
//! buffers. Weights are uploaded once; activations live in a few reused slot buffers (liveness
//! assigned at build time) that only grow when a larger batch arrives.
//!
//! Accuracy: the tests compare against the CPU network on real crops and require
//! |gpu − cpu| ≤ 2e-3 · max(1, |cpu|) on every logit and regressor. Speed: the kernels are
//! straightforward one-output-per-invocation loops, meant for real GPUs; on the CPU-emulated
//! lavapipe adapter they are far slower than the CPU network, so the detector prefers that there.
//!
//! ```ignore
//! let mut net = GpuBlazeFace::new(&ctx)?;
//! let (scores, boxes) = net.run(&frames_nhwc, n)?; // n×896 logits, n×896×16 regressors
//! ```

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::plan::{self, Kind, Plan, PlanError, Slot};
use gpu::GpuContext;

use crate::blazeface::{BLAZEFACE_ONNX, INPUT_LEN, RawOutput};

const SHADER: &str = include_str!("../shaders/blazeface_layers.wgsl");
/// Invocations per workgroup in every entry point of the shader.
const WORKGROUP: u32 = 64;

/// Errors of the GPU BlazeFace path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlazeFaceGpuError {
    /// The model could not be folded into GPU layers.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `run` got a buffer of the wrong size.
    #[error("blazeface gpu input has {got} floats, expected {n} frames of {per_frame}")]
    InputLength {
        /// Floats passed.
        got: usize,
        /// Frames requested.
        n: usize,
        /// Floats per frame (128×128×3).
        per_frame: usize,
    },
    /// The batch does not fit the dispatch grid.
    #[error("blazeface gpu batch of {n} frames exceeds the device limits: {why}")]
    BatchTooLarge {
        /// Frames requested.
        n: usize,
        /// Which limit.
        why: String,
    },
    /// Mapping the result buffer failed.
    #[error("blazeface gpu readback failed: {0}")]
    Readback(String),
    /// The device reported an error while running the network.
    #[error("blazeface gpu: {0}")]
    Device(#[from] gpu::GpuError),
}

/// Uniform block of one layer; mirrors `Params` in the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    kernel: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    w_off: u32,
    b_off: u32,
    flags: u32,
    res_c: u32,
    dst_stride: u32,
    dst_off: u32,
    _pad: [u32; 3],
}

const FLAG_RELU: u32 = 1;
const FLAG_RESIDUAL: u32 = 2;
const FLAG_POOL: u32 = 4;

/// Layer metadata kept after the weights went to the GPU.
#[derive(Debug)]
struct GpuLayer {
    /// The ONNX node's name, as a debug marker in the compute pass (GPU debuggers show it).
    name: String,
    kind: Kind,
    src: Slot,
    res: Option<Slot>,
    dst: Slot,
    params: Params,
    /// Output elements per frame (one invocation each).
    per_frame: u32,
}

/// Everything that does not depend on the batch: shared by clones of the network.
#[derive(Debug)]
struct Shared {
    ctx: Arc<GpuContext>,
    layout: wgpu::BindGroupLayout,
    /// Indexed by `Kind as usize` (Conv, Depthwise, Pointwise).
    pipelines: [wgpu::ComputePipeline; 3],
    weights: wgpu::Buffer,
    layers: Vec<GpuLayer>,
    /// Slot buffer index of every intermediate value.
    value_slot: Vec<usize>,
    slot_count: usize,
    /// Floats per frame of a slot buffer (the largest activation).
    slot_floats: usize,
    input_floats: usize,
    anchors: usize,
    coords: usize,
}

/// Buffers that depend on the batch capacity; rebuilt only when a larger batch arrives.
#[derive(Debug)]
struct Batch {
    capacity: usize,
    input: wgpu::Buffer,
    /// Activation slots; owned here, used through the bind groups.
    _slots: Vec<wgpu::Buffer>,
    scores: wgpu::Buffer,
    boxes: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_groups: Vec<wgpu::BindGroup>,
}

/// BlazeFace on the GPU: weights resident, batch buffers reused across calls.
///
/// Clones share the weights and pipelines and get their own batch buffers.
#[derive(Debug)]
pub struct GpuBlazeFace {
    shared: Arc<Shared>,
    /// One uniform block per layer (they carry the batch size).
    params: Vec<wgpu::Buffer>,
    /// Batch size the uniform blocks currently hold.
    params_n: usize,
    batch: Option<Batch>,
}

impl Clone for GpuBlazeFace {
    fn clone(&self) -> Self {
        Self::with_shared(self.shared.clone())
    }
}

impl GpuBlazeFace {
    /// [`Self::run`] on the `inputs.len() / INPUT_LEN` inputs of `inputs`, one output each.
    pub fn run_each(&mut self, inputs: &[f32]) -> Result<Vec<RawOutput>, BlazeFaceGpuError> {
        let n = inputs.len() / INPUT_LEN;
        let (scores, boxes) = self.run(inputs, n)?;
        let per_box = self.shared.anchors * self.shared.coords;
        Ok(scores
            .chunks_exact(self.shared.anchors)
            .zip(boxes.chunks_exact(per_box))
            .map(|(s, b)| RawOutput {
                scores: s.to_vec(),
                regressors: b.to_vec(),
            })
            .collect())
    }
}

impl GpuBlazeFace {
    /// Builds the network on `ctx`'s device: folds the embedded ONNX graph, uploads the weights
    /// and compiles the kernels.
    pub fn new(ctx: &Arc<GpuContext>) -> Result<Self, BlazeFaceGpuError> {
        let plan = plan::plan_from_onnx(BLAZEFACE_ONNX)?;
        if let Some(l) = plan
            .layers
            .iter()
            .find(|l| l.prelu.is_some() || matches!(l.dst, Slot::Output(_)))
        {
            return Err(PlanError::Unsupported {
                node: l.name.clone(),
                op: "Conv".into(),
                why: "prelu and plain graph outputs have no wgsl kernel".into(),
            }
            .into());
        }
        let shared = Shared::build(ctx.clone(), &plan);
        ctx.take_error()?;
        Ok(Self::with_shared(Arc::new(shared)))
    }

    fn with_shared(shared: Arc<Shared>) -> Self {
        let params = shared
            .layers
            .iter()
            .map(|_| {
                shared.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("blazeface params"),
                    size: std::mem::size_of::<Params>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Self {
            shared,
            params,
            params_n: 0,
            batch: None,
        }
    }
}

impl Shared {
    // The pipelines share one explicit bind group layout (the gpu crate's helper uses the
    // auto layout, which would drop the residual binding from entry points that never read it).
    fn build(ctx: Arc<GpuContext>, plan: &Plan) -> Self {
        use wgpu::util::DeviceExt;
        let device = ctx.device();
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("blazeface layer"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("blazeface"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("blazeface_layers.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let pipelines = [Kind::Conv, Kind::Depthwise, Kind::Pointwise].map(|kind| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kind.entry_point()),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(kind.entry_point()),
                compilation_options: Default::default(),
                cache: None,
            })
        });

        let (value_slot, slot_count) = assign_slots(plan);
        let slot_floats = plan
            .values
            .iter()
            .map(|s| s.len() as usize)
            .max()
            .unwrap_or(1);
        let anchors = plan.anchors as usize;
        let coords = plan.coords as usize;
        let mut all_weights = Vec::new();
        let mut layers = Vec::with_capacity(plan.layers.len());
        for l in &plan.layers {
            let w_off = all_weights.len() as u32;
            all_weights.extend_from_slice(&l.weights);
            let b_off = all_weights.len() as u32;
            all_weights.extend_from_slice(&l.bias);
            let (dst_stride, dst_off) = match l.dst {
                Slot::Scores { offset } => (plan.anchors, offset),
                Slot::Boxes { offset } => (plan.anchors * plan.coords, offset * plan.coords),
                Slot::Input | Slot::Value(_) | Slot::Output(_) => (l.output.len(), 0),
            };
            let mut flags = if l.relu { FLAG_RELU } else { 0 };
            if let Some(r) = l.residual {
                flags |= FLAG_RESIDUAL | if r.pool { FLAG_POOL } else { 0 };
            }
            let params = Params {
                n: 0,
                in_h: l.input.h,
                in_w: l.input.w,
                in_c: l.input.c,
                out_h: l.output.h,
                out_w: l.output.w,
                out_c: l.output.c,
                kernel: l.kernel,
                stride: l.stride,
                pad_top: l.pad_top,
                pad_left: l.pad_left,
                w_off,
                b_off,
                flags,
                res_c: l.residual.map_or(0, |r| r.channels),
                dst_stride,
                dst_off,
                _pad: [0; 3],
            };
            layers.push(GpuLayer {
                name: l.name.clone(),
                kind: l.kind,
                src: l.src,
                res: l.residual.map(|r| r.src),
                dst: l.dst,
                params,
                per_frame: l.output.len(),
            });
        }
        let weights = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("blazeface weights"),
            contents: bytemuck::cast_slice(&all_weights),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let input = plan.input;
        Shared {
            ctx,
            layout,
            pipelines,
            weights,
            layers,
            value_slot,
            slot_count,
            slot_floats,
            input_floats: input.len() as usize,
            anchors,
            coords,
        }
    }
}

impl GpuBlazeFace {
    /// Runs `n` frames (N×128×128×3 NHWC floats in [-1,1]) and returns the raw outputs:
    /// N×896 score logits and N×896×16 regressors, anchors in the model's order.
    pub fn run(
        &mut self,
        inputs: &[f32],
        n: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), BlazeFaceGpuError> {
        let sh = self.shared.clone();
        if n == 0 || inputs.len() != n * sh.input_floats {
            return Err(BlazeFaceGpuError::InputLength {
                got: inputs.len(),
                n,
                per_frame: sh.input_floats,
            });
        }
        let grids = sh.grids(n)?;
        self.ensure_capacity(n)?;
        let ctx = &sh.ctx;
        if self.params_n != n {
            for (l, buf) in sh.layers.iter().zip(&self.params) {
                let params = Params {
                    n: n as u32,
                    ..l.params
                };
                ctx.upload(buf, 0, bytemuck::bytes_of(&params));
            }
            self.params_n = n;
        }
        let Some(batch) = &self.batch else {
            unreachable!("ensure_capacity just created the batch buffers");
        };
        ctx.upload(&batch.input, 0, bytemuck::cast_slice(inputs));
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("blazeface"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("blazeface"),
                timestamp_writes: None,
            });
            for ((l, bg), (x, y)) in sh.layers.iter().zip(&batch.bind_groups).zip(grids) {
                pass.insert_debug_marker(&l.name);
                pass.set_pipeline(&sh.pipelines[l.kind as usize]);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        let score_bytes = (n * sh.anchors * 4) as u64;
        let box_bytes = (n * sh.anchors * sh.coords * 4) as u64;
        encoder.copy_buffer_to_buffer(&batch.scores, 0, &batch.staging, 0, score_bytes);
        encoder.copy_buffer_to_buffer(&batch.boxes, 0, &batch.staging, score_bytes, box_bytes);
        ctx.queue().submit([encoder.finish()]);

        let slice = batch.staging.slice(..score_bytes + box_bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        rx.recv()
            .map_err(|e| BlazeFaceGpuError::Readback(e.to_string()))?
            .map_err(|e| BlazeFaceGpuError::Readback(e.to_string()))?;
        let out: Vec<f32> = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| BlazeFaceGpuError::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view)
        };
        batch.staging.unmap();
        ctx.take_error()?;
        let mut scores = out;
        let boxes = scores.split_off(n * sh.anchors);
        Ok((scores, boxes))
    }

    fn ensure_capacity(&mut self, n: usize) -> Result<(), BlazeFaceGpuError> {
        if self.batch.as_ref().is_some_and(|b| b.capacity >= n) {
            return Ok(());
        }
        let sh = &self.shared;
        let device = sh.ctx.device();
        let biggest = (n * sh.slot_floats.max(sh.input_floats) * 4) as u64;
        sh.ctx.check_buffer_size(biggest)?;
        let storage = |label, floats: usize, extra| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (floats * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let input = storage(
            "blazeface input",
            n * sh.input_floats,
            wgpu::BufferUsages::COPY_DST,
        );
        let slots: Vec<_> = (0..sh.slot_count.max(1))
            .map(|_| {
                storage(
                    "blazeface activations",
                    n * sh.slot_floats,
                    wgpu::BufferUsages::empty(),
                )
            })
            .collect();
        let out_floats = n * sh.anchors;
        let scores = storage("blazeface scores", out_floats, wgpu::BufferUsages::COPY_SRC);
        let boxes = storage(
            "blazeface boxes",
            out_floats * sh.coords,
            wgpu::BufferUsages::COPY_SRC,
        );
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("blazeface readback"),
            size: (out_floats * (1 + sh.coords) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let buffer = |slot: Slot| match slot {
            // (No BlazeFace layer writes a plain output: `new` checks.)
            Slot::Input | Slot::Output(_) => &input,
            Slot::Value(v) => &slots[sh.value_slot[v]],
            Slot::Scores { .. } => &scores,
            Slot::Boxes { .. } => &boxes,
        };
        let bind_groups = sh
            .layers
            .iter()
            .zip(&self.params)
            .map(|(l, params)| {
                let src = buffer(l.src);
                // Layers without a residual bind their source again; the shader never reads it.
                let res = l.res.map_or(src, buffer);
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("blazeface layer"),
                    layout: &sh.layout,
                    entries: &[
                        entry(0, params),
                        entry(1, &sh.weights),
                        entry(2, src),
                        entry(3, res),
                        entry(4, buffer(l.dst)),
                    ],
                })
            })
            .collect();
        self.batch = Some(Batch {
            capacity: n,
            input,
            _slots: slots,
            scores,
            boxes,
            staging,
            bind_groups,
        });
        Ok(())
    }
}

impl Shared {
    /// Dispatch grid of every layer for `n` frames: 64-wide workgroups over a 2D grid whose
    /// dimensions stay within the device limit (65535 on most devices).
    fn grids(&self, n: usize) -> Result<Vec<(u32, u32)>, BlazeFaceGpuError> {
        let max = u64::from(self.ctx.limits().max_compute_workgroups_per_dimension);
        self.layers
            .iter()
            .map(|l| {
                let groups = (n as u64 * u64::from(l.per_frame)).div_ceil(u64::from(WORKGROUP));
                if groups > max * max {
                    return Err(BlazeFaceGpuError::BatchTooLarge {
                        n,
                        why: format!("{groups} workgroups do not fit a {max}x{max} grid"),
                    });
                }
                Ok(self.ctx.dispatch_grid(gpu::workgroups_for(
                    n as u64 * u64::from(l.per_frame),
                    WORKGROUP,
                )))
            })
            .collect()
    }
}

fn entry(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buf.as_entire_binding(),
    }
}

/// Assigns every intermediate value a slot buffer so that no slot is overwritten while its
/// value is still to be read. Returns the slot per value and the number of slots.
fn assign_slots(plan: &Plan) -> (Vec<usize>, usize) {
    let mut last_use = vec![0usize; plan.values.len()];
    for (i, l) in plan.layers.iter().enumerate() {
        for s in [Some(l.src), l.residual.map(|r| r.src)]
            .into_iter()
            .flatten()
        {
            if let Slot::Value(v) = s {
                last_use[v] = i;
            }
        }
    }
    let mut value_slot = vec![0usize; plan.values.len()];
    let mut holder: Vec<Option<usize>> = Vec::new();
    for (i, l) in plan.layers.iter().enumerate() {
        if let Slot::Value(v) = l.dst {
            let free = holder.iter().position(Option::is_none).unwrap_or_else(|| {
                holder.push(None);
                holder.len() - 1
            });
            holder[free] = Some(v);
            value_slot[v] = free;
        }
        for h in &mut holder {
            if h.is_some_and(|v| last_use[v] <= i) {
                *h = None;
            }
        }
    }
    (value_slot, holder.len())
}
