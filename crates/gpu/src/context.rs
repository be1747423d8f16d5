//! Adapter selection, device creation and the [`GpuContext`] helpers.

use std::sync::{Arc, Mutex};

use crate::{Acquired, BackendChoice, Compute, GpuError, GpuOptions, Notice};

/// A device and queue on one adapter, with the helpers the stages share. Cheap to share
/// behind the `Arc` in [`Compute::Gpu`].
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// The first uncaptured device error, reported by [`GpuContext::take_error`].
    error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("device_type", &self.info.device_type)
            .finish_non_exhaustive()
    }
}

/// Chooses the compute for a run (see the crate docs for the rules and environment overrides)
/// and says what it chose: [`Acquired::compute`], plus a [`Notice`] the caller should show when
/// the choice deserves one (gpu never prints; it also logs through `tracing`).
///
/// - [`BackendChoice::Cpu`]: `Compute::Cpu`, wgpu untouched, no notice.
/// - [`BackendChoice::Auto`] without a usable adapter: `Compute::Cpu` and a warning notice.
/// - [`BackendChoice::Auto`] when the best adapter is a software rasterizer (device type
///   `Cpu`, e.g. Mesa's lavapipe): `Compute::Cpu` with an information notice, because every
///   stage's CPU path is faster than its shaders emulated on the same cores
///   (`cargo xtask bench face|restore|infer` measure both side by side).
/// - [`BackendChoice::Auto`] on a Linux machine with no GPU device node at all (no
///   `/dev/dri/renderD*`, `/dev/nvidia*` or `/dev/dxg`) and no adapter name asked for:
///   `Ok(Compute::Cpu)` without creating a wgpu instance. Only a software adapter could be
///   found there, and `auto` skips it; creating the Vulkan instance would also run Mesa's
///   device-select layer, which prints `error: XDG_RUNTIME_DIR is invalid or not set` twice
///   to stderr in a server process without a session.
/// - [`BackendChoice::Gpu`] on a software adapter: the adapter, and a warning through
///   `tracing` and in the notice that the shaders run emulated on the CPU cores (slower than `cpu`).
/// - [`BackendChoice::Gpu`] without a usable adapter: an error naming what was searched.
///
/// Never panics for a missing adapter or device.
pub fn acquire(opts: &GpuOptions) -> Result<Acquired, GpuError> {
    let cpu = |notice: Option<Notice>| Acquired {
        compute: Compute::Cpu,
        notice,
    };
    if opts.backend == BackendChoice::Cpu {
        tracing::info!("compute: CPU path chosen by options");
        return Ok(cpu(None));
    }
    if opts.backend == BackendChoice::Auto
        && opts.adapter_name.is_none()
        && !gpu_device_node_exists()
    {
        let text = "no GPU device on this machine; running on the CPU";
        tracing::info!("{text}");
        return Ok(cpu(Some(Notice {
            warning: false,
            text: text.into(),
        })));
    }
    match GpuContext::new(opts) {
        Ok(ctx)
            if opts.backend == BackendChoice::Auto
                && ctx.info.device_type == wgpu::DeviceType::Cpu =>
        {
            let text = format!(
                "the only GPU adapter is {} (a software rasterizer); the CPU path is faster, \
                 running on the CPU (ask for the GPU backend, e.g. FACESYNC_BACKEND=gpu, to use it)",
                ctx.info.name
            );
            tracing::info!("{text}");
            Ok(cpu(Some(Notice {
                warning: false,
                text,
            })))
        }
        Ok(ctx) if ctx.info.device_type == wgpu::DeviceType::Cpu => {
            let text = format!(
                "backend gpu: {} is a software rasterizer, the shaders run emulated on the CPU \
                 cores (several times slower than backend cpu)",
                ctx.info.name
            );
            tracing::warn!("{text}");
            Ok(Acquired {
                compute: Compute::Gpu(Arc::new(ctx)),
                notice: Some(Notice {
                    warning: true,
                    text,
                }),
            })
        }
        Ok(ctx) => {
            tracing::info!(
                adapter = %ctx.info.name,
                backend = %ctx.info.backend,
                "compute: using GPU adapter"
            );
            Ok(Acquired {
                compute: Compute::Gpu(Arc::new(ctx)),
                notice: None,
            })
        }
        Err(err) if opts.backend == BackendChoice::Auto => {
            let text = format!("no usable GPU adapter ({err}); running on the CPU");
            tracing::warn!("{text}");
            Ok(cpu(Some(Notice {
                warning: true,
                text,
            })))
        }
        Err(err) => Err(err),
    }
}

/// Whether a hardware GPU could exist: false only on Linux when none of the device nodes that
/// GPU drivers create is there (DRM render nodes, NVIDIA's, WSL's `/dev/dxg`).
fn gpu_device_node_exists() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let render_node = std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    let other = std::fs::read_dir("/dev").is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("nvidia") || name == "dxg"
        })
    });
    render_node || other
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

impl GpuContext {
    fn new(opts: &GpuOptions) -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = opts.wgpu_backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(opts.wgpu_backends));
        let seen: Vec<String> = adapters
            .iter()
            .map(|a| {
                let info = a.get_info();
                format!("{} ({})", info.name, info.backend)
            })
            .collect();
        let filter = opts.adapter_name.as_ref().map(|s| s.to_lowercase());
        let adapter = adapters
            .into_iter()
            .filter(|a| {
                let info = a.get_info();
                info.backend != wgpu::Backend::Noop
                    && filter
                        .as_ref()
                        .is_none_or(|f| info.name.to_lowercase().contains(f))
            })
            .min_by_key(|a| {
                let info = a.get_info();
                (type_rank(info.device_type), backend_rank(info.backend))
            })
            .ok_or_else(|| GpuError::NoAdapter {
                backends: format!("{:?}", opts.wgpu_backends),
                name_filter: opts.adapter_name.clone(),
                seen,
            })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("facesync"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            message: e.to_string(),
        })?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = Arc::clone(&error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            tracing::error!("wgpu device error: {e}");
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        Ok(Self {
            device,
            queue,
            info,
            limits,
            error,
        })
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    /// The adapter's full description.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device limits (the adapter's own limits).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The first device error raised outside an error scope since the last call, if any.
    /// Stages call it after a batch (`Readback::read` does) so a shader or binding bug
    /// becomes an error instead of silently wrong pixels.
    pub fn take_error(&self) -> Result<(), GpuError> {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(message) => Err(GpuError::Device(message)),
            None => Ok(()),
        }
    }

    /// Compiles `wgsl` and builds a compute pipeline for `entry` with the layout derived from
    /// the shader (`pipeline.get_bind_group_layout(i)` gives the layouts). Validation errors
    /// come back as [`GpuError::Pipeline`] instead of a panic.
    pub fn compute_pipeline(
        &self,
        label: &str,
        wgsl: &str,
        entry: &str,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        match pollster::block_on(scope.pop()) {
            Some(err) => Err(GpuError::Pipeline {
                label: label.to_owned(),
                entry: entry.to_owned(),
                message: err.to_string(),
            }),
            None => Ok(pipeline),
        }
    }

    /// Checks that one buffer of `bytes` fits the device limits
    /// (`max_buffer_size` and `max_storage_buffer_binding_size`).
    pub fn check_buffer_size(&self, bytes: u64) -> Result<(), GpuError> {
        check_size(&self.limits, bytes)
    }

    /// Splits a 1-D dispatch of `workgroups` into a 2-D grid within
    /// `max_compute_workgroups_per_dimension` (see the crate docs for the index convention).
    pub fn dispatch_grid(&self, workgroups: u32) -> (u32, u32) {
        crate::dispatch_grid(workgroups, self.limits.max_compute_workgroups_per_dimension)
    }

    /// Writes `data` into `buffer` at `offset` (a multiple of 4) through the queue; a tail
    /// that is not a multiple of 4 bytes is zero-padded (the buffer must have room for it).
    pub fn upload(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) {
        let aligned = data.len() / 4 * 4;
        if aligned > 0 {
            self.queue.write_buffer(buffer, offset, &data[..aligned]);
        }
        let tail = &data[aligned..];
        if !tail.is_empty() {
            let mut last = [0u8; 4];
            last[..tail.len()].copy_from_slice(tail);
            self.queue
                .write_buffer(buffer, offset + aligned as u64, &last);
        }
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(())
    }
}

pub(crate) fn check_size(limits: &wgpu::Limits, bytes: u64) -> Result<(), GpuError> {
    if bytes > limits.max_buffer_size {
        return Err(GpuError::BufferTooLarge {
            bytes,
            limit_name: "max_buffer_size",
            limit: limits.max_buffer_size,
        });
    }
    let binding = limits.max_storage_buffer_binding_size;
    if bytes > binding {
        return Err(GpuError::BufferTooLarge {
            bytes,
            limit_name: "max_storage_buffer_binding_size",
            limit: binding,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_check_names_the_limit() {
        let limits = wgpu::Limits::downlevel_defaults();
        assert_eq!(check_size(&limits, 1024), Ok(()));
        let too_big = limits.max_storage_buffer_binding_size + 4;
        match check_size(&limits, too_big) {
            Err(GpuError::BufferTooLarge {
                bytes, limit_name, ..
            }) => {
                assert_eq!(bytes, too_big);
                assert_eq!(limit_name, "max_storage_buffer_binding_size");
            }
            other => panic!("expected BufferTooLarge, got {other:?}"),
        }
        let err = check_size(&limits, limits.max_buffer_size + 1).unwrap_err();
        assert!(err.to_string().contains("max_buffer_size"), "{err}");
    }
}
