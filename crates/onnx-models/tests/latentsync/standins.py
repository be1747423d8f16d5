"""Writes stand-ins of LatentSync's ONNX export (axinc-ai/ailia-models, diffusion/latentsync)
into a folder: the four files with exactly the contract's input names, ranks, sizes and dtypes
(float16 where the export has it), and a little arithmetic inside so that every output depends
on every input. No weights of the real model: they are random, seeded.

    python standins.py OUT_DIR [--variant NAME]

Variants (one file broken, for the error tests): ok, unet_input_name, vae_encoder_rank,
whisper_size, timestep_dtype, f16_unsupported, unet_fixed_batch2.

Needs the `onnx` and `numpy` packages. opset 17, as the export.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

OPSET = 17
F16 = T.FLOAT16


def model(nodes, inputs, outputs, inits, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def whisper(rng, variant):
    cols = 1500 if variant == "whisper_size" else 3000
    w = rng.normal(0, 0.3, (80, 384)).astype(np.float32)
    scale = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1, 1) * 0.5
    bias = np.linspace(-0.2, 0.2, 5, dtype=np.float32).reshape(1, 5, 1, 1)
    nodes = [
        helper.make_node("Cast", ["segment"], ["s"], to=T.FLOAT),
        helper.make_node("Reshape", ["s", "pairs"], ["s2"]),
        helper.make_node("ReduceMean", ["s2"], ["m"], axes=[3], keepdims=0),
        helper.make_node("Transpose", ["m"], ["mt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["mt", "w"], ["e"]),
        helper.make_node("Tanh", ["e"], ["t"]),
        helper.make_node("Unsqueeze", ["t", "one"], ["u"]),
        helper.make_node("Mul", ["u", "scale"], ["l"]),
        helper.make_node("Add", ["l", "bias"], ["lb"]),
        helper.make_node("Cast", ["lb"], ["embeddings"], to=F16),
    ]
    inits = [
        const("pairs", np.array([1, 80, cols // 2, 2], np.int64)),
        const("w", w),
        const("one", np.array([1], np.int64)),
        const("scale", scale),
        const("bias", bias),
    ]
    return model(
        nodes,
        [helper.make_tensor_value_info("segment", F16, [1, 80, cols])],
        [helper.make_tensor_value_info("embeddings", F16, [1, 5, cols // 2, 384])],
        inits,
        "whisper_tiny_standin",
    )


def vae_encoder(rng, variant):
    shape = [16, 3, 256 * 256] if variant == "vae_encoder_rank" else [16, 3, 256, 256]
    w = rng.normal(0, 0.5, (8, 3, 1, 1)).astype(np.float32)
    b = np.array([0.1, -0.1, 0.2, 0.0, -2.0, -1.5, -3.0, -2.5], np.float32)
    nodes = [
        helper.make_node("Cast", ["x"], ["xc"], to=T.FLOAT),
        helper.make_node("Reshape", ["xc", "image"], ["xf"]),
        helper.make_node("AveragePool", ["xf"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["p", "w", "b"], ["c"]),
        helper.make_node("Cast", ["c"], ["moments"], to=F16),
    ]
    return model(
        nodes,
        [helper.make_tensor_value_info("x", F16, shape)],
        [helper.make_tensor_value_info("moments", F16, [16, 8, 32, 32])],
        [const("w", w), const("b", b), const("image", np.array([16, 3, 256, 256], np.int64))],
        "vae_encoder_standin",
    )


def vae_decoder(rng, variant):
    w = rng.normal(0, 0.8, (3, 4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["latents"], ["lf"], to=T.FLOAT),
        helper.make_node("Conv", ["lf", "w"], ["c"]),
        helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest"),
        helper.make_node("Tanh", ["r"], ["t"]),
        helper.make_node("Cast", ["t"], ["sample"], to=F16),
    ]
    return model(
        nodes,
        [helper.make_tensor_value_info("latents", F16, [16, 4, 32, 32])],
        [helper.make_tensor_value_info("sample", F16, [16, 3, 256, 256])],
        [const("w", w), const("scales", np.array([1, 1, 8, 8], np.float32))],
        "vae_decoder_standin",
    )


def unet(rng, variant):
    batch = 2 if variant == "unet_fixed_batch2" else "B"
    frames_b = 32 if variant == "unet_fixed_batch2" else "B16"
    sample_name = "latents" if variant == "unet_input_name" else "sample"
    t_type = T.FLOAT if variant == "timestep_dtype" else T.INT64
    w = rng.normal(0, 0.2, (4, 13, 1, 1, 1)).astype(np.float32)
    w[:, 0:4, 0, 0, 0] += np.eye(4, dtype=np.float32) * 0.5
    nodes = [
        helper.make_node("Cast", [sample_name], ["s"], to=T.FLOAT),
        helper.make_node("Conv", ["s", "w"], ["c"]),
        helper.make_node("Cast", ["timestep"], ["tf"], to=T.FLOAT),
        helper.make_node("Mul", ["tf", "t_scale"], ["ts"]),
        helper.make_node("Cast", ["encoder_hidden_states"], ["h"], to=T.FLOAT),
        helper.make_node("ReduceMean", ["h"], ["hm"], axes=[1, 2], keepdims=0),
        helper.make_node("Reshape", ["hm", "per_frame"], ["hf"]),
        helper.make_node("Mul", ["hf", "h_scale"], ["hs"]),
        helper.make_node("Add", ["c", "ts"], ["a"]),
        helper.make_node("Add", ["a", "hs"], ["y"]),
        helper.make_node("Cast", ["y"], ["noise"], to=F16),
    ]
    if variant == "f16_unsupported":
        # Celu has no float16 kernel type: the runtime rejects the graph's float16 tensor.
        nodes.insert(0, helper.make_node("Celu", [sample_name], ["celu_out"]))
        nodes[-1:-1] = [helper.make_node("Identity", ["celu_out"], ["unused"])]
    inits = [
        const("w", w),
        const("t_scale", np.array(1e-3, np.float32)),
        const("per_frame", np.array([-1, 1, 16, 1, 1], np.int64)),
        const("h_scale", np.array(2.0, np.float32)),
    ]
    m = helper.make_graph(
        nodes,
        "unet_standin",
        [
            helper.make_tensor_value_info(sample_name, F16, [batch, 13, 16, 32, 32]),
            helper.make_tensor_value_info("timestep", t_type, []),
            helper.make_tensor_value_info("encoder_hidden_states", F16, [frames_b, 50, 384]),
        ],
        [helper.make_tensor_value_info("noise", F16, [batch, 4, 16, 32, 32])],
        initializer=inits,
    )
    out = helper.make_model(m, opset_imports=[helper.make_opsetid("", OPSET)])
    out.ir_version = 8
    if variant != "f16_unsupported":
        onnx.checker.check_model(out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--variant", default="ok")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20)
    onnx.save(whisper(rng, args.variant), os.path.join(args.out, "whisper_tiny.onnx"))
    onnx.save(vae_encoder(rng, args.variant), os.path.join(args.out, "vae_encoder.onnx"))
    onnx.save(vae_decoder(rng, args.variant), os.path.join(args.out, "vae_decoder.onnx"))
    onnx.save_model(
        unet(rng, args.variant),
        os.path.join(args.out, "unet.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="unet_weights.pb",
        size_threshold=128,  # the weights; small shape tensors stay inline (shape inference reads them)
    )


if __name__ == "__main__":
    main()
