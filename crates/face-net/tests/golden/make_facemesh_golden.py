"""Golden FaceMesh outputs from onnxruntime for face-net's CPU network test.

Three inputs from crates/pipeline/assets/astronaut.png (512x512 RGB), NHWC float32 RGB in
[0, 1] (v / 255, computed in float32), nearest-neighbour squares (x0, y0, side, mirrored) =
(148, 44, 150, no) (the face with MediaPipe's 1.5x margin), (148, 44, 150, yes),
(0, 0, 512, no) (the whole photo): input pixel (x, y) samples source
(x0 + (x' * side + side // 2) // 192, y0 + (y * side + side // 2) // 192), x' = 191 - x when
mirrored (face-net's
`facemesh::tests::golden_input` does the same). The graph takes NCHW, so each input is
transposed for onnxruntime.
Output facemesh_golden.bin: for each input in that order, the 1404 landmark values
(468 x (x, y, z)) then the presence logit, little-endian float32 (3 x 1405 values). Run from
the repository root:
    python3 crates/face-net/tests/golden/make_facemesh_golden.py
"""
import pathlib

import numpy as np
import onnxruntime as ort
from PIL import Image

root = pathlib.Path(__file__).resolve().parents[4]
model = root / "crates/face-net/assets/facemesh/face_landmark.onnx"
img = np.asarray(Image.open(root / "crates/pipeline/assets/astronaut.png").convert("RGB"))
h, w, _ = img.shape


def nearest_crop(x0, y0, side, mirror):
    idx = np.arange(192)
    xs = 191 - idx if mirror else idx
    sx = np.minimum(x0 + (xs * side + side // 2) // 192, w - 1)
    sy = np.minimum(y0 + (idx * side + side // 2) // 192, h - 1)
    return img[sy][:, sx].astype(np.float32) / np.float32(255.0)


inputs = [
    nearest_crop(148, 44, 150, False),
    nearest_crop(148, 44, 150, True),
    nearest_crop(0, 0, 512, False),
]
sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
names = [o.name for o in sess.get_outputs()]
chunks = []
for x in inputs:
    nchw = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    outs = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: nchw})))
    landmarks = outs["conv2d_20"].reshape(-1)
    logit = outs["conv2d_30"].reshape(-1)
    chunks += [landmarks, logit]
    print("presence logit", float(logit[0]), "nose tip", landmarks[3:6])
out = pathlib.Path(__file__).with_name("facemesh_golden.bin")
np.concatenate(chunks).astype("<f4").tofile(out)
print(out, "onnxruntime", ort.__version__, "numpy", np.__version__)
