//! Tests on the real adapter (lavapipe on CI). If no adapter exists they fail loudly: the
//! machines this project is tested on have one.

use facesync_gpu as gpu;
use gpu::{BackendChoice, Compute, GpuOptions, GrowBuffer, Readback, wgpu};

const DOUBLE_PLUS_INDEX: &str = "
@group(0) @binding(0) var<storage, read_write> data: array<u32>;
const WG: u32 = 64u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= arrayLength(&data)) { return; }
    data[i] = data[i] * 2u + i;
}";

fn gpu_context() -> std::sync::Arc<gpu::GpuContext> {
    let opts = GpuOptions {
        backend: BackendChoice::Gpu,
        ..GpuOptions::from_env()
    };
    match gpu::acquire(&opts).map(gpu::Acquired::into_compute) {
        Ok(Compute::Gpu(ctx)) => ctx,
        other => panic!(
            "NO GPU ADAPTER: these tests need one (install mesa-vulkan-drivers for lavapipe): {other:?}"
        ),
    }
}

/// Runs the shader over `input` and returns the result.
fn run(
    ctx: &gpu::GpuContext,
    buf: &mut GrowBuffer,
    readback: &mut Readback,
    input: &[u32],
) -> Vec<u32> {
    let pipeline = ctx
        .compute_pipeline("double", DOUBLE_PLUS_INDEX, "main")
        .expect("pipeline compiles");
    let bytes: &[u8] = bytemuck::cast_slice(input);
    let len = bytes.len() as u64;
    buf.ensure(ctx, len).unwrap();
    ctx.upload(buf.buffer(), 0, bytes);
    let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("double"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: buf.buffer(),
                offset: 0,
                size: std::num::NonZeroU64::new(len),
            }),
        }],
    });
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        let (x, y) = ctx.dispatch_grid(gpu::workgroups_for(input.len() as u64, 64));
        pass.dispatch_workgroups(x, y, 1);
    }
    readback
        .copy_from(ctx, &mut encoder, buf.buffer(), 0, len)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    readback
        .read(ctx, len, |b| bytemuck::cast_slice::<u8, u32>(b).to_vec())
        .unwrap()
}

fn usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC
}

#[test]
fn round_trip_and_buffer_reuse() {
    let ctx = gpu_context();
    assert!(!ctx.adapter_name().is_empty());
    let mut buf = GrowBuffer::new("data", usage());
    let mut readback = Readback::new("readback");
    let input: Vec<u32> = (0..1000).map(|i| i * 3).collect();
    let out = run(&ctx, &mut buf, &mut readback, &input);
    let expected: Vec<u32> = (0..1000).map(|i| i * 6 + i).collect();
    assert_eq!(out, expected);
    // Same or smaller batches reuse the buffer.
    let generation = buf.generation();
    for n in [1000, 10, 999] {
        let input: Vec<u32> = vec![1; n];
        let out = run(&ctx, &mut buf, &mut readback, &input);
        assert_eq!(out, (0..n as u32).map(|i| 2 + i).collect::<Vec<_>>());
    }
    assert_eq!(
        buf.generation(),
        generation,
        "no reallocation for equal or smaller batches"
    );
}

#[test]
fn dispatch_split_covers_more_than_65535_workgroups() {
    let ctx = gpu_context();
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    // Enough elements for `max + 1000` workgroups of 64, plus a ragged tail.
    let n = (max as usize + 1000) * 64 + 17;
    let (x, y) = ctx.dispatch_grid(gpu::workgroups_for(n as u64, 64));
    assert!(y > 1, "the test must actually need a 2-D grid: ({x}, {y})");
    let input = vec![5u32; n];
    let out = run(
        &ctx,
        &mut GrowBuffer::new("big", usage()),
        &mut Readback::new("big"),
        &input,
    );
    let wrong = out
        .iter()
        .enumerate()
        .filter(|&(i, &v)| v != 10 + i as u32)
        .count();
    assert_eq!(wrong, 0, "{wrong} of {n} elements wrong");
}

#[test]
fn upload_pads_unaligned_tails() {
    let ctx = gpu_context();
    let mut buf = GrowBuffer::new("bytes", usage());
    buf.ensure(&ctx, 8).unwrap();
    ctx.upload(buf.buffer(), 0, &[1, 2, 3, 4, 5, 6, 7]);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let mut readback = Readback::new("bytes");
    readback
        .copy_from(&ctx, &mut encoder, buf.buffer(), 0, 8)
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let out = readback.read(&ctx, 8, <[u8]>::to_vec).unwrap();
    assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 0]);
    assert!(matches!(
        readback.read(&ctx, 64, |_| ()),
        Err(gpu::GpuError::ReadbackTooLarge { .. })
    ));
}

#[test]
fn invalid_wgsl_is_an_error_not_a_panic() {
    let ctx = gpu_context();
    let err = ctx
        .compute_pipeline(
            "broken",
            "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
            "main",
        )
        .unwrap_err();
    assert!(matches!(err, gpu::GpuError::Pipeline { .. }), "{err}");
    // The device is still usable afterwards.
    ctx.compute_pipeline("ok", DOUBLE_PLUS_INDEX, "main")
        .unwrap();
    ctx.take_error().unwrap();
}

#[test]
fn oversized_buffers_are_refused_before_allocation() {
    let ctx = gpu_context();
    let bytes = ctx
        .limits()
        .max_buffer_size
        .max(ctx.limits().max_storage_buffer_binding_size)
        + 4;
    let err = GrowBuffer::new("huge", usage())
        .ensure(&ctx, bytes)
        .unwrap_err();
    assert!(matches!(err, gpu::GpuError::BufferTooLarge { .. }), "{err}");
}

#[test]
fn cpu_choice_never_touches_wgpu() {
    let acquired = gpu::acquire(&GpuOptions::cpu()).unwrap();
    assert_eq!(acquired.notice, None);
    let compute = acquired.compute;
    assert!(matches!(compute, Compute::Cpu));
    assert_eq!(compute.name(), "cpu");
}

#[test]
fn auto_without_matching_adapter_falls_back_to_cpu_and_gpu_errors() {
    let opts = GpuOptions {
        adapter_name: Some("no adapter is called this".into()),
        ..GpuOptions::default()
    };
    let auto = gpu::acquire(&opts).unwrap();
    assert!(matches!(auto.compute, Compute::Cpu));
    let notice = auto.notice.expect("a fallback to the CPU is reported");
    assert!(notice.warning);
    assert!(
        notice.text.contains("no adapter is called this") && notice.text.contains("CPU"),
        "{notice:?}"
    );
    let strict = GpuOptions {
        backend: BackendChoice::Gpu,
        ..opts
    };
    let err = gpu::acquire(&strict).unwrap_err();
    assert!(matches!(err, gpu::GpuError::NoAdapter { .. }), "{err}");
    assert!(
        err.to_string().contains("no adapter is called this"),
        "{err}"
    );
}

#[test]
fn auto_skips_a_software_adapter() {
    let ctx = gpu_context();
    let opts = GpuOptions {
        backend: BackendChoice::Auto,
        ..GpuOptions::from_env()
    };
    let acquired = gpu::acquire(&opts).unwrap();
    let software = ctx.adapter_info().device_type == gpu::wgpu::DeviceType::Cpu;
    // Without any GPU device node, `auto` does not even look for the software adapter.
    assert_eq!(
        acquired.notice.as_ref().map(|n| {
            n.text.contains("software rasterizer")
                || n.text.contains("no GPU device on this machine")
        }),
        software.then_some(true),
        "{:?}",
        acquired.notice
    );
    let auto = acquired.compute;
    if ctx.adapter_info().device_type == gpu::wgpu::DeviceType::Cpu {
        assert!(
            matches!(auto, Compute::Cpu),
            "{ctx:?} is a software adapter"
        );
    } else {
        assert_eq!(
            auto.name(),
            ctx.adapter_name(),
            "a hardware adapter is used"
        );
    }
}
