"""Builds ONNX files with the contracts of the learned lip-sync models facesync runs, with
random weights (no weights exist on the test machines and none may be downloaded):

- wav2lip_96.onnx / wav2lip_96_dyn.onnx: Wav2Lip-96 with the published generator's layer
  structure (Rudrabha/Wav2Lip models/wav2lip.py: face encoder of 7 blocks 96->1, audio
  encoder 80x16->1, decoder of transposed convolutions with a skip connection from every face
  encoder block, output block with a sigmoid), batch norm folded into the convolutions as an
  export does; inputs `source` [N,1,80,16], `target` [N,6,96,96], output [N,3,96,96]. The
  first file has a fixed batch of 1 (as FaceFusion's), the second a dynamic batch axis.
- edtalk_256.onnx: a small stand-in with EDTalk-256's contract: `source` [1,1,80,16],
  `target` [1,3,256,256], `weight` [1] -> [1,3,256,256].
- bad files for the error tests: wrong input name, wrong size, not ONNX at all.

Usage: python make_models.py OUTDIR [--small]   (--small: wav2lip with 1/8 of the channels)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1234)


class Graph:
    def __init__(self):
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, arr, p="w"):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), n))
        return n

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, k, s, p, residual=False, act=True, transpose=False, out_pad=0):
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        fan_in = cin * kh * kw
        if transpose:
            w = rng.normal(0, np.sqrt(2.0 / fan_in), (cin, cout, kh, kw))
        else:
            w = rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin, kh, kw))
        if residual:
            w *= 0.3
        b = rng.normal(0, 0.01, (cout,))
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[p, p, p, p])
        if transpose:
            if out_pad:
                attrs["output_padding"] = [out_pad, out_pad]
            y = self.node("ConvTranspose", [x, self.const(w), self.const(b, "b")], **attrs)
        else:
            y = self.node("Conv", [x, self.const(w), self.const(b, "b")], **attrs)
        if residual:
            y = self.node("Add", [y, x])
        return self.node("Relu", [y]) if act else y


def wav2lip(batch, div=1):
    """The Wav2Lip generator (96x96); `div` divides every channel count (tests: 8)."""
    global rng
    rng = np.random.default_rng(96 + div)  # same weights for the fixed and dynamic files
    c = lambda v: max(1, v // div)
    g = Graph()
    # Face encoder: (cin, cout, k, s, p, residual) per layer, grouped in blocks.
    face_blocks = [
        [(6, c(16), 7, 1, 3, False)],
        [(c(16), c(32), 3, 2, 1, False), (c(32), c(32), 3, 1, 1, True), (c(32), c(32), 3, 1, 1, True)],
        [(c(32), c(64), 3, 2, 1, False)] + [(c(64), c(64), 3, 1, 1, True)] * 3,
        [(c(64), c(128), 3, 2, 1, False)] + [(c(128), c(128), 3, 1, 1, True)] * 2,
        [(c(128), c(256), 3, 2, 1, False)] + [(c(256), c(256), 3, 1, 1, True)] * 2,
        [(c(256), c(512), 3, 2, 1, False), (c(512), c(512), 3, 1, 1, True)],
        [(c(512), c(512), 3, 1, 0, False), (c(512), c(512), 1, 1, 0, False)],
    ]
    x = "target"
    feats = []
    for block in face_blocks:
        for (ci, co, k, s, p, r) in block:
            x = g.conv(x, ci, co, k, s, p, residual=r)
        feats.append(x)
    # Audio encoder.
    audio_layers = [
        (1, c(32), 3, 1, 1, False), (c(32), c(32), 3, 1, 1, True), (c(32), c(32), 3, 1, 1, True),
        (c(32), c(64), 3, (3, 1), 1, False), (c(64), c(64), 3, 1, 1, True), (c(64), c(64), 3, 1, 1, True),
        (c(64), c(128), 3, 3, 1, False), (c(128), c(128), 3, 1, 1, True), (c(128), c(128), 3, 1, 1, True),
        (c(128), c(256), 3, (3, 2), 1, False), (c(256), c(256), 3, 1, 1, True),
        (c(256), c(512), 3, 1, 0, False), (c(512), c(512), 1, 1, 0, False),
    ]
    a = "source"
    for (ci, co, k, s, p, r) in audio_layers:
        a = g.conv(a, ci, co, k, s, p, residual=r)
    # Decoder: each block, then concatenation with the matching face encoder block's output.
    dec = [
        [("c", c(512), c(512), 1, 1, 0, False)],
        [("t", c(1024), c(512), 3, 1, 0, False), ("c", c(512), c(512), 3, 1, 1, True)],
        [("t2", c(1024), c(512), 3, 2, 1, False)] + [("c", c(512), c(512), 3, 1, 1, True)] * 2,
        [("t2", c(768), c(384), 3, 2, 1, False)] + [("c", c(384), c(384), 3, 1, 1, True)] * 2,
        [("t2", c(512), c(256), 3, 2, 1, False)] + [("c", c(256), c(256), 3, 1, 1, True)] * 2,
        [("t2", c(320), c(128), 3, 2, 1, False)] + [("c", c(128), c(128), 3, 1, 1, True)] * 2,
        [("t2", c(160), c(64), 3, 2, 1, False)] + [("c", c(64), c(64), 3, 1, 1, True)] * 2,
    ]
    x = a
    for block in dec:
        for (kind, ci, co, k, s, p, r) in block:
            if kind == "c":
                x = g.conv(x, ci, co, k, s, p, residual=r)
            else:
                x = g.conv(x, ci, co, k, s, p, transpose=True, out_pad=1 if kind == "t2" else 0)
        x = g.node("Concat", [x, feats.pop()], axis=1)
    x = g.conv(x, c(64) + c(16), c(32), 3, 1, 1)
    x = g.conv(x, c(32), 3, 1, 1, 0, act=False)
    y = g.node("Sigmoid", [x])
    g.nodes[-1].output[0] = "output"
    n = "N" if batch is None else batch
    inputs = [
        helper.make_tensor_value_info("source", TensorProto.FLOAT, [n, 1, 80, 16]),
        helper.make_tensor_value_info("target", TensorProto.FLOAT, [n, 6, 96, 96]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, 3, 96, 96])]
    return finish(g, inputs, outputs, "wav2lip_96")


def edtalk():
    g = Graph()
    img = g.conv("target", 3, 8, 3, 1, 1)
    img = g.conv(img, 8, 3, 3, 1, 1, act=False)
    a = g.node("Flatten", ["source"], axis=1)
    a = g.node("Gemm", [a, g.const(rng.normal(0, 0.05, (1280, 3))), g.const(np.zeros(3), "b")])
    a = g.node("Reshape", [a, g.const_i64([1, 3, 1, 1])])
    a = g.node("Mul", [a, "weight"])
    x = g.node("Add", [img, a])
    x = g.node("Add", [x, g.const(np.full((1, 3, 1, 1), 0.0))])
    y = g.node("Sigmoid", [x])
    g.nodes[-1].output[0] = "output"
    inputs = [
        helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 1, 80, 16]),
        helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 256, 256]),
        helper.make_tensor_value_info("weight", TensorProto.FLOAT, [1]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 256, 256])]
    return finish(g, inputs, outputs, "edtalk_256")


def wrong_size(size):
    """Wav2Lip's names at another size: a 1x1 convolution of `target` plus the mean mel."""
    g = Graph()
    x = g.conv("target", 6, 3, 1, 1, 0, act=False)
    a = g.node("ReduceMean", ["source"], keepdims=1, axes=[1, 2, 3])
    x = g.node("Add", [x, a])
    g.node("Sigmoid", [x])
    g.nodes[-1].output[0] = "output"
    inputs = [
        helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 1, 80, 16]),
        helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 6, size, size]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])]
    return finish(g, inputs, outputs, "wrong_size")


def const_i64(self, arr):
    n = self.name("shape")
    self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.int64), n))
    return n


Graph.const_i64 = const_i64


def finish(g, inputs, outputs, name):
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def renamed_input(model, old, new):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i in m.graph.input:
        if i.name == old:
            i.name = new
    for node in m.graph.node:
        for k, v in enumerate(node.input):
            if v == old:
                node.input[k] = new
    return m


def main():
    out = sys.argv[1]
    small = "--small" in sys.argv
    div = 8 if small else 1
    os.makedirs(out, exist_ok=True)
    fixed = wav2lip(1, div)
    onnx.save(fixed, os.path.join(out, "wav2lip_96.onnx"))
    onnx.save(wav2lip(None, div), os.path.join(out, "wav2lip_96_dyn.onnx"))
    onnx.save(edtalk(), os.path.join(out, "edtalk_256.onnx"))
    # The bad files from a small model (1/8 of the channels): only their signatures matter.
    small_model = fixed if small else wav2lip(1, 8)
    onnx.save(renamed_input(small_model, "source", "audio"), os.path.join(out, "bad_name.onnx"))
    # A 128x128 model: right names, wrong size.
    onnx.save(wrong_size(128), os.path.join(out, "bad_size.onnx"))
    with open(os.path.join(out, "not_onnx.onnx"), "w") as f:
        f.write("this is not an onnx model\n")


if __name__ == "__main__":
    main()
