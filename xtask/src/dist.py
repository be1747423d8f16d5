"""`cargo xtask dist`'s Python parts. Subcommands:

  wheel_licenses WHEEL FOLDER
                         adds FOLDER's files to the wheel's .dist-info/licenses/ (and RECORD)

and, for `--check`, run by an interpreter into which only the wheel was installed (no Rust on
PATH):

  run_frames WORKDIR     facesync.run_frames on the built-in sample's frames (read from its Y4M)
  import_time            seconds to import facesync, and its __version__
  node CUSTOM_NODES STANDINS
                         loads every custom node folder as ComfyUI's load_custom_node does (with
                         stand-ins of ComfyUI's modules: no torch) and lists the nodes it declares
"""

import asyncio
import base64
import hashlib
import importlib.util
import os
import sys
import time


def read_y4m(path):
    """Frames of a 4:2:0 Y4M file as float32 RGB [n, h, w, 3] (full range BT.601)."""
    import numpy as np

    with open(path, "rb") as f:
        data = f.read()
    header, _, body = data.partition(b"\n")
    fields = {t[:1]: t[1:] for t in header.split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    assert fields.get(b"C", b"420").startswith(b"420"), header
    frame_size = w * h * 3 // 2
    frames = []
    while body.startswith(b"FRAME"):
        body = body[body.index(b"\n") + 1:]
        raw = np.frombuffer(body[:frame_size], np.uint8)
        body = body[frame_size:]
        y = raw[: w * h].reshape(h, w).astype(np.float32)
        u = raw[w * h: w * h * 5 // 4].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1) - 128.0
        v = raw[w * h * 5 // 4:].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1) - 128.0
        rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], -1)
        frames.append(np.clip(rgb / 255.0, 0.0, 1.0))
    return np.stack(frames).astype(np.float32)


def run_frames(work):
    import wave

    import numpy as np

    import facesync

    video, audio_path = facesync.write_sample(work, seconds=1, size=256)
    frames = read_y4m(video)
    with wave.open(audio_path, "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    audio = (pcm.reshape(-1, channels).T / 32768.0).astype(np.float32)
    out = facesync.run_frames(frames, 25.0, audio, rate)
    expected = round(audio.shape[1] / rate * 25)
    assert out.shape[1:] == (256, 256, 3) and abs(out.shape[0] - expected) <= 1, out.shape
    changed = float(np.abs(out[: len(frames)] - frames[: len(out)]).max())
    assert changed > 0.05, f"run_frames changed nothing (max difference {changed})"
    print(f"run_frames: {frames.shape[0]} frames in, {out.shape[0]} out")


def import_time():
    started = time.perf_counter()
    import facesync

    print(f"{time.perf_counter() - started:.3f} {facesync.__version__}")


def node(custom_nodes, standins):
    sys.path.insert(0, standins)
    found = []
    for name in sorted(os.listdir(custom_nodes)):
        folder = os.path.join(custom_nodes, name)
        init = os.path.join(folder, "__init__.py")
        if not os.path.isfile(init):
            continue
        # ComfyUI 0.12.1's nodes.load_custom_node, for a folder.
        spec = importlib.util.spec_from_file_location(name, init,
                                                      submodule_search_locations=[folder])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        if hasattr(module, "NODE_CLASS_MAPPINGS"):
            for node_id, cls in module.NODE_CLASS_MAPPINGS.items():
                cls.INPUT_TYPES()  # what /object_info asks of a V1 node
                found.append(node_id)
        elif hasattr(module, "comfy_entrypoint"):
            extension = asyncio.run(module.comfy_entrypoint())
            for cls in asyncio.run(extension.get_node_list()):
                found.append(cls.define_schema().node_id)  # what /object_info asks of V3
        else:
            raise SystemExit(f"{folder}: neither NODE_CLASS_MAPPINGS nor comfy_entrypoint")
    print(" ".join(found))


def wheel_licenses(wheel, folder):
    """Rewrites ``wheel`` with every file under ``folder`` in ``<dist-info>/licenses/`` (where
    PEP 639 puts licence files), each listed in RECORD with its digest, as installers check."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        dist_info = next(n.split("/")[0] for n in z.namelist()
                         if n.split("/")[0].endswith(".dist-info"))
        record_name = f"{dist_info}/RECORD"
        record = [line for line in z.read(record_name).decode().splitlines()
                  if line and not line.startswith(record_name + ",")]
        kept = [(info, z.read(info)) for info in z.infolist()
                if info.filename != record_name
                and not info.filename.startswith(f"{dist_info}/licenses/")]
    record = [line for line in record if not line.startswith(f"{dist_info}/licenses/")]
    added = []
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                added.append((f"{dist_info}/licenses/" + os.path.relpath(path, folder), f.read()))
    temporary = wheel + ".part"
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in kept:
            out.writestr(info, data)
        for arcname, data in added:
            out.writestr(zipfile.ZipInfo(arcname, (1980, 1, 1, 0, 0, 0)), data,
                         zipfile.ZIP_DEFLATED)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{arcname},sha256={digest.decode()},{len(data)}")
        record.append(f"{record_name},,")
        out.writestr(zipfile.ZipInfo(record_name, (1980, 1, 1, 0, 0, 0)),
                     "\n".join(record) + "\n", zipfile.ZIP_DEFLATED)
    os.replace(temporary, wheel)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"run_frames": run_frames, "import_time": import_time, "node": node,
     "wheel_licenses": wheel_licenses}[command](*args)
