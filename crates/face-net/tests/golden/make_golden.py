"""Golden BlazeFace outputs from onnxruntime for face-net's CPU network test.

Four inputs from crates/pipeline/assets/astronaut.png (512x512 RGB), NHWC float32 in
MediaPipe's [-1, 1] (v / 127.5 - 1, computed in float32):
  0. crop x 96..352, y 0..256, each 2x2 block averaged to 128x128 (the face with margin);
  1-3. nearest-neighbour squares (x0, y0, side, mirrored) = (122, 17, 200, no),
       (0, 0, 512, no) (the whole photo), (150, 45, 150, yes): input pixel (x, y) samples
       source (x0 + (x' * side + side // 2) // 128, y0 + (y * side + side // 2) // 128), with
       x' = 127 - x when mirrored (face-net's `testutil::nearest_crop` does the same).
Output blazeface_golden.bin: for each input in that order, 896 score logits then 896 x 16
regressors, little-endian float32 (4 x 15232 values). Run from the repository root:
    python3 crates/face-net/tests/golden/make_golden.py
"""
import pathlib

import numpy as np
import onnxruntime as ort
from PIL import Image

root = pathlib.Path(__file__).resolve().parents[4]
model = root / "crates/face-net/assets/blazeface/face_detection_front_128x128_barracuda.onnx"
img = np.asarray(Image.open(root / "crates/pipeline/assets/astronaut.png").convert("RGB"))
h, w, _ = img.shape


def scale(pixels):
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def mean_crop():
    crop = img[0:256, 96:352].astype(np.float32)
    return scale(crop.reshape(128, 2, 128, 2, 3).mean(axis=(1, 3)))


def nearest_crop(x0, y0, side, mirror):
    idx = np.arange(128)
    xs = 127 - idx if mirror else idx
    sx = np.minimum(x0 + (xs * side + side // 2) // 128, w - 1)
    sy = np.minimum(y0 + (idx * side + side // 2) // 128, h - 1)
    return scale(img[sy][:, sx])


inputs = [
    mean_crop(),
    nearest_crop(122, 17, 200, False),
    nearest_crop(0, 0, 512, False),
    nearest_crop(150, 45, 150, True),
]
sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
names = [o.name for o in sess.get_outputs()]
chunks = []
for x in inputs:
    outs = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x[None]})))
    scores = np.concatenate([outs["Identity:0"][0, :, 0], outs["Identity_1:0"][0, :, 0]])
    regs = np.concatenate([outs["Identity_2:0"][0], outs["Identity_3:0"][0]])
    chunks += [scores, regs.reshape(-1)]
    print("max logit", scores.max(), "at anchor", int(np.argmax(scores)))
out = pathlib.Path(__file__).with_name("blazeface_golden.bin")
np.concatenate(chunks).astype("<f4").tofile(out)
print(out, "onnxruntime", ort.__version__, "numpy", np.__version__)
