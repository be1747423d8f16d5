//! Reused device buffers: [`GrowBuffer`] and [`Readback`].

use crate::{GpuContext, GpuError};

/// A device buffer that is reallocated only when a request exceeds its capacity (growing to
/// the next power of two, at least 256 bytes), so equal batches reuse one allocation.
#[derive(Debug)]
pub struct GrowBuffer {
    label: String,
    usage: wgpu::BufferUsages,
    buffer: Option<wgpu::Buffer>,
    generation: u64,
}

impl GrowBuffer {
    /// An empty buffer; nothing is allocated until [`GrowBuffer::ensure`].
    pub fn new(label: impl Into<String>, usage: wgpu::BufferUsages) -> Self {
        Self {
            label: label.into(),
            usage,
            buffer: None,
            generation: 0,
        }
    }

    /// Makes room for `bytes` (checked against the device limits first) and returns the
    /// buffer. Contents are not preserved across a reallocation.
    pub fn ensure(&mut self, ctx: &GpuContext, bytes: u64) -> Result<&wgpu::Buffer, GpuError> {
        let need = bytes.max(4).next_multiple_of(4);
        if self.capacity() < need {
            ctx.check_buffer_size(need)?;
            let limit = ctx
                .limits()
                .max_buffer_size
                .min(ctx.limits().max_storage_buffer_binding_size);
            let size = need
                .next_power_of_two()
                .max(256)
                .min(limit / 4 * 4)
                .max(need);
            self.buffer = Some(ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(&self.label),
                size,
                usage: self.usage,
                mapped_at_creation: false,
            }));
            self.generation += 1;
        }
        Ok(self.buffer())
    }

    /// The current buffer. Panics before the first [`GrowBuffer::ensure`].
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .unwrap_or_else(|| panic!("GrowBuffer {:?} used before ensure()", self.label))
    }

    /// Bytes allocated (0 before the first `ensure`).
    pub fn capacity(&self) -> u64 {
        self.buffer.as_ref().map_or(0, wgpu::Buffer::size)
    }

    /// How many times the buffer has been (re)allocated: bind groups built on an older
    /// generation must be rebuilt.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Copies results into a reused `MAP_READ` staging buffer and maps it for reading.
#[derive(Debug)]
pub struct Readback {
    staging: GrowBuffer,
    pending: u64,
}

impl Readback {
    /// An empty staging buffer.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            staging: GrowBuffer::new(
                label,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            pending: 0,
        }
    }

    /// Records a copy of `bytes` (rounded up to 4) from `src` at `src_offset` into the
    /// staging buffer; submit `encoder` before [`Readback::read`].
    pub fn copy_from(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        src_offset: u64,
        bytes: u64,
    ) -> Result<(), GpuError> {
        let len = bytes.next_multiple_of(4);
        let staging = self.staging.ensure(ctx, len)?;
        encoder.copy_buffer_to_buffer(src, src_offset, staging, 0, len);
        self.pending = len;
        Ok(())
    }

    /// Waits for the device, maps the first `bytes` of the staging buffer, hands them to `f`
    /// and unmaps. Reports any device error raised meanwhile ([`GpuContext::take_error`]).
    pub fn read<R>(
        &self,
        ctx: &GpuContext,
        bytes: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GpuError> {
        if bytes > self.pending {
            return Err(GpuError::ReadbackTooLarge {
                label: self.staging.label.clone(),
                bytes,
                capacity: self.pending,
            });
        }
        let len = bytes.next_multiple_of(4).max(4);
        let slice = self.staging.buffer().slice(..len);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver lives until after the poll below.
            let _ = tx.send(r);
        });
        ctx.wait()?;
        let mapped = rx
            .recv()
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(message) = mapped {
            ctx.take_error()?;
            return Err(GpuError::Map {
                label: self.staging.label.clone(),
                message,
            });
        }
        let result = {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Map {
                label: self.staging.label.clone(),
                message: e.to_string(),
            })?;
            f(&view[..bytes as usize])
        };
        self.staging.buffer().unmap();
        ctx.take_error()?;
        Ok(result)
    }
}
