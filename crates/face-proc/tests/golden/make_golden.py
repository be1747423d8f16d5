"""Golden BlazeFace outputs from onnxruntime for face-proc's tract test.

Input: test-data/astronaut.png, crop x 96..352, y 0..256 (256x256, holds the face), each
2x2 block averaged to 128x128, scaled v / 127.5 - 1 (MediaPipe's [-1, 1]), NHWC float32.
Output (blazeface_astronaut.json): the max score logit, and the top-5 anchors by logit with
their logit and 16 regressors. Run from the repository root:
    python3 crates/face-proc/tests/golden/make_golden.py
"""
import json
import pathlib

import numpy as np
import onnxruntime as ort
from PIL import Image

root = pathlib.Path(__file__).resolve().parents[4]
model = root / "crates/face-proc/assets/blazeface/face_detection_front_128x128_barracuda.onnx"
img = np.asarray(Image.open(root / "test-data/astronaut.png").convert("RGB"), dtype=np.float64)
crop = img[0:256, 96:352]
small = crop.reshape(128, 2, 128, 2, 3).mean(axis=(1, 3))
x = (small / 127.5 - 1.0).astype(np.float32)[None]

sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
scores = np.concatenate([outs["Identity:0"][0, :, 0], outs["Identity_1:0"][0, :, 0]])
regs = np.concatenate([outs["Identity_2:0"][0], outs["Identity_3:0"][0]])
top = np.argsort(-scores)[:5]
golden = {
    "input": "astronaut.png x 96..352, y 0..256, 2x2 mean, v/127.5-1",
    "onnxruntime": ort.__version__,
    "max_logit": float(scores.max()),
    "top": [
        {"anchor": int(i), "logit": float(scores[i]), "regressors": [float(v) for v in regs[i]]}
        for i in top
    ],
}
out = pathlib.Path(__file__).with_name("blazeface_astronaut.json")
out.write_text(json.dumps(golden, indent=1) + "\n")
print(out, golden["max_logit"], [g["anchor"] for g in golden["top"]])
