//! Shared wgpu plumbing for facesync's per-pixel stages: adapter choice with a CPU fallback,
//! pipeline compilation, reusable buffers, readback and dispatch splitting.
//!
//! # Why
//! Every heavy stage (`face-proc`, `restore`, ...) runs WGSL compute shaders when an adapter
//! exists and an equivalent CPU path when none does. Doing adapter selection, environment
//! overrides, buffer reuse and the 65,535-workgroups-per-dimension limit once here keeps the
//! stages small and makes them behave the same: no stage ever panics because a machine has no
//! GPU, and the "running on CPU" warning is produced once, by [`acquire`], which returns it
//! ([`Acquired::notice`]) for the caller to show (the pipeline posts it as a progress message).
//!
//! Stages receive a [`Compute`]: either `Compute::Gpu(Arc<GpuContext>)` or `Compute::Cpu`.
//! Nothing is cached globally: call [`acquire`] once per run and clone the `Compute`.
//!
//! # Environment overrides
//! [`GpuOptions::resolve`] (what the pipeline calls, so every front end gets the same rule) and
//! [`GpuOptions::from_env`] read the variables below. Precedence for the backend: an explicit
//! non-default choice (`gpu`, `cpu`) > `FACESYNC_BACKEND` > `auto`; `resolve` refuses an unknown
//! `FACESYNC_BACKEND` with an error naming it.
//! - `FACESYNC_BACKEND=auto|gpu|cpu`: `auto` (default) uses a hardware adapter when one exists
//!   and the CPU otherwise (a software adapter such as lavapipe runs the shaders on the same
//!   cores, slower than the CPU paths: `auto` skips it); `gpu` uses any adapter, software
//!   included, and makes a missing one an error; `cpu` never touches wgpu.
//! - `WGPU_ADAPTER_NAME=<substring>`: only adapters whose name contains it (case-insensitive).
//! - `WGPU_BACKEND=vulkan,gl,...`: the wgpu backends to search (wgpu's own syntax,
//!   [`wgpu::Backends::from_comma_list`]).
//!
//! Among the matching adapters the preferred one is a discrete GPU, then integrated, virtual,
//! software (`Cpu`, e.g. Mesa's lavapipe) and other; ties go to Vulkan/Metal/DX12 before GL.
//!
//! # Dispatch-index convention
//! A 1-D problem of `n` elements with workgroup size `WG` needs `ceil(n / WG)` workgroups, which
//! can exceed the per-dimension limit (65,535 on most adapters). [`GpuContext::dispatch_grid`]
//! splits the count into a 2-D grid `(x, y)` with `x * y >= workgroups`; the 1-D shaders
//! (`face_warp`, `restore_blend`, `infer_poisson`, `blazeface_layers`) then compute their linear
//! index as
//!
//! ```wgsl
//! let i = gid.x + gid.y * nwg.x * WG;   // gid: global_invocation_id, nwg: num_workgroups
//! if (i >= n) { return; }               // the grid may overshoot
//! ```
//!
//! The restore warp, erode and blur shaders instead dispatch a 2-D tile grid per face
//! (`gid.z` = face), each dimension well under the limit.
//!
//! # Buffers
//! [`GrowBuffer`] is a storage/uniform/staging buffer that reallocates only when a batch needs
//! more capacity than it has (growing to the next power of two), so a steady stream of equal
//! batches creates no buffers after the first. [`GpuContext::upload`] writes bytes of any
//! length (padding the tail to the 4-byte copy alignment) and [`Readback`] copies a result into
//! a reused `MAP_READ` staging buffer and maps it. Check sizes against the device limits with
//! [`GpuContext::check_buffer_size`] before work starts.
//!
//! # Example
//! ```no_run
//! use facesync_gpu::{Compute, GpuOptions, GrowBuffer, Readback};
//! # fn main() -> Result<(), facesync_gpu::GpuError> {
//! let options = GpuOptions::resolve(facesync_gpu::BackendChoice::Auto)?;
//! let compute = facesync_gpu::acquire(&options)?.compute;
//! let Compute::Gpu(ctx) = compute else {
//!     return Ok(()); // run the CPU path instead
//! };
//! const SRC: &str = "
//! @group(0) @binding(0) var<storage, read_write> data: array<u32>;
//! @compute @workgroup_size(64)
//! fn main(@builtin(global_invocation_id) gid: vec3<u32>,
//!         @builtin(num_workgroups) nwg: vec3<u32>) {
//!     let i = gid.x + gid.y * nwg.x * 64u;
//!     if (i >= arrayLength(&data)) { return; }
//!     data[i] = data[i] * 2u;
//! }";
//! let pipeline = ctx.compute_pipeline("double", SRC, "main")?;
//! let input: Vec<u32> = (0..1000).collect();
//! let bytes: &[u8] = bytemuck::cast_slice(&input);
//! let mut buf = GrowBuffer::new("data", wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC);
//! buf.ensure(&ctx, bytes.len() as u64)?;
//! ctx.upload(buf.buffer(), 0, bytes);
//! let bind = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
//!     label: Some("double"),
//!     layout: &pipeline.get_bind_group_layout(0),
//!     entries: &[wgpu::BindGroupEntry { binding: 0, resource: buf.buffer().as_entire_binding() }],
//! });
//! let mut encoder = ctx.device().create_command_encoder(&Default::default());
//! {
//!     let mut pass = encoder.begin_compute_pass(&Default::default());
//!     pass.set_pipeline(&pipeline);
//!     pass.set_bind_group(0, &bind, &[]);
//!     let (x, y) = ctx.dispatch_grid(facesync_gpu::workgroups_for(1000, 64));
//!     pass.dispatch_workgroups(x, y, 1);
//! }
//! let mut readback = Readback::new("double readback");
//! readback.copy_from(&ctx, &mut encoder, buf.buffer(), 0, bytes.len() as u64)?;
//! ctx.queue().submit([encoder.finish()]);
//! let mut out = vec![0u32; 1000];
//! readback.read(&ctx, bytes.len() as u64, |b| out.copy_from_slice(bytemuck::cast_slice(b)))?;
//! assert_eq!(out[999], 1998);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod buffers;
mod context;

pub use buffers::{GrowBuffer, Readback};
pub use context::{GpuContext, acquire};
pub use wgpu;

use std::sync::Arc;

/// Which kind of compute a run should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// An adapter when one exists, the CPU otherwise (with one warning).
    #[default]
    Auto,
    /// An adapter or an error.
    Gpu,
    /// The CPU path; wgpu is not touched.
    Cpu,
}

impl BackendChoice {
    /// Every choice, in the order of [`BackendChoice::NAMES`].
    pub const ALL: [BackendChoice; 3] =
        [BackendChoice::Auto, BackendChoice::Gpu, BackendChoice::Cpu];
    /// The accepted spellings (`auto`, `gpu`, `cpu`): what [`Display`](std::fmt::Display) prints
    /// and [`FromStr`](std::str::FromStr) reads (case-insensitive, surrounding blanks ignored).
    pub const NAMES: [&'static str; 3] = ["auto", "gpu", "cpu"];

    /// The name `Display` prints and `FromStr` reads back.
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        }
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = ParseBackendError;

    /// `auto`, `gpu` or `cpu`, case-insensitive, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseBackendError {
                value: s.to_owned(),
            })
    }
}

/// A string that is not a [`BackendChoice`]; names the value and the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {value:?}: expected one of auto, gpu, cpu")]
pub struct ParseBackendError {
    /// The rejected text, as given.
    pub value: String,
}

/// How [`acquire`] chooses its compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// GPU, CPU or whichever exists.
    pub backend: BackendChoice,
    /// Only adapters whose name contains this (case-insensitive).
    pub adapter_name: Option<String>,
    /// The wgpu backends to search.
    pub wgpu_backends: wgpu::Backends,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            adapter_name: None,
            wgpu_backends: wgpu::Backends::all(),
        }
    }
}

impl GpuOptions {
    /// The CPU path, no adapter.
    pub fn cpu() -> Self {
        Self {
            backend: BackendChoice::Cpu,
            ..Self::default()
        }
    }

    /// Options from `FACESYNC_BACKEND`, `WGPU_ADAPTER_NAME` and `WGPU_BACKEND` (see the crate
    /// docs); unset or unrecognised values keep the defaults (an unrecognised
    /// `FACESYNC_BACKEND` is logged with `tracing::warn!`). Runs should use
    /// [`GpuOptions::resolve`], which refuses an unrecognised value instead.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The options for a run whose caller asked for `backend`: the one place where
    /// `FACESYNC_BACKEND` meets an explicit choice, so every front end (CLI, Python, queue
    /// workers, xtask) behaves the same.
    ///
    /// Precedence: an explicit non-default `backend` (`Gpu`, `Cpu`) wins; with `Auto` (the
    /// default) `FACESYNC_BACKEND` decides when it is set; otherwise `Auto`. An unrecognised
    /// `FACESYNC_BACKEND` is an error naming the variable and its value
    /// ([`GpuError::Env`]), whatever `backend` is. `WGPU_ADAPTER_NAME` and `WGPU_BACKEND` are read
    /// as in [`GpuOptions::from_env`].
    pub fn resolve(backend: BackendChoice) -> Result<Self, GpuError> {
        Self::resolve_from(backend, |name| std::env::var(name).ok())
    }

    fn resolve_from(
        backend: BackendChoice,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GpuError> {
        let mut opts = Self::wgpu_from_vars(&var);
        let from_env = env_backend(&var)?;
        opts.backend = match backend {
            BackendChoice::Auto => from_env.unwrap_or(BackendChoice::Auto),
            explicit => explicit,
        };
        Ok(opts)
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut opts = Self::wgpu_from_vars(&var);
        match env_backend(&var) {
            Ok(backend) => opts.backend = backend.unwrap_or_default(),
            Err(err) => tracing::warn!("{err}; using auto"),
        }
        opts
    }

    /// Defaults plus `WGPU_ADAPTER_NAME` and `WGPU_BACKEND`.
    fn wgpu_from_vars(var: &impl Fn(&str) -> Option<String>) -> Self {
        let mut opts = Self {
            adapter_name: var("WGPU_ADAPTER_NAME").filter(|s| !s.trim().is_empty()),
            ..Self::default()
        };
        if let Some(list) = var("WGPU_BACKEND").filter(|s| !s.trim().is_empty()) {
            let backends = wgpu::Backends::from_comma_list(&list);
            if !backends.is_empty() {
                opts.wgpu_backends = backends;
            }
        }
        opts
    }
}

/// The environment variable that chooses the backend when the caller leaves it at `Auto`.
pub const BACKEND_ENV: &str = "FACESYNC_BACKEND";

/// `FACESYNC_BACKEND`, if set and not blank.
fn env_backend(var: &impl Fn(&str) -> Option<String>) -> Result<Option<BackendChoice>, GpuError> {
    match var(BACKEND_ENV).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|source| GpuError::Env {
            variable: BACKEND_ENV,
            source,
        }),
    }
}

/// What [`acquire`] chose, for the caller to report (gpu itself only logs through `tracing`).
#[derive(Debug, Clone)]
pub struct Acquired {
    /// The compute to hand to the stages.
    pub compute: Compute,
    /// Something the user should hear about the choice (a fallback to the CPU, a skipped
    /// software adapter), if any.
    pub notice: Option<Notice>,
}

impl Acquired {
    /// Just the compute.
    pub fn into_compute(self) -> Compute {
        self.compute
    }
}

/// A remark about the compute choice, for a progress message or a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `true` for a warning (the run asked for `auto` and got the CPU because no adapter
    /// worked), `false` for information.
    pub warning: bool,
    /// The text, naming the adapter and how to choose another backend.
    pub text: String,
}

/// The compute every stage receives: a GPU context or the CPU path.
#[derive(Debug, Clone)]
pub enum Compute {
    /// Run the WGSL shaders on this device.
    Gpu(Arc<GpuContext>),
    /// Run the CPU implementation.
    Cpu,
}

impl Compute {
    /// The adapter name, or `"cpu"`.
    pub fn name(&self) -> &str {
        match self {
            Compute::Gpu(ctx) => ctx.adapter_name(),
            Compute::Cpu => "cpu",
        }
    }

    /// The GPU context, if any.
    pub fn gpu(&self) -> Option<&Arc<GpuContext>> {
        match self {
            Compute::Gpu(ctx) => Some(ctx),
            Compute::Cpu => None,
        }
    }
}

/// What went wrong acquiring or using the GPU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter matched (only returned for [`BackendChoice::Gpu`]).
    #[error(
        "no wgpu adapter found (backends {backends}, name filter {name_filter:?}; adapters seen: {seen:?})"
    )]
    NoAdapter {
        /// The backends searched.
        backends: String,
        /// The `adapter_name` filter.
        name_filter: Option<String>,
        /// Names of all adapters found before filtering.
        seen: Vec<String>,
    },
    /// The adapter refused to create a device.
    #[error("adapter {adapter:?} could not create a device: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },
    /// A shader or pipeline failed to compile.
    #[error("compute pipeline {label:?} (entry point {entry:?}) failed: {message}")]
    Pipeline {
        /// Pipeline label.
        label: String,
        /// Entry point.
        entry: String,
        /// wgpu's validation message.
        message: String,
    },
    /// A buffer would exceed a device limit.
    #[error("buffer of {bytes} bytes exceeds the device limit {limit_name} = {limit} bytes")]
    BufferTooLarge {
        /// Requested size.
        bytes: u64,
        /// Which limit.
        limit_name: &'static str,
        /// The limit's value.
        limit: u64,
    },
    /// Mapping a staging buffer failed.
    #[error("mapping staging buffer {label:?} failed: {message}")]
    Map {
        /// Buffer label.
        label: String,
        /// Cause.
        message: String,
    },
    /// A readback asked for more bytes than the staging buffer holds.
    #[error("readback {label:?} of {bytes} bytes exceeds the {capacity} bytes copied")]
    ReadbackTooLarge {
        /// Buffer label.
        label: String,
        /// Requested bytes.
        bytes: u64,
        /// Staging capacity.
        capacity: u64,
    },
    /// An environment variable holds a value that is not one of its choices.
    #[error("environment variable {variable}: {source}")]
    Env {
        /// The variable (`FACESYNC_BACKEND`).
        variable: &'static str,
        /// The rejected value and the accepted ones.
        #[source]
        source: ParseBackendError,
    },
    /// The device reported an error (validation, out of memory, device lost).
    #[error("gpu device error: {0}")]
    Device(String),
}

/// Parses and validates a WGSL source with naga, no adapter involved: what each stage crate's
/// plain `cargo test` runs on the shaders it embeds (one source of truth per shader, inside the
/// crate that uses it). Capabilities are `naga::valid::Capabilities::default()`, the set wgpu
/// grants a device created without optional features (as [`acquire`] creates them), so a
/// shader that passes here compiles on any adapter wgpu accepts. The error is naga's report,
/// with the failing line.
pub fn validate_wgsl(source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok(())
}

/// Workgroups needed for `elements` items at `wg_size` items per workgroup (saturating at
/// `u32::MAX`).
pub fn workgroups_for(elements: u64, wg_size: u32) -> u32 {
    let groups = elements.div_ceil(u64::from(wg_size.max(1)));
    u32::try_from(groups).unwrap_or(u32::MAX)
}

/// Splits `workgroups` into a 2-D grid `(x, y)` with `x, y <= max_per_dim` and
/// `x * y >= workgroups`, as square-free as possible (`x` balanced so the overshoot is below
/// one row). Zero workgroups gives `(0, 1)`. Requires `workgroups <= max_per_dim²` (over
/// 4·10⁹ workgroups at the usual 65,535); beyond that `y` exceeds the limit.
pub fn dispatch_grid(workgroups: u32, max_per_dim: u32) -> (u32, u32) {
    let max = max_per_dim.max(1);
    if workgroups <= max {
        return (workgroups, 1);
    }
    let rows = workgroups.div_ceil(max);
    let x = workgroups.div_ceil(rows);
    (x, workgroups.div_ceil(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts_from(vars: &[(&str, &str)]) -> GpuOptions {
        GpuOptions::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn env_parsing() {
        assert_eq!(opts_from(&[]), GpuOptions::default());
        assert_eq!(
            opts_from(&[("FACESYNC_BACKEND", "CPU")]).backend,
            BackendChoice::Cpu
        );
        assert_eq!(
            opts_from(&[("FACESYNC_BACKEND", "gpu")]).backend,
            BackendChoice::Gpu
        );
        assert_eq!(
            opts_from(&[("FACESYNC_BACKEND", "quantum")]).backend,
            BackendChoice::Auto
        );
        for (explicit, env, expected) in [
            (BackendChoice::Auto, None, Ok(BackendChoice::Auto)),
            (BackendChoice::Auto, Some("cpu"), Ok(BackendChoice::Cpu)),
            (BackendChoice::Auto, Some(" GPU "), Ok(BackendChoice::Gpu)),
            (BackendChoice::Auto, Some(""), Ok(BackendChoice::Auto)),
            (BackendChoice::Gpu, Some("cpu"), Ok(BackendChoice::Gpu)),
            (BackendChoice::Cpu, None, Ok(BackendChoice::Cpu)),
            (BackendChoice::Cpu, Some("gpu"), Ok(BackendChoice::Cpu)),
            (BackendChoice::Cpu, Some("tpu"), Err("tpu")),
            (BackendChoice::Auto, Some("tpu"), Err("tpu")),
        ] {
            let got = GpuOptions::resolve_from(explicit, |name| {
                (name == BACKEND_ENV)
                    .then(|| env.map(String::from))
                    .flatten()
            });
            match (got, expected) {
                (Ok(opts), Ok(b)) => assert_eq!(opts.backend, b, "{explicit} {env:?}"),
                (Err(err), Err(value)) => assert_eq!(
                    err.to_string(),
                    format!(
                        "environment variable FACESYNC_BACKEND: unknown backend {value:?}: \
                         expected one of auto, gpu, cpu"
                    )
                ),
                (got, expected) => panic!("{explicit} {env:?}: {got:?}, expected {expected:?}"),
            }
        }
        assert_eq!(
            opts_from(&[("WGPU_ADAPTER_NAME", "llvm")]).adapter_name,
            Some("llvm".into())
        );
        assert_eq!(
            opts_from(&[("WGPU_BACKEND", "vulkan,gl")]).wgpu_backends,
            wgpu::Backends::VULKAN | wgpu::Backends::GL
        );
        assert_eq!(
            opts_from(&[("WGPU_BACKEND", "nonsense")]).wgpu_backends,
            wgpu::Backends::all()
        );
    }

    proptest::proptest! {
        #[test]
        fn backend_names_round_trip(i in 0usize..3, upper in proptest::bool::ANY, pad in " {0,2}") {
            let b = BackendChoice::ALL[i];
            proptest::prop_assert_eq!(b.to_string(), BackendChoice::NAMES[i]);
            let text = if upper { b.to_string().to_uppercase() } else { b.to_string() };
            proptest::prop_assert_eq!(format!("{pad}{text}{pad}").parse::<BackendChoice>(), Ok(b));
        }

        #[test]
        fn other_backend_strings_are_rejected_by_name(s in "\\PC{0,12}") {
            let known = BackendChoice::NAMES.iter().any(|n| n.eq_ignore_ascii_case(s.trim()));
            match s.parse::<BackendChoice>() {
                Ok(b) => proptest::prop_assert!(known && b.as_str().eq_ignore_ascii_case(s.trim())),
                Err(err) => {
                    proptest::prop_assert!(!known);
                    let text = err.to_string();
                    proptest::prop_assert!(text.contains(&format!("{s:?}")), "{}", text);
                    proptest::prop_assert!(text.contains("auto, gpu, cpu"), "{}", text);
                }
            }
        }
    }

    fn check_grid(workgroups: u32, max: u32) {
        let (x, y) = dispatch_grid(workgroups, max);
        assert!(x <= max && y <= max, "{workgroups}/{max}: ({x}, {y})");
        assert!(
            u64::from(x) * u64::from(y) >= u64::from(workgroups),
            "{workgroups}"
        );
        // Overshoot is less than one row.
        assert!(
            u64::from(x) * u64::from(y) < u64::from(workgroups) + u64::from(x),
            "{workgroups}"
        );
    }

    #[test]
    fn grid_splitting() {
        assert_eq!(dispatch_grid(0, 65535), (0, 1));
        assert_eq!(dispatch_grid(10, 65535), (10, 1));
        assert_eq!(dispatch_grid(65535, 65535), (65535, 1));
        assert_eq!(dispatch_grid(65536, 65535), (32768, 2));
        for w in [1, 7, 65535, 65536, 131071, 1 << 20, 4_000_000_000] {
            check_grid(w, 65535);
        }
        for w in [8, 45, 49] {
            check_grid(w, 7);
        }
        assert_eq!(workgroups_for(0, 64), 0);
        assert_eq!(workgroups_for(1, 64), 1);
        assert_eq!(workgroups_for(128, 64), 2);
        assert_eq!(workgroups_for(129, 64), 3);
    }
}
