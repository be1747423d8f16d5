//! Folds a BlazeFace-like ONNX graph (BlazeFace, FaceMesh) into a fixed, linear list of layers.
//!
//! The folding is driven by the graph, not by a hard-coded layer table: every `Conv` becomes a
//! layer (general, depthwise or pointwise by its attributes), and the other ops are absorbed:
//! `Relu` and `PRelu` into their producer, `Add` into the 1x1 conv it follows (residual),
//! `MaxPool` 2x2/2 and channel zero-padding (`Concat(x, ConstantOfShape)` or a constant `Pad`)
//! into that residual read, the layout `Transpose`s disappear because activations are NHWC in
//! our buffers (an NCHW graph input, as tflite2onnx writes, is read as NHWC: we fill it), the
//! BlazeFace head `Transpose → Reshape → graph output` chains become a destination offset in
//! the two anchor output buffers, and a conv that is a graph output itself writes an output
//! buffer of its own ([`Slot::Output`]). Anything outside that vocabulary is a [`PlanError`],
//! so a different model fails loudly instead of computing something else.

use std::collections::HashMap;

use crate::onnx as pb;

/// Why the ONNX graph could not be folded into GPU layers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The protobuf bytes could not be decoded.
    #[error("blazeface onnx model cannot be decoded: {0}")]
    Decode(String),
    /// The graph uses something the GPU layer set does not cover.
    #[error("blazeface onnx node {node:?} ({op}) is not supported on the gpu: {why}")]
    Unsupported {
        /// Node name (or its first output when unnamed).
        node: String,
        /// ONNX op type.
        op: String,
        /// What exactly is not supported.
        why: String,
    },
    /// A tensor the graph refers to is missing or malformed.
    #[error("blazeface onnx tensor {name:?} is invalid: {why}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Which WGSL entry point a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// General KxK convolution, groups = 1.
    Conv,
    /// KxK depthwise convolution, groups = channels.
    Depthwise,
    /// 1x1 convolution, stride 1, no padding.
    Pointwise,
}

impl Kind {
    pub(crate) fn entry_point(self) -> &'static str {
        match self {
            Kind::Conv => "conv",
            Kind::Depthwise => "depthwise",
            Kind::Pointwise => "pointwise",
        }
    }
}

/// Per-frame NHWC shape of an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) h: u32,
    pub(crate) w: u32,
    pub(crate) c: u32,
}

impl Shape {
    pub(crate) fn len(self) -> u32 {
        self.h * self.w * self.c
    }
}

/// Where a layer reads from or writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The network input, N×128×128×3.
    Input,
    /// Intermediate activation number `i` (see [`Plan::values`]).
    Value(usize),
    /// The score logits, N×896, starting at anchor `offset`.
    Scores { offset: u32 },
    /// The regressors, N×896×16, starting at anchor `offset`.
    Boxes { offset: u32 },
    /// Graph output number `i` (a conv's output as it is, NHWC), see [`Plan::outputs`].
    Output(usize),
}

/// Residual input of a pointwise layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Residual {
    pub(crate) src: Slot,
    /// Channels of `src`; the output channels above are padded with zeros.
    pub(crate) channels: u32,
    /// `src` is twice the output size and is max-pooled 2x2, stride 2.
    pub(crate) pool: bool,
}

/// One GPU dispatch.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) src: Slot,
    pub(crate) input: Shape,
    pub(crate) output: Shape,
    pub(crate) kernel: u32,
    pub(crate) stride: u32,
    pub(crate) pad_top: u32,
    pub(crate) pad_left: u32,
    /// Weights in the layout the kernel reads (see the shader).
    pub(crate) weights: Vec<f32>,
    /// One bias per output channel (zeros when the graph has none).
    pub(crate) bias: Vec<f32>,
    pub(crate) relu: bool,
    /// A `PRelu` after the residual add: one slope per output channel for negative values.
    pub(crate) prelu: Option<Vec<f32>>,
    pub(crate) residual: Option<Residual>,
    pub(crate) dst: Slot,
}

/// The folded network.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) input: Shape,
    pub(crate) layers: Vec<Layer>,
    /// Shape of each intermediate activation.
    pub(crate) values: Vec<Shape>,
    /// Number of anchors (rows of the score and regressor outputs).
    pub(crate) anchors: u32,
    /// Regressor values per anchor.
    pub(crate) coords: u32,
    /// Floats of each [`Slot::Output`], in graph output order (empty for BlazeFace, whose
    /// outputs are the anchor buffers).
    pub(crate) outputs: Vec<u32>,
}

/// What an ONNX tensor name stands for while folding.
#[derive(Debug, Clone)]
enum Sym {
    /// The graph input in NHWC (as the graph sees it).
    InputNhwc,
    /// An activation, NCHW as the graph sees it, NHWC in our buffer.
    Act(Slot),
    /// `Transpose(0,2,3,1)` of an activation: NHWC as the graph sees it.
    Nhwc(Slot),
    /// A reshape of an NHWC activation to [1, anchors, k].
    Flat(Slot, u32),
    /// MaxPool 2x2/2 of an activation (not materialised).
    Pooled(Slot),
    /// ConstantOfShape output: zeros of this NCHW shape.
    Zeros(Vec<i64>),
    /// Concat of an activation (maybe pooled, `channels` wide) with zeros along channels,
    /// `total` channels in all.
    Padded {
        src: Slot,
        pool: bool,
        channels: u32,
        total: u32,
    },
}

struct Folder<'a> {
    inits: HashMap<&'a str, &'a pb::TensorProto>,
    uses: HashMap<&'a str, usize>,
    syms: HashMap<String, Sym>,
    layers: Vec<Layer>,
    values: Vec<Shape>,
    /// Which layer produced each value.
    producer: Vec<usize>,
    input: Shape,
}

/// Decodes the ONNX bytes and folds the graph into a [`Plan`].
pub(crate) fn plan_from_onnx(bytes: &[u8]) -> Result<Plan, PlanError> {
    let proto = decode(bytes)?;
    plan_from_proto(&proto)
}

fn decode(bytes: &[u8]) -> Result<pb::ModelProto, PlanError> {
    pb::decode_model(bytes).map_err(|e| PlanError::Decode(e.to_string()))
}

pub(crate) fn plan_from_proto(proto: &pb::ModelProto) -> Result<Plan, PlanError> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| PlanError::Decode("no graph".into()))?;
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for node in &graph.node {
        for i in &node.input {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *uses.entry(o.name.as_str()).or_default() += 1;
    }
    let [input] = graph.input.as_slice() else {
        return Err(PlanError::Decode(format!(
            "{} graph inputs, expected 1",
            graph.input.len()
        )));
    };
    let dims = value_dims(input);
    // An NCHW input (channels ≤ 4 on axis 1, as tflite2onnx writes) is an activation from the
    // start; an NHWC one (as tf2onnx writes, then transposed by the graph) is not yet.
    let (nchw, h, w, c) = match dims.as_slice() {
        [1, c, h, w] if (1..=4).contains(c) && *h > 4 && *w > 4 => (true, h, w, c),
        [1, h, w, c] => (false, h, w, c),
        _ => {
            return Err(PlanError::Tensor {
                name: input.name.clone(),
                why: format!("input shape {dims:?}, expected [1, h, w, c] or [1, c, h, w]"),
            });
        }
    };
    let mut f = Folder {
        inits: graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect(),
        uses,
        syms: HashMap::new(),
        layers: Vec::new(),
        values: Vec::new(),
        producer: Vec::new(),
        input: Shape {
            h: *h as u32,
            w: *w as u32,
            c: *c as u32,
        },
    };
    let sym = if nchw {
        Sym::Act(Slot::Input)
    } else {
        Sym::InputNhwc
    };
    f.syms.insert(input.name.clone(), sym);
    for node in &graph.node {
        f.node(node)?;
    }
    f.outputs(graph)
}

fn value_dims(v: &pb::ValueInfoProto) -> Vec<i64> {
    let Some(t) = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        return Vec::new();
    };
    let Some(shape) = &t.shape else {
        return Vec::new();
    };
    shape
        .dim
        .iter()
        .map(|d| d.dim_value.unwrap_or(-1))
        .collect()
}

fn unsupported(node: &pb::NodeProto, why: impl Into<String>) -> PlanError {
    let name = if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    };
    PlanError::Unsupported {
        node: name,
        op: node.op_type.clone(),
        why: why.into(),
    }
}

fn ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

impl Folder<'_> {
    fn sym(&self, node: &pb::NodeProto, i: usize) -> Result<Sym, PlanError> {
        let name = node
            .input
            .get(i)
            .ok_or_else(|| unsupported(node, format!("missing input {i}")))?;
        self.syms
            .get(name)
            .cloned()
            .ok_or_else(|| unsupported(node, format!("input {name:?} is not an activation")))
    }

    fn act(&self, node: &pb::NodeProto, i: usize) -> Result<Slot, PlanError> {
        match self.sym(node, i)? {
            Sym::Act(s) => Ok(s),
            other => Err(unsupported(
                node,
                format!("input {i} is {other:?}, expected an activation"),
            )),
        }
    }

    fn shape(&self, slot: Slot) -> Shape {
        match slot {
            Slot::Value(v) => self.values[v],
            _ => self.input,
        }
    }

    fn floats(&self, name: &str) -> Result<(Vec<i64>, Vec<f32>), PlanError> {
        let t = self.inits.get(name).ok_or_else(|| PlanError::Tensor {
            name: name.into(),
            why: "not an initializer".into(),
        })?;
        let bad = |why: String| PlanError::Tensor {
            name: name.into(),
            why,
        };
        if t.data_type != 1 {
            return Err(bad(format!("data type {}, expected float32", t.data_type)));
        }
        let data: Vec<f32> = if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let len: i64 = t.dims.iter().product();
        if data.len() as i64 != len {
            return Err(bad(format!("{} values for dims {:?}", data.len(), t.dims)));
        }
        Ok((t.dims.clone(), data))
    }

    fn int64s(&self, name: &str) -> Result<Vec<i64>, PlanError> {
        let t = self.inits.get(name).ok_or_else(|| PlanError::Tensor {
            name: name.into(),
            why: "not an initializer".into(),
        })?;
        if t.data_type != 7 {
            return Err(PlanError::Tensor {
                name: name.into(),
                why: format!("data type {}, expected int64", t.data_type),
            });
        }
        if t.raw_data.is_empty() {
            return Ok(t.int64_data.clone());
        }
        Ok(t.raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect())
    }

    fn define(&mut self, node: &pb::NodeProto, sym: Sym) -> Result<(), PlanError> {
        let [out] = node.output.as_slice() else {
            return Err(unsupported(
                node,
                format!("{} outputs, expected 1", node.output.len()),
            ));
        };
        self.syms.insert(out.clone(), sym);
        Ok(())
    }

    fn used_once(&self, name: &str) -> bool {
        self.uses.get(name).copied() == Some(1)
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        match node.op_type.as_str() {
            "Conv" => self.conv(node),
            "Relu" => self.relu(node),
            "PRelu" => self.prelu(node),
            "Pad" => self.pad(node),
            "Add" => self.add(node),
            "MaxPool" => {
                let src = self.act(node, 0)?;
                let k = ints(node, "kernel_shape");
                let s = ints(node, "strides");
                let pads = ints(node, "pads").unwrap_or_default();
                let shape = self.shape(src);
                if k.as_deref() != Some(&[2, 2])
                    || s.as_deref() != Some(&[2, 2])
                    || pads.iter().any(|&p| p != 0)
                    || !shape.h.is_multiple_of(2)
                    || !shape.w.is_multiple_of(2)
                {
                    return Err(unsupported(
                        node,
                        "only 2x2 stride-2 unpadded max pooling of an even-sized input",
                    ));
                }
                self.define(node, Sym::Pooled(src))
            }
            "ConstantOfShape" => {
                if node.attribute.iter().any(|a| {
                    a.name == "value"
                        && a.t.as_ref().is_some_and(|t| {
                            t.raw_data.iter().any(|&b| b != 0)
                                || t.float_data.iter().any(|&v| v != 0.0)
                        })
                }) {
                    return Err(unsupported(node, "only zero fill values"));
                }
                let shape = self.int64s(&node.input[0])?;
                self.define(node, Sym::Zeros(shape))
            }
            "Concat" => self.concat(node),
            "Transpose" => {
                let perm = ints(node, "perm").unwrap_or_default();
                let sym = match (self.sym(node, 0)?, perm.as_slice()) {
                    (Sym::InputNhwc, [0, 3, 1, 2]) => Sym::Act(Slot::Input),
                    (Sym::Act(s), [0, 2, 3, 1]) => Sym::Nhwc(s),
                    (other, _) => {
                        return Err(unsupported(
                            node,
                            format!("transpose {perm:?} of {other:?}"),
                        ));
                    }
                };
                self.define(node, sym)
            }
            "Reshape" => {
                let Sym::Nhwc(src) = self.sym(node, 0)? else {
                    return Err(unsupported(node, "only reshapes of NHWC head outputs"));
                };
                let target = self.int64s(&node.input[1])?;
                let len = i64::from(self.shape(src).len());
                let sym = match target.as_slice() {
                    // checked: a model's numbers are untrusted (fuzzing found the overflow)
                    [1, a, k] if a.checked_mul(*k) == Some(len) && *k > 0 => {
                        Sym::Flat(src, *k as u32)
                    }
                    [1, -1, k] if *k > 0 && len % k == 0 => Sym::Flat(src, *k as u32),
                    _ => return Err(unsupported(node, format!("reshape to {target:?}"))),
                };
                self.define(node, sym)
            }
            other => Err(unsupported(node, format!("op {other} has no gpu kernel"))),
        }
    }

    fn conv(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        let src = self.act(node, 0)?;
        let input = self.shape(src);
        let (wdims, w) = self.floats(&node.input[1])?;
        let [co, ci_per_group, kh, kw] = wdims.as_slice() else {
            return Err(unsupported(node, format!("weight dims {wdims:?}")));
        };
        let (co, ci_g, k) = (*co as u32, *ci_per_group as u32, *kh as u32);
        if kh != kw {
            return Err(unsupported(node, "non-square kernel"));
        }
        let bias = match node.input.get(2) {
            Some(b) => self.floats(b)?.1,
            None => vec![0.0; co as usize],
        };
        if bias.len() != co as usize {
            return Err(unsupported(
                node,
                "bias length differs from output channels",
            ));
        }
        let group = int(node, "group").unwrap_or(1) as u32;
        let strides = ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
        let pads = ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
        let dil = ints(node, "dilations").unwrap_or_else(|| vec![1, 1]);
        if dil.iter().any(|&d| d != 1)
            || strides.len() != 2
            || strides[0] != strides[1]
            || pads.len() != 4
            || pads.iter().any(|&p| p < 0)
        {
            return Err(unsupported(
                node,
                format!("dilations {dil:?}, strides {strides:?}, pads {pads:?}"),
            ));
        }
        let stride = strides[0] as u32;
        let [pt, pl, pb, pr] = [pads[0], pads[1], pads[2], pads[3]].map(|p| p as u32);
        let out_dim =
            |size: u32, lo: u32, hi: u32| (size + lo + hi).checked_sub(k).map(|d| d / stride + 1);
        let (Some(oh), Some(ow)) = (out_dim(input.h, pt, pb), out_dim(input.w, pl, pr)) else {
            return Err(unsupported(node, "kernel larger than the padded input"));
        };
        let output = Shape {
            h: oh,
            w: ow,
            c: co,
        };
        let (ku, ci) = (k as usize, input.c as usize);
        let cou = co as usize;
        let (kind, weights) = if group == 1
            && ci_g == input.c
            && k == 1
            && stride == 1
            && pads.iter().all(|&p| p == 0)
        {
            // [co][ci] -> [ci][co]
            let mut t = vec![0.0; w.len()];
            for o in 0..cou {
                for i in 0..ci {
                    t[i * cou + o] = w[o * ci + i];
                }
            }
            (Kind::Pointwise, t)
        } else if group == 1 && ci_g == input.c {
            // [co][ci][ky][kx] -> [ky][kx][ci][co]
            let mut t = vec![0.0; w.len()];
            for o in 0..cou {
                for i in 0..ci {
                    for y in 0..ku {
                        for x in 0..ku {
                            t[((y * ku + x) * ci + i) * cou + o] =
                                w[((o * ci + i) * ku + y) * ku + x];
                        }
                    }
                }
            }
            (Kind::Conv, t)
        } else if group == input.c && group == co && ci_g == 1 {
            // [c][1][ky][kx] -> [ky][kx][c]
            let mut t = vec![0.0; w.len()];
            for o in 0..cou {
                for yx in 0..ku * ku {
                    t[yx * cou + o] = w[o * ku * ku + yx];
                }
            }
            (Kind::Depthwise, t)
        } else {
            return Err(unsupported(
                node,
                format!(
                    "group {group} with weight dims {wdims:?} on {} input channels",
                    input.c
                ),
            ));
        };
        let value = self.values.len();
        self.values.push(output);
        self.producer.push(self.layers.len());
        self.layers.push(Layer {
            name: node.name.clone(),
            kind,
            src,
            input,
            output,
            kernel: k,
            stride,
            pad_top: pt,
            pad_left: pl,
            weights,
            bias,
            relu: false,
            prelu: None,
            residual: None,
            dst: Slot::Value(value),
        });
        self.define(node, Sym::Act(Slot::Value(value)))
    }

    /// The layer that produced `slot`, if it can still absorb an epilogue (its output is read
    /// only by the node being folded).
    fn fusable(&mut self, node: &pb::NodeProto, i: usize) -> Option<usize> {
        let Ok(Sym::Act(Slot::Value(v))) = self.sym(node, i) else {
            return None;
        };
        if !self.used_once(&node.input[i]) {
            return None;
        }
        let l = self.producer[v];
        (!self.layers[l].relu && self.layers[l].prelu.is_none()).then_some(l)
    }

    fn prelu(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        let Some(l) = self.fusable(node, 0) else {
            return Err(unsupported(
                node,
                "prelu of a tensor that is not the single use of a conv output",
            ));
        };
        let slope = node
            .input
            .get(1)
            .ok_or_else(|| unsupported(node, "no slope input"))?;
        let (dims, alpha) = self.floats(slope)?;
        let co = self.layers[l].output.c as usize;
        if alpha.len() != co || dims.iter().filter(|&&d| d != 1).count() > 1 {
            return Err(unsupported(
                node,
                format!("slope dims {dims:?}, expected one per channel ({co})"),
            ));
        }
        self.layers[l].prelu = Some(alpha);
        let dst = self.layers[l].dst;
        self.define(node, Sym::Act(dst))
    }

    /// A constant zero `Pad` that only appends channels (opset 11: pads as an input).
    fn pad(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        let mode = node.attribute.iter().find(|a| a.name == "mode");
        if mode.is_some_and(|a| a.s != b"constant") {
            return Err(unsupported(node, "only constant padding"));
        }
        if let Some(value) = node.input.get(2).filter(|v| !v.is_empty()) {
            let (_, v) = self.floats(value)?;
            if v.iter().any(|&x| x != 0.0) {
                return Err(unsupported(node, "only zero padding"));
            }
        }
        let pads_name = node
            .input
            .get(1)
            .ok_or_else(|| unsupported(node, "no pads input"))?;
        let pads = self.int64s(pads_name)?;
        let [0, 0, 0, 0, 0, extra, 0, 0] = pads.as_slice() else {
            return Err(unsupported(
                node,
                format!("pads {pads:?}: only channels appended at the end"),
            ));
        };
        let (src, pool) = match self.sym(node, 0)? {
            Sym::Act(s) => (s, false),
            Sym::Pooled(s) => (s, true),
            other => return Err(unsupported(node, format!("pad of {other:?}"))),
        };
        let c = self.shape(src).c;
        self.define(
            node,
            Sym::Padded {
                src,
                pool,
                channels: c,
                total: c + *extra as u32,
            },
        )
    }

    fn relu(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        let Some(l) = self.fusable(node, 0) else {
            return Err(unsupported(
                node,
                "relu of a tensor that is not the single use of a conv output",
            ));
        };
        self.layers[l].relu = true;
        let dst = self.layers[l].dst;
        self.define(node, Sym::Act(dst))
    }

    fn add(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        for (main, other) in [(0, 1), (1, 0)] {
            let Some(l) = self.fusable(node, main) else {
                continue;
            };
            if self.layers[l].kind != Kind::Pointwise || self.layers[l].residual.is_some() {
                continue;
            }
            let out = self.layers[l].output;
            let (src, pool, channels, total) = match self.sym(node, other)? {
                Sym::Act(s) => (s, false, self.shape(s).c, self.shape(s).c),
                Sym::Pooled(s) => (s, true, self.shape(s).c, self.shape(s).c),
                Sym::Padded {
                    src,
                    pool,
                    channels,
                    total,
                } => (src, pool, channels, total),
                _ => continue,
            };
            let rs = self.shape(src);
            let (eh, ew) = if pool {
                (out.h * 2, out.w * 2)
            } else {
                (out.h, out.w)
            };
            if rs.h != eh || rs.w != ew || rs.c != channels || total != out.c {
                return Err(unsupported(
                    node,
                    format!(
                        "residual {rs:?} (pool {pool}, {total} channels) does not match {out:?}"
                    ),
                ));
            }
            self.layers[l].residual = Some(Residual {
                src,
                channels,
                pool,
            });
            let dst = self.layers[l].dst;
            return self.define(node, Sym::Act(dst));
        }
        Err(unsupported(
            node,
            "add that is not a 1x1 conv plus a residual",
        ))
    }

    fn concat(&mut self, node: &pb::NodeProto) -> Result<(), PlanError> {
        if int(node, "axis") != Some(1) || node.input.len() != 2 {
            return Err(unsupported(node, "only two-input channel concat"));
        }
        let (src, pool) = match self.sym(node, 0)? {
            Sym::Act(s) => (s, false),
            Sym::Pooled(s) => (s, true),
            other => return Err(unsupported(node, format!("concat of {other:?}"))),
        };
        let Sym::Zeros(z) = self.sym(node, 1)? else {
            return Err(unsupported(node, "concat with something other than zeros"));
        };
        let s = self.shape(src);
        let (h, w) = if pool { (s.h / 2, s.w / 2) } else { (s.h, s.w) };
        let [1, zc, zh, zw] = z.as_slice() else {
            return Err(unsupported(node, format!("zeros of shape {z:?}")));
        };
        if (*zh, *zw) != (i64::from(h), i64::from(w)) {
            return Err(unsupported(
                node,
                format!("zeros {z:?} do not match {h}x{w}"),
            ));
        }
        self.define(
            node,
            Sym::Padded {
                src,
                pool,
                channels: s.c,
                total: s.c + *zc as u32,
            },
        )
    }

    fn outputs(mut self, graph: &pb::GraphProto) -> Result<Plan, PlanError> {
        let mut score_at = 0;
        let mut box_at = 0;
        let mut coords = None;
        let mut outputs = Vec::new();
        for out in &graph.output {
            let bad = |why: String| PlanError::Tensor {
                name: out.name.clone(),
                why,
            };
            let (v, k) = match self.syms.get(&out.name).cloned() {
                Some(Sym::Flat(Slot::Value(v), k)) => (v, k),
                Some(Sym::Act(Slot::Value(v))) if self.used_once(&out.name) => {
                    // A conv output that nothing else reads: written to its own buffer.
                    self.layers[self.producer[v]].dst = Slot::Output(outputs.len());
                    outputs.push(self.values[v].len());
                    continue;
                }
                _ => {
                    return Err(bad(
                        "graph output is neither a conv nor a reshaped conv head".into(),
                    ));
                }
            };
            let anchors = self.values[v].len() / k;
            let l = self.producer[v];
            let layer = &mut self.layers[l];
            if layer.relu || layer.prelu.is_some() || layer.residual.is_some() {
                return Err(bad("head conv has an epilogue".into()));
            }
            if k == 1 {
                layer.dst = Slot::Scores { offset: score_at };
                score_at += anchors;
            } else {
                if coords.is_some_and(|c| c != k) {
                    return Err(bad(format!(
                        "{k} regressors per anchor, other heads differ"
                    )));
                }
                coords = Some(k);
                layer.dst = Slot::Boxes { offset: box_at };
                box_at += anchors;
            }
        }
        let coords = match (coords, outputs.is_empty()) {
            (Some(_), false) => {
                return Err(PlanError::Decode(
                    "anchor heads and plain outputs in one graph".into(),
                ));
            }
            (None, true) => return Err(PlanError::Decode("no output".into())),
            (Some(c), true) => c,
            (None, false) => 0,
        };
        if score_at != box_at {
            return Err(PlanError::Decode(format!(
                "{score_at} score anchors but {box_at} regressor anchors"
            )));
        }
        Ok(Plan {
            input: self.input,
            layers: self.layers,
            values: self.values,
            anchors: score_at,
            coords,
            outputs,
        })
    }
}
