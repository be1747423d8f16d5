//! The export's four files as ONNX Runtime sessions: the folder check, the contract check of
//! every input and output (name, rank, sizes, element type), and the runs, with float16 or
//! float32 tensors as each file declares them.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::f16;
use ort::session::SessionInputValue;
use ort::value::TensorRef;

use super::LatentSyncError;
use super::engine::{FRAMES, Graphs, UNET_CHANNELS, WHISPER_OUT};
use super::mask::{LATENT, SIZE};
use super::mel::{
    EMBED_DIM, EMBED_LAYERS, N_MELS, SEGMENT_COLUMNS, SEGMENT_EMBEDDINGS, WINDOW_ROWS,
};
use super::tensor::{Buffer, Float, f16_to_f32};
use crate::session::{self, OnnxSession, SessionOptions};
use crate::{OnnxError, ProviderRequest};

/// The files of the export, in the order they are checked.
pub(crate) const FILES: [&str; 5] = [
    "whisper_tiny.onnx",
    "vae_encoder.onnx",
    "vae_decoder.onnx",
    "unet.onnx",
    "unet_weights.pb",
];

/// A dimension of the contract: a size, or any (the batch axes).
#[derive(Debug, Clone, Copy)]
enum Dim {
    Is(i64),
    Any,
}

/// What a tensor of the contract may be.
#[derive(Debug, Clone, Copy)]
enum Elem {
    /// float16 or float32 (converted as the file declares).
    Float,
    Int64,
}

struct Spec {
    name: &'static str,
    elem: Elem,
    /// Accepted shapes (the timestep: a scalar or `[1]`).
    shapes: &'static [&'static [Dim]],
}

use Dim::{Any, Is};

const L: i64 = LATENT as i64;
const S: i64 = SIZE as i64;
const F: i64 = FRAMES as i64;

/// One file of the export, loaded and checked.
#[derive(Debug, Clone)]
struct Graph {
    file: &'static str,
    session: Arc<OnnxSession>,
    /// Element types of the inputs, in contract order (`None`: int64).
    inputs: Vec<Option<Float>>,
    output: Float,
}

fn float_of(file: &str, tensor: &str, element: &str) -> Result<Option<Float>, LatentSyncError> {
    match element {
        "Float16" => Ok(Some(Float::F16)),
        "Float32" => Ok(Some(Float::F32)),
        "Int64" => Ok(None),
        other => Err(LatentSyncError::Contract {
            file: file.into(),
            tensor: tensor.into(),
            problem: format!("element type {other} (expected float16, float32 or int64)"),
        }),
    }
}

fn show(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Is(n) => n.to_string(),
            Any => "N".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn check_shape(dims: &[i64], accepted: &[&[Dim]]) -> Result<(), String> {
    let fits = |shape: &[Dim]| {
        shape.len() == dims.len()
            && shape.iter().zip(dims).all(|(want, &have)| match want {
                Is(n) => have < 0 || have == *n,
                Any => true,
            })
    };
    if accepted.iter().any(|s| fits(s)) {
        return Ok(());
    }
    let want: Vec<String> = accepted.iter().map(|s| show(s)).collect();
    Err(format!(
        "shape {dims:?} (rank {}), expected {}",
        dims.len(),
        want.join(" or ")
    ))
}

/// Maps a load error: a float16 type error of the runtime becomes [`LatentSyncError::NoF16`].
fn load_error(file: &'static str, e: OnnxError) -> LatentSyncError {
    let text = e.to_string();
    let f16 = text.contains("float16") || text.contains("MLFloat16") || text.contains("Float16");
    if f16 && matches!(e, OnnxError::NotOnnx { .. } | OnnxError::Run { .. }) {
        LatentSyncError::NoF16 {
            file: file.into(),
            message: text,
        }
    } else {
        LatentSyncError::Onnx(e)
    }
}

impl Graph {
    fn load(
        dir: &Path,
        file: &'static str,
        options: &SessionSettings,
        inputs: &[Spec],
        output: &Spec,
    ) -> Result<Self, LatentSyncError> {
        let session = session::load(&SessionOptions {
            model: dir.join(file),
            provider: options.provider,
            threads: options.threads,
            parallel: 1,
            runtime: options.runtime.clone(),
        })
        .map_err(|e| load_error(file, e))?;
        let contract = |tensor: &str, problem: String| LatentSyncError::Contract {
            file: file.into(),
            tensor: tensor.into(),
            problem,
        };
        let mut types = Vec::with_capacity(inputs.len());
        for spec in inputs {
            let Some(t) = session.input(spec.name) else {
                let names: Vec<&str> = session.inputs().iter().map(|t| t.name.as_str()).collect();
                return Err(contract(
                    spec.name,
                    format!("no such input (the file has {})", names.join(", ")),
                ));
            };
            let ty = float_of(file, spec.name, &t.element)?;
            match (spec.elem, ty) {
                (Elem::Float, Some(_)) | (Elem::Int64, None) => {}
                (Elem::Float, None) => {
                    return Err(contract(
                        spec.name,
                        "element type Int64 (expected float16 or float32)".into(),
                    ));
                }
                (Elem::Int64, Some(f)) => {
                    return Err(contract(
                        spec.name,
                        format!("element type {f} (expected int64)"),
                    ));
                }
            }
            check_shape(&t.dims, spec.shapes).map_err(|m| contract(spec.name, m))?;
            types.push(ty);
        }
        if let Some(extra) = session
            .inputs()
            .iter()
            .find(|t| !inputs.iter().any(|s| s.name == t.name))
        {
            return Err(contract(
                &extra.name,
                "an input the export does not have".into(),
            ));
        }
        let out = session
            .outputs()
            .first()
            .ok_or_else(|| contract(output.name, "the graph has no output".into()))?;
        let out_ty = float_of(file, &out.name, &out.element)?.ok_or_else(|| {
            contract(
                &out.name,
                "element type Int64 (expected float16 or float32)".into(),
            )
        })?;
        check_shape(&out.dims, output.shapes).map_err(|m| contract(&out.name, m))?;
        Ok(Self {
            file,
            session,
            inputs: types,
            output: out_ty,
        })
    }

    fn run_error(&self, message: String) -> LatentSyncError {
        LatentSyncError::Runtime {
            file: self.file.into(),
            message,
        }
    }

    /// Runs with `inputs` and writes output 0 (of `expected` values) into `out` as f32.
    fn run(
        &self,
        inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)>,
        out: &mut [f32],
    ) -> Result<(), LatentSyncError> {
        let mut session = self.session.lock();
        let outputs = session
            .run(inputs)
            .map_err(|e| self.run_error(e.to_string()))?;
        let value = &outputs[0];
        let n = match self.output {
            Float::F16 => {
                let (_, data) = value
                    .try_extract_tensor::<f16>()
                    .map_err(|e| self.run_error(format!("output: {e}")))?;
                if data.len() == out.len() {
                    f16_to_f32(data, out);
                }
                data.len()
            }
            Float::F32 => {
                let (_, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| self.run_error(format!("output: {e}")))?;
                if data.len() == out.len() {
                    out.copy_from_slice(data);
                }
                data.len()
            }
        };
        if n != out.len() {
            return Err(
                self.run_error(format!("output has {n} values, the contract {}", out.len()))
            );
        }
        Ok(())
    }

    /// A one-input graph on f32 data converted to the input's type.
    fn run_single(
        &self,
        name: &'static str,
        shape: Vec<i64>,
        data: &[f32],
        out_len: usize,
    ) -> Result<Vec<f32>, LatentSyncError> {
        let ty = self.inputs[0].expect("a float input");
        let buffer = Buffer::from_f32(ty, data);
        let value =
            tensor(&buffer, shape).map_err(|e| self.run_error(format!("input `{name}`: {e}")))?;
        let mut out = vec![0.0f32; out_len];
        self.run(vec![(Cow::Borrowed(name), value)], &mut out)?;
        Ok(out)
    }
}

fn tensor(b: &Buffer, shape: Vec<i64>) -> Result<SessionInputValue<'_>, ort::Error> {
    Ok(match b {
        Buffer::F16(v) => TensorRef::from_array_view((shape, &v[..]))?.into(),
        Buffer::F32(v) => TensorRef::from_array_view((shape, &v[..]))?.into(),
    })
}

/// How the sessions are made (see [`SessionOptions`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionSettings {
    /// The execution provider wanted.
    pub provider: ProviderRequest,
    /// ONNX Runtime's intra-op threads (0: its default).
    pub threads: usize,
    /// An explicit ONNX Runtime library.
    pub runtime: Option<PathBuf>,
}

/// The four sessions of a LatentSync folder.
#[derive(Debug)]
pub(crate) struct OrtGraphs {
    whisper: Graph,
    encoder: Graph,
    decoder: Graph,
    unet: Graph,
    /// The UNet's fixed batch, when its file fixes one.
    pub(crate) unet_batch: Option<i64>,
}

impl OrtGraphs {
    /// Checks that `dir` has every file, then loads and checks each one.
    pub(crate) fn open(dir: &Path, settings: &SessionSettings) -> Result<Self, LatentSyncError> {
        if !dir.is_dir() {
            return Err(LatentSyncError::Folder {
                dir: dir.to_path_buf(),
            });
        }
        for file in FILES {
            if !dir.join(file).is_file() {
                return Err(LatentSyncError::MissingFile {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
        let float = |name, shape| Spec {
            name,
            elem: Elem::Float,
            shapes: shape,
        };
        let whisper = Graph::load(
            dir,
            FILES[0],
            settings,
            &[float(
                "segment",
                &[&[Is(1), Is(N_MELS as i64), Is(SEGMENT_COLUMNS as i64)]],
            )],
            &float(
                "output",
                &[&[
                    Is(1),
                    Is(EMBED_LAYERS as i64),
                    Is(SEGMENT_EMBEDDINGS as i64),
                    Is(EMBED_DIM as i64),
                ]],
            ),
        )?;
        let encoder = Graph::load(
            dir,
            FILES[1],
            settings,
            &[float("x", &[&[Is(F), Is(3), Is(S), Is(S)]])],
            &float("output", &[&[Is(F), Is(8), Is(L), Is(L)]]),
        )?;
        let decoder = Graph::load(
            dir,
            FILES[2],
            settings,
            &[float("latents", &[&[Is(F), Is(4), Is(L), Is(L)]])],
            &float("output", &[&[Is(F), Is(3), Is(S), Is(S)]]),
        )?;
        let unet = Graph::load(
            dir,
            FILES[3],
            settings,
            &[
                float(
                    "sample",
                    &[&[Any, Is(UNET_CHANNELS as i64), Is(F), Is(L), Is(L)]],
                ),
                Spec {
                    name: "timestep",
                    elem: Elem::Int64,
                    shapes: &[&[], &[Is(1)]],
                },
                float(
                    "encoder_hidden_states",
                    &[&[Any, Is(WINDOW_ROWS as i64), Is(EMBED_DIM as i64)]],
                ),
            ],
            &float("output", &[&[Any, Is(4), Is(F), Is(L), Is(L)]]),
        )?;
        let unet_batch = unet
            .session
            .input("sample")
            .and_then(|t| t.dims.first().copied())
            .filter(|&b| b > 0);
        Ok(Self {
            whisper,
            encoder,
            decoder,
            unet,
            unet_batch,
        })
    }
}

impl OrtGraphs {
    /// The provider running the UNet.
    pub(crate) fn provider(&self) -> crate::Provider {
        self.unet.session.provider()
    }

    /// The Whisper encoder, shared with the audio features' builder.
    pub(crate) fn whisper(&self) -> WhisperGraph {
        WhisperGraph(self.whisper.clone())
    }
}

/// `whisper_tiny.onnx`: a segment `[1, 80, 3000]` → `[1, 5, 1500, 384]`.
#[derive(Debug, Clone)]
pub(crate) struct WhisperGraph(Graph);

impl WhisperGraph {
    pub(crate) fn run(&self, segment: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
        self.0.run_single(
            "segment",
            vec![1, N_MELS as i64, SEGMENT_COLUMNS as i64],
            segment,
            WHISPER_OUT,
        )
    }
}

impl Graphs for OrtGraphs {
    fn encode(&mut self, pixels: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
        self.encoder
            .run_single("x", vec![F, 3, S, S], pixels, FRAMES * 8 * LATENT * LATENT)
    }

    fn decode(&mut self, latents: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
        self.decoder.run_single(
            "latents",
            vec![F, 4, L, L],
            latents,
            FRAMES * 3 * SIZE * SIZE,
        )
    }

    fn unet_types(&self) -> (Float, Float) {
        (
            self.unet.inputs[0].expect("sample is float"),
            self.unet.inputs[2].expect("encoder_hidden_states is float"),
        )
    }

    fn unet(
        &mut self,
        sample: &Buffer,
        batch: usize,
        timestep: i64,
        hidden: &Buffer,
        out: &mut [f32],
    ) -> Result<(), LatentSyncError> {
        let b = batch as i64;
        let err = |name: &str, e: ort::Error| self.unet.run_error(format!("input `{name}`: {e}"));
        let sample_v =
            tensor(sample, vec![b, UNET_CHANNELS as i64, F, L, L]).map_err(|e| err("sample", e))?;
        let hidden_v = tensor(hidden, vec![F * b, WINDOW_ROWS as i64, EMBED_DIM as i64])
            .map_err(|e| err("encoder_hidden_states", e))?;
        let t = [timestep];
        let t_shape: Vec<i64> = match self.unet.session.input("timestep").map(|t| t.dims.len()) {
            Some(1) => vec![1],
            _ => Vec::new(),
        };
        let t_v: SessionInputValue<'_> = TensorRef::from_array_view((t_shape, &t[..]))
            .map_err(|e| err("timestep", e))?
            .into();
        self.unet.run(
            vec![
                (Cow::Borrowed("sample"), sample_v),
                (Cow::Borrowed("timestep"), t_v),
                (Cow::Borrowed("encoder_hidden_states"), hidden_v),
            ],
            out,
        )
    }
}
