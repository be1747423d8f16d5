//! ONNX sessions: loaded once per process (a cache keyed by file, provider request, thread
//! count and parallel calls), their tensors checked against a contract, run with `f32` tensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ort::session::Session;

use crate::OnnxError;
use crate::runtime::{self, Provider, ProviderRequest, compiled_with};

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// The `.onnx` file.
    pub model: PathBuf,
    /// The execution provider wanted.
    pub provider: ProviderRequest,
    /// ONNX Runtime's intra-op threads per session (0: its default, one per core).
    pub threads: usize,
    /// Model calls that may run side by side (0 or 1: one at a time). On the CPU the file is
    /// loaded this many times, one session per concurrent call (its weights once per
    /// session), so that small calls (a batch of 1) that cannot use the cores well one at a
    /// time run on separate cores instead; a GPU provider always gets one session.
    pub parallel: usize,
    /// An explicit ONNX Runtime library (else the discovery of [`runtime::find_library`]).
    pub runtime: Option<PathBuf>,
}

/// A tensor of the model's signature: name, element type and dimensions (`-1`: dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name in the graph.
    pub name: String,
    /// `"Float32"`, `"Float16"`, `"Int64"`... (ONNX Runtime's element type), `"?"` for a
    /// non-tensor value.
    pub element: String,
    /// Dimensions; `-1` for a dynamic one.
    pub dims: Vec<i64>,
}

/// A loaded model, shared by every run of the process.
#[derive(Debug)]
pub struct OnnxSession {
    path: PathBuf,
    provider: Provider,
    note: Option<String>,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    /// One session per concurrent call (see [`SessionOptions::parallel`]); the first serves
    /// [`OnnxSession::lock`].
    sessions: Vec<Mutex<Session>>,
    /// Where the next call starts looking for a free session.
    next: std::sync::atomic::AtomicUsize,
    /// Model calls and the nanoseconds spent in them (benchmarks: the model's share).
    calls: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

/// The process-wide cache: a model loads once and serves every run (worker jobs, Python calls,
/// ComfyUI runs).
type Cache = Mutex<HashMap<(PathBuf, ProviderRequest, usize, usize), Arc<OnnxSession>>>;

fn cache() -> &'static Cache {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Loads `options.model` (or returns the already loaded session for the same canonical path,
/// provider request, thread count and parallel calls). Errors name the file and the problem.
pub fn load(options: &SessionOptions) -> Result<Arc<OnnxSession>, OnnxError> {
    let path = &options.model;
    let meta = std::fs::metadata(path).map_err(|e| OnnxError::ModelFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(OnnxError::ModelFile {
            path: path.clone(),
            message: "not a file".into(),
        });
    }
    let key_path = path.canonicalize().unwrap_or_else(|_| path.clone());
    let parallel = options.parallel.max(1);
    let key = (key_path, options.provider, options.threads, parallel);
    // Held while loading: two runs asking for the same model at once load it once.
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = cache.get(&key) {
        return Ok(s.clone());
    }
    runtime::runtime(options.runtime.as_deref())?;
    let session = Arc::new(build(path, options.provider, options.threads, parallel)?);
    cache.insert(key, session.clone());
    Ok(session)
}

fn ort_message<R>(e: ort::Error<R>) -> String {
    e.to_string()
}

fn builder(
    path: &Path,
    threads: usize,
) -> Result<ort::session::builder::SessionBuilder, OnnxError> {
    let err = |m: String| OnnxError::Run {
        path: path.to_path_buf(),
        message: format!("session options: {m}"),
    };
    // No spinning: the pipeline's other stages (decode, face detection, restore) share the
    // cores with the model; idle ONNX Runtime workers must not burn them between calls.
    let b = Session::builder()
        .map_err(|e| err(ort_message(e)))?
        .with_intra_op_spinning(false)
        .map_err(|e| err(ort_message(e)))?;
    let b = if threads > 0 {
        b.with_intra_threads(threads)
            .map_err(|e| err(ort_message(e)))?
    } else {
        b
    };
    Ok(b)
}

fn with_provider(
    path: &Path,
    threads: usize,
    provider: Provider,
) -> Result<ort::session::builder::SessionBuilder, OnnxError> {
    let b = builder(path, threads)?;
    let eps = match provider {
        Provider::Cpu => return Ok(b),
        Provider::Cuda => vec![ort::ep::CUDA::default().build().error_on_failure()],
        Provider::TensorRt => vec![
            ort::ep::TensorRT::default().build().error_on_failure(),
            ort::ep::CUDA::default().build().error_on_failure(),
        ],
    };
    b.with_execution_providers(eps)
        .map_err(|e| OnnxError::ProviderUnavailable {
            provider,
            reason: ort_message(e),
        })
}

fn unavailable(provider: Provider) -> OnnxError {
    OnnxError::ProviderUnavailable {
        provider,
        reason: format!(
            "the loaded ONNX Runtime library was built without {}; install `onnxruntime-gpu` \
             (with CUDA and cuDNN) instead of `onnxruntime`",
            provider.ort_name()
        ),
    }
}

fn build(
    path: &Path,
    request: ProviderRequest,
    threads: usize,
    parallel: usize,
) -> Result<OnnxSession, OnnxError> {
    let (mut b, provider, note) = match request {
        ProviderRequest::Cpu => (builder(path, threads)?, Provider::Cpu, None),
        ProviderRequest::Gpu | ProviderRequest::TensorRt => {
            let p = if request == ProviderRequest::Gpu {
                Provider::Cuda
            } else {
                Provider::TensorRt
            };
            if !compiled_with(p) {
                return Err(unavailable(p));
            }
            (with_provider(path, threads, p)?, p, None)
        }
        ProviderRequest::Auto => {
            if !compiled_with(Provider::Cuda) {
                let note = "the ONNX Runtime library has no CUDA provider".to_string();
                (builder(path, threads)?, Provider::Cpu, Some(note))
            } else {
                match with_provider(path, threads, Provider::Cuda) {
                    Ok(b) => (b, Provider::Cuda, None),
                    Err(e) => (builder(path, threads)?, Provider::Cpu, Some(e.to_string())),
                }
            }
        }
    };
    let not_onnx = |e| OnnxError::NotOnnx {
        path: path.to_path_buf(),
        message: ort_message(e),
    };
    let session = b.commit_from_file(path).map_err(not_onnx)?;
    let info = |o: &ort::value::Outlet| TensorInfo {
        name: o.name().to_string(),
        element: o
            .dtype()
            .tensor_type()
            .map_or_else(|| "?".to_string(), |t| format!("{t:?}")),
        dims: o
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default(),
    };
    let inputs = session.inputs().iter().map(info).collect();
    let outputs = session.outputs().iter().map(info).collect();
    let mut sessions = vec![Mutex::new(session)];
    if provider == Provider::Cpu {
        for _ in 1..parallel {
            let s = builder(path, threads)?
                .commit_from_file(path)
                .map_err(not_onnx)?;
            sessions.push(Mutex::new(s));
        }
    }
    Ok(OnnxSession {
        path: path.to_path_buf(),
        provider,
        note,
        inputs,
        outputs,
        sessions,
        next: Default::default(),
        calls: Default::default(),
        nanos: Default::default(),
    })
}

/// One tensor of a contract: its name and dimensions (`None`: any size, e.g. a batch axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    /// The name the graph must use.
    pub name: &'static str,
    /// The expected dimensions; `None` accepts any size, dynamic included.
    pub dims: &'static [Option<i64>],
}

impl OnnxSession {
    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The provider that runs it.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Why the provider is not the one asked for (an `Auto` request that fell back to the CPU).
    pub fn fallback_note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The graph's inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The graph's outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// The input named `name`, if any.
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// Checks that every `inputs` spec names a float tensor of the graph with that rank and
    /// those sizes (a dynamic axis in the file matches any size), and that output 0 has the
    /// rank and sizes of `output`. Errors name the file and the tensor.
    pub fn check_contract(
        &self,
        inputs: &[TensorSpec],
        output: &TensorSpec,
    ) -> Result<(), OnnxError> {
        let err = |tensor: &str, message: String| OnnxError::Contract {
            path: self.path.clone(),
            tensor: tensor.to_string(),
            message,
        };
        for spec in inputs {
            let Some(t) = self.input(spec.name) else {
                let names: Vec<&str> = self.inputs.iter().map(|t| t.name.as_str()).collect();
                return Err(err(
                    spec.name,
                    format!("no such input (the file has {})", names.join(", ")),
                ));
            };
            check_tensor(t, spec).map_err(|m| err(spec.name, m))?;
        }
        if self.inputs.len() != inputs.len() {
            let extra: Vec<&str> = self
                .inputs
                .iter()
                .filter(|t| !inputs.iter().any(|s| s.name == t.name))
                .map(|t| t.name.as_str())
                .collect();
            return Err(err(&extra.join(", "), "unexpected input".into()));
        }
        let out = self
            .outputs
            .first()
            .ok_or_else(|| err(output.name, "the graph has no output".into()))?;
        check_tensor(out, output).map_err(|m| err(&out.name, m))
    }

    /// Records one model call of `elapsed` (for [`OnnxSession::call_stats`]); callers that
    /// run the session themselves through [`OnnxSession::lock`] may call it.
    pub fn record(&self, elapsed: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.calls.fetch_add(1, Relaxed);
        self.nanos.fetch_add(elapsed.as_nanos() as u64, Relaxed);
    }

    /// Model calls so far in this process and the time spent in them.
    pub fn call_stats(&self) -> (u64, std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.calls.load(Relaxed),
            std::time::Duration::from_nanos(self.nanos.load(Relaxed)),
        )
    }

    /// The (first) session, for callers that build their own tensors (`f16`, `i64`).
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.sessions[0].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many calls of [`OnnxSession::run_f32`] run side by side (one session each).
    pub fn parallel(&self) -> usize {
        self.sessions.len()
    }

    /// A free session (the next in turn when all are busy).
    fn any(&self) -> MutexGuard<'_, Session> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        for k in 0..n {
            match self.sessions[(start + k) % n].try_lock() {
                Ok(g) => return g,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[start]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the graph on `f32` inputs `(name, shape, data)` and returns output 0 as
    /// `(shape, data)`. Up to [`OnnxSession::parallel`] calls from different threads run at
    /// once, each on its own session.
    pub fn run_f32(
        &self,
        inputs: Vec<(&str, Vec<i64>, Vec<f32>)>,
    ) -> Result<(Vec<i64>, Vec<f32>), OnnxError> {
        let err = |m: String| OnnxError::Run {
            path: self.path.clone(),
            message: m,
        };
        let mut values: Vec<(String, ort::value::DynValue)> = Vec::with_capacity(inputs.len());
        for (name, shape, data) in inputs {
            let t = ort::value::Tensor::from_array((shape, data))
                .map_err(|e| err(format!("input `{name}`: {e}")))?;
            values.push((name.to_string(), t.into_dyn()));
        }
        let mut session = self.any();
        let started = std::time::Instant::now();
        let outputs = session.run(values).map_err(|e| err(e.to_string()))?;
        self.record(started.elapsed());
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| err(format!("output 0: {e}")))?;
        Ok((shape.iter().copied().collect(), data.to_vec()))
    }
}

fn check_tensor(t: &TensorInfo, spec: &TensorSpec) -> Result<(), String> {
    if t.element != "Float32" {
        return Err(format!("element type {} (expected float32)", t.element));
    }
    if t.dims.len() != spec.dims.len() {
        return Err(format!(
            "rank {} {:?} (expected rank {} {})",
            t.dims.len(),
            t.dims,
            spec.dims.len(),
            show(spec.dims)
        ));
    }
    for (axis, (&have, want)) in t.dims.iter().zip(spec.dims).enumerate() {
        if let Some(w) = want
            && have >= 0
            && have != *w
        {
            return Err(format!(
                "axis {axis} is {have} (expected {}, the file has {:?})",
                show(spec.dims),
                t.dims
            ));
        }
    }
    Ok(())
}

fn show(dims: &[Option<i64>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "N".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(","))
}
