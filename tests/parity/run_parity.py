"""Model parity: facesync's learned-model inputs and pasted frames against independent references.

For every case (make_clips.py) and model it runs facesync through the product path, with the
ONNX Runtime recorder (tests/ort-recorder) in front of the real library:

    ORT_DYLIB_PATH=RECORDER FACESYNC_RECORD_ORT=REAL_ORT FACESYNC_RECORD_DIR=REC \\
    facesync run --video FRAMES/ --fps FPS --audio A.wav --out OUT/ --model wav2lip:FILE \\
      --backend cpu --length trim --landmarks-out LM.jsonl --progress none

then computes, from the same input frame, the same audio and the same 68 landmarks (`points68`
of LM.jsonl; the reference derives its own 5 points with FaceFusion's convert function), the
tensors FaceFusion (facefusion_ref.py) or LatentSync's ONNX export (latentsync_ref.py) would feed
the model, compares them with the recorded ones, pastes facesync's RECORDED model output with the
reference's paste and compares that with facesync's output frame. One line per model and case:

  model-parity: model=M case=C mel_max=X crop_mean=Y crop_max=Z paste_max_lsb=W outside_changed=N

  mel_max        max |difference| of the model's audio input over all frames, in mel units
                 (LatentSync: the Whisper log-mel segments, float16)
  crop_mean/max  mean / max |difference| of the image input, in 8-bit levels (x255 for 0..1
                 inputs; x127.5 for LatentSync's -1..1 VAE input, so that 1 = one level)
  paste_max_lsb  max |facesync's frame - the reference's pasted frame| where the reference's
                 mask (warped into the frame) is > 0, in 8-bit levels
  outside_changed  pixels where the reference's mask is exactly 0 and facesync's output differs
                 from the input frame (all frames, faces or not)

  Wav2Lip knife edges: FaceFusion moves its float32 landmarks into the crop in float32 and
  truncates the lower-face hull to int32 (face_masker.py:234), so a hull point within ~1e-4 px
  of an integer makes FaceFusion's own mask depend on rounding noise. On such frames
  (facefusion_ref.hull_is_knife_edge) the paste is compared with both the float32 and the
  float64 variant and the better one counts; `model-parity-detail:` reports how many frames.

and one line per case (from the first of wav2lip/edtalk that ran):

  mel-windows: case=C fps=F frames=N first_window_max=X last_window_max=Y empty_frames_ref=K empty_frames_facesync=K2

  (the mel difference of the first and the last processed frame's window; how many of the
  processed frames got FaceFusion's empty audio frame (all -4 before the weight) on each side)

Exit status 1 when a limit below is broken (after all lines, with a line naming each broken
limit) or a run fails; 2 when the tools are missing (facesync without --fps/--landmarks-out, no
recorder, no ONNX Runtime).

Usage:
  python run_parity.py --facesync BIN --recorder LIB --ort REAL_LIB --models DIR --work DIR
                       [--cases NAME ...] [--models-only wav2lip,edtalk,latentsync]
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
import wave

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import facefusion_ref as ff  # noqa: E402
import latentsync_ref as ls  # noqa: E402
import make_clips  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MAKE_MODELS = os.path.join(ROOT, "crates", "onnx-models", "tests", "make_models.py")
STANDINS = os.path.join(ROOT, "crates", "onnx-models", "tests", "latentsync", "standins.py")

# --- limits (issue 27) -----------------------------------------------------------------------
# A value of None: printed, not enforced. Units as in the module docstring.
LIMITS = {
    # FaceFusion's Wav2Lip-96 and EDTalk-256: mel windows <= 1e-4; crops <= 1/255 mean and
    # <= 4/255 max (interpolation kernels may differ at the edges); pasted frames <= 2 LSB
    # inside the mask, bit-exact outside it.
    "wav2lip": dict(mel_max=1e-4, crop_mean=1.0, crop_max=4.0, paste_max_lsb=2.0, outside_changed=0),
    "edtalk": dict(mel_max=1e-4, crop_mean=1.0, crop_max=4.0, paste_max_lsb=2.0, outside_changed=0),
    # LatentSync's ONNX export (float16 inputs: the mel within one float16 step). The crop is
    # compared per frame, without the export's temporal state (its Laplacian landmark smoother
    # and carried translation bias): facesync smooths with its One-Euro filter instead (a
    # stated difference; the detail line prints the figures against the smoothed sequence).
    # The paste is printed, not enforced: facesync restores in one bilinear warp where the
    # export resizes back to its crop (INTER_AREA) and warps again.
    "latentsync": dict(mel_max=2e-3, crop_mean=1.0, crop_max=4.0, paste_max_lsb=None, outside_changed=None),
}
# Reordering allowed between recorded calls and faces (batch-1 files run two calls side by side).
SWAP_WINDOW = 4
RUN_TIMEOUT_S = 3600

# FaceFusion's default lip_syncer_weight (lip_syncer/core.py:138); Wav2Lip's mel x weight x 2.
WEIGHT = ff.LIP_SYNCER_WEIGHT


class ToolError(Exception):
    pass


def log(msg):
    print(f"[parity] {msg}", file=sys.stderr, flush=True)


def fmt(x):
    if x is None:
        return "nan"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.6g}"


# --- tools ------------------------------------------------------------------------------------

def check_facesync(bin_path):
    if not os.path.isfile(bin_path) or not os.access(bin_path, os.X_OK):
        raise ToolError(f"facesync binary {bin_path!r} does not exist or is not executable")
    r = subprocess.run([bin_path, "run", "--help"], capture_output=True, text=True)
    text = r.stdout + r.stderr
    missing = [o for o in ("--fps", "--landmarks-out", "--silence-threshold") if o not in text]
    if missing:
        raise ToolError(
            f"{bin_path} has no {' / '.join(missing)} option in `facesync run --help`: this "
            "harness needs a facesync with `--fps RATE` (the frame rate of a PNG-folder input), "
            "`--landmarks-out FILE` (JSON lines of points68/points5/mesh per processed "
            "frame) and `--silence-threshold off`. Rebuild facesync with them (cargo build --release -p facesync-cli).")


def check_file(path, what):
    if not path or not os.path.isfile(path):
        raise ToolError(f"{what} {path!r} does not exist")


def make_models(models_dir, wanted):
    os.makedirs(models_dir, exist_ok=True)
    if {"wav2lip", "edtalk"} & wanted:
        if not all(os.path.isfile(os.path.join(models_dir, f)) for f in
                   ("wav2lip_96.onnx", "wav2lip_96_dyn.onnx", "edtalk_256.onnx")):
            log(f"generating the Wav2Lip/EDTalk test models into {models_dir}")
            subprocess.run([sys.executable, MAKE_MODELS, models_dir], check=True)
    if "latentsync" in wanted:
        d = os.path.join(models_dir, "latentsync")
        if not os.path.isfile(os.path.join(d, "unet.onnx")):
            log(f"generating the LatentSync stand-ins into {d}")
            subprocess.run([sys.executable, STANDINS, d], check=True)


def run_facesync(a, case, model, spec, run_dir, extra=()):
    out_dir = os.path.join(run_dir, "out")
    rec_dir = os.path.join(run_dir, "rec")
    lm = os.path.join(run_dir, "landmarks.jsonl")
    for d in (out_dir, rec_dir):
        if os.path.isdir(d):
            for f in glob.glob(os.path.join(d, "*")) + glob.glob(os.path.join(d, ".*")):
                os.remove(f)
    os.makedirs(rec_dir, exist_ok=True)
    if os.path.exists(lm):
        os.remove(lm)
    cmd = [a.facesync, "run", "--video", os.path.join(case["dir"], "frames"), "--fps", case["fps_arg"],
           "--audio", os.path.join(case["dir"], "audio.wav"), "--out", out_dir + os.sep,
           "--model", spec, "--backend", "cpu", "--length", "trim", "--landmarks-out", lm,
           # FaceFusion has no silence gate: every frame gets its own audio window.
           "--silence-threshold", "off", "--progress", "none", *extra]
    env = dict(os.environ, ORT_DYLIB_PATH=a.recorder, FACESYNC_RECORD_ORT=a.ort, FACESYNC_RECORD_DIR=rec_dir)
    log(f"{model}/{case['name']}: {' '.join(cmd)}")
    t0 = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    with open(os.path.join(run_dir, "facesync.log"), "w") as f:
        f.write(f"$ {' '.join(cmd)}\nexit {r.returncode} after {time.time() - t0:.1f} s\n"
                f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
    if r.returncode != 0:
        raise RuntimeError(f"facesync exited {r.returncode}: {r.stderr.strip()[-600:]}")
    return out_dir, rec_dir, lm


# --- facesync's side --------------------------------------------------------------------------

REC_NAME = re.compile(r"^(?P<stem>.+)-(?P<seq>\d{6})-(?P<side>in|out)-(?P<name>.+)\.npy$")


def load_recordings(rec_dir, stem):
    """{seq: {(side, name): array}} for one model file stem."""
    runs = {}
    for f in os.listdir(rec_dir):
        m = REC_NAME.match(f)
        if m and m["stem"] == stem:
            runs.setdefault(int(m["seq"]), {})[m["side"], m["name"]] = np.load(os.path.join(rec_dir, f))
    return dict(sorted(runs.items()))


def load_landmarks(path):
    frames = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                frames[int(r["frame"])] = [np.asarray(fc["points68"], np.float32) for fc in r["faces"]]
    return frames


def read_frame_bgr(path):
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        raise RuntimeError(f"cannot read {path}")
    return im


def input_frame(case, k):
    return read_frame_bgr(os.path.join(case["dir"], "frames", f"{k:06d}.png"))


def output_frame(out_dir, k):
    p = os.path.join(out_dir, f"frame_{k:06d}.png")
    return read_frame_bgr(p) if os.path.isfile(p) else None


def read_audio(case):
    with wave.open(os.path.join(case["dir"], "audio.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def match_items(rec_items, ref_items, key):
    """Greedy: recorded item i takes the unassigned reference item within +-SWAP_WINDOW of i
    whose inputs are nearest (key(rec, ref) -> distance). Returns the reference index of each."""
    taken = set()
    order = []
    for i, r in enumerate(rec_items):
        cands = [j for j in range(max(0, i - SWAP_WINDOW), min(len(ref_items), i + SWAP_WINDOW + 1))
                 if j not in taken]
        if not cands:
            raise RuntimeError(f"recorded call {i} has no reference face within +-{SWAP_WINDOW}")
        j = min(cands, key=lambda j: (key(r, ref_items[j]), abs(j - i)))
        taken.add(j)
        order.append(j)
    return order


def split_batches(runs, names):
    """Concatenate the recorded calls (in seq order) along the batch axis: a list of dicts, one
    per batch item, {name: array without the batch axis}."""
    items = []
    for seq, t in runs.items():
        n = None
        for side, name in names:
            if (side, name) not in t:
                raise RuntimeError(f"recorded call {seq} has no {side}-{name} tensor (has {sorted(t)})")
            n = t[side, name].shape[0] if n is None else n
        for b in range(n):
            items.append({(side, name): t[side, name][b] for side, name in names} | {"seq": seq})
    return items


# --- FaceFusion models --------------------------------------------------------------------------

def parity_facefusion(a, case, model, out_dir, rec_dir, lm_path):
    fps = case["fps"]
    stem = "edtalk_256" if model == "edtalk" else os.path.splitext(os.path.basename(a.wav2lip_file))[0]
    lms = load_landmarks(lm_path)
    runs = load_recordings(rec_dir, stem)
    if not runs:
        raise RuntimeError(f"no recordings of {stem} in {rec_dir}")
    out_name = next(name for (side, name) in next(iter(runs.values())) if side == "out")
    names = [("in", "source"), ("in", "target"), ("out", out_name)] + ([("in", "weight")] if model == "edtalk" else [])
    items = split_batches(runs, names)

    # the reference for every face, in landmarks order
    S = ff.mel_spectrogram(read_audio(case).astype(np.float64))
    windows = ff.audio_frames(S, fps)
    faces = []  # (frame index, face index, source, target, info, empty)
    for k in sorted(lms):
        if not lms[k]:
            continue
        frame = input_frame(case, k)
        win, empty = ff.voice_frame(windows, k)
        src = ff.prepare_audio_frame(win, model, WEIGHT)[0]
        for j, p68 in enumerate(lms[k]):
            if model == "wav2lip":
                tgt, info = ff.wav2lip_inputs(frame, p68)
                # FaceFusion's own mask is undecided here: also accept the float64 variant
                info["alternatives"] = [info]
                if ff.hull_is_knife_edge(p68, info["affine"]):
                    info["alternatives"].append(ff.wav2lip_inputs(frame, p68, np.float64)[1])
            else:
                tgt, _, info = ff.edtalk_inputs(frame, p68, WEIGHT)
                info["alternatives"] = [info]
            faces.append((k, j, src, tgt[0], info, empty))
    if len(items) != len(faces):
        raise RuntimeError(f"{len(items)} recorded model inputs for {len(faces)} faces in the landmarks file")

    def dist(r, f):
        return float(np.abs(r["in", "target"] - f[3]).mean() + np.abs(r["in", "source"] - f[2]).mean())

    order = match_items(items, faces, dist)
    mel_max = crop_max = 0.0
    crop_sum = 0.0
    weight_max = 0.0
    outputs = {}  # (frame, face) -> recorded output [1,C,H,W]
    for r, j in zip(items, order):
        k, fi, src, tgt, info, _ = faces[j]
        mel_max = max(mel_max, float(np.abs(r["in", "source"].astype(np.float64) - src).max()))
        d = np.abs(r["in", "target"].astype(np.float64) - tgt) * 255.0
        crop_sum += float(d.mean())
        crop_max = max(crop_max, float(d.max()))
        if model == "edtalk":
            weight_max = max(weight_max, float(np.abs(r["in", "weight"].astype(np.float64) - WEIGHT).max()))
        outputs[k, fi] = r["out", out_name][None]
    crop_mean = crop_sum / len(items)

    # paste: the reference pastes facesync's recorded outputs into the input frame
    paste = ff.paste_wav2lip if model == "wav2lip" else ff.paste_edtalk
    paste_max = 0.0
    outside = 0
    worst = (0.0, -1)
    knife_frames = 0
    n_out = case["n_frames"]
    missing_out = []
    faces_by_frame = {}
    for (k, j, _, _, info, _) in faces:
        faces_by_frame.setdefault(k, []).append((j, info))
    for k in range(n_out):
        got = output_frame(out_dir, k)
        if got is None:
            missing_out.append(k)
            continue
        frame = input_frame(case, k)
        fl = faces_by_frame.get(k, [])
        best = None
        # every combination of the faces' alternatives (one unless a hull is on a knife edge)
        for combo in itertools.product(*[info["alternatives"] for _, info in fl]):
            ref = frame
            mask = np.zeros(frame.shape[:2], np.float32)
            for (j, _), info in zip(fl, combo):
                ref, m = paste(ref, outputs[k, j], info)
                mask = np.maximum(mask, m)
            inside = mask > 0
            pm = float(np.abs(got.astype(np.int16) - ref.astype(np.int16))[inside].max()) if inside.any() else 0.0
            oc = int((np.any(got != frame, axis=2) & ~inside).sum())
            if best is None or (oc, pm) < best:
                best = (oc, pm)
        if any(len(info["alternatives"]) > 1 for _, info in fl):
            knife_frames += 1
        outside += best[0]
        paste_max = max(paste_max, best[1])
        worst = max(worst, (best[1], k))
    if missing_out:
        raise RuntimeError(f"facesync wrote no output for frames {missing_out[:5]}... ({len(missing_out)} of {n_out})")

    # mel windows at both ends
    first, last = faces[0], faces[-1]
    rec_by_face = {order[i]: items[i] for i in range(len(items))}
    fw = float(np.abs(rec_by_face[0]["in", "source"] - first[2]).max())
    lw = float(np.abs(rec_by_face[len(faces) - 1]["in", "source"] - last[2]).max())
    empty_value = ff.prepare_audio_frame(ff.create_empty_audio_frame(), model, WEIGHT)[0]
    empty_ref = sum(1 for f in faces if f[5])
    empty_fs = sum(1 for r in items if np.array_equal(r["in", "source"], empty_value))
    if empty_ref != empty_fs:
        raise RuntimeError(f"{empty_fs} frames got the empty audio frame from facesync, "
                           f"{empty_ref} from the reference")
    windows_line = (f"mel-windows: case={case['name']} fps={fmt(fps)} frames={len(faces)} "
                    f"first_window_max={fmt(fw)} last_window_max={fmt(lw)} "
                    f"empty_frames_ref={empty_ref} empty_frames_facesync={empty_fs}")
    extra = {"paste_worst_frame": worst[1]}
    if model == "wav2lip":
        extra["hull_knife_edge_frames"] = knife_frames
    if model == "edtalk":
        extra["weight_max"] = weight_max
    return dict(mel_max=mel_max, crop_mean=crop_mean, crop_max=crop_max, paste_max_lsb=paste_max,
                outside_changed=outside), windows_line, extra


# --- LatentSync ---------------------------------------------------------------------------------

def parity_latentsync(a, case, out_dir, rec_dir, lm_path):
    lms = load_landmarks(lm_path)
    face_frames = [(k, p68) for k in sorted(lms) for p68 in lms[k][:1]]  # the export: one face per frame
    if not face_frames:
        raise RuntimeError("no face in the landmarks file")

    # audio: Whisper log-mel segments
    audio = read_audio(case).astype(np.float32) / np.float32(32768.0)
    segs = ls.whisper_segments(ls.whisper_log_mel(audio))
    wh = load_recordings(rec_dir, "whisper_tiny")
    rec_segs = [t["in", "segment"] for t in wh.values()]
    if len(rec_segs) != len(segs):
        raise RuntimeError(f"{len(rec_segs)} recorded Whisper segments, the reference has {len(segs)}")
    mel_max = max(float(np.abs(r.astype(np.float32) - s.astype(np.float32)).max()) for r, s in zip(rec_segs, segs))

    # crops and VAE inputs, the export's sequence (smoothing on), and per frame (off)
    mask = ls.load_fixed_mask()
    al_on, al_off = ls.Aligner(smooth=True), ls.Aligner(smooth=False)
    ref = []
    for k, p68 in face_frames:
        rgb = cv2.cvtColor(input_frame(case, k), cv2.COLOR_BGR2RGB)
        face, affine = al_on.align(rgb, p68)
        face_off, _ = al_off.align(rgb, p68)
        pixel, masked, m1 = ls.vae_inputs(face, mask)
        pixel_off, masked_off, _ = ls.vae_inputs(face_off, mask)
        _, affine_off = al_off.align(rgb, p68)
        ref.append(dict(frame=k, rgb=rgb, affine=affine, pixel=pixel, masked=masked, mask1=m1,
                        pixel_off=pixel_off, masked_off=masked_off, affine_off=affine_off))

    enc = load_recordings(rec_dir, "vae_encoder")
    masked_region = mask[0] < 0.5
    unmasked_calls, masked_calls = [], []
    for seq, t in enc.items():
        x = t["in", "x"]
        zero_frac = float((x[:, :, masked_region] == 0).mean())
        (masked_calls if zero_frac > 0.99 else unmasked_calls).append(x)
    n = len(ref)
    rec_pixel = np.concatenate(unmasked_calls)[:n] if unmasked_calls else np.zeros((0,))
    rec_masked = np.concatenate(masked_calls)[:n] if masked_calls else np.zeros((0,))
    if len(rec_pixel) < n:
        raise RuntimeError(f"{len(rec_pixel)} recorded unmasked VAE inputs for {n} faces")
    d_on = np.stack([np.abs(rec_pixel[i].astype(np.float32) - ref[i]["pixel"].astype(np.float32)) for i in range(n)]) * 127.5
    d_off = np.stack([np.abs(rec_pixel[i].astype(np.float32) - ref[i]["pixel_off"].astype(np.float32)) for i in range(n)]) * 127.5
    extra = dict(crop_mean_export_smoothing=float(d_on.mean()), crop_max_export_smoothing=float(d_on.max()))
    if len(rec_masked) >= n:
        dm = np.stack([np.abs(rec_masked[i].astype(np.float32) - ref[i]["masked_off"].astype(np.float32)) for i in range(n)]) * 127.5
        extra.update(masked_crop_mean=float(dm.mean()), masked_crop_max=float(dm.max()))

    # restore: facesync's recorded decoder outputs pasted by the reference
    dec = load_recordings(rec_dir, "vae_decoder")
    decoded = np.concatenate([t[next(k for k in t if k[0] == "out")] for t in dec.values()])[:n] if dec else []
    if len(decoded) < n:
        raise RuntimeError(f"{len(decoded)} recorded VAE decoder outputs for {n} faces")
    by_frame = {r["frame"]: (i, r) for i, r in enumerate(ref)}
    paste_max, outside = 0.0, 0
    for k in range(case["n_frames"]):
        got = output_frame(out_dir, k)
        if got is None:
            raise RuntimeError(f"facesync wrote no output frame {k}")
        frame = input_frame(case, k)
        if k in by_frame:
            i, r = by_frame[k]
            out_rgb, soft = ls.restore(r["rgb"], decoded[i].astype(np.float16), r["pixel_off"], r["mask1"], r["affine_off"])
            inside = soft > 0
            refb = cv2.cvtColor(out_rgb, cv2.COLOR_RGB2BGR)
            if inside.any():
                paste_max = max(paste_max, float(np.abs(got.astype(np.int16) - refb.astype(np.int16))[inside].max()))
        else:
            inside = np.zeros(frame.shape[:2], bool)
        outside += int((np.any(got != frame, axis=2) & ~inside).sum())
    return dict(mel_max=mel_max, crop_mean=float(d_off.mean()), crop_max=float(d_off.max()),
                paste_max_lsb=paste_max, outside_changed=outside), None, extra


# --- driver -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facesync", required=True, help="the facesync binary")
    ap.add_argument("--recorder", required=True, help="libfacesync_ort_recorder.so")
    ap.add_argument("--ort", required=True, help="the real libonnxruntime.so the recorder forwards to")
    ap.add_argument("--models", required=True, help="folder where the test models are generated")
    ap.add_argument("--work", required=True, help="folder for the clips and the runs")
    ap.add_argument("--cases", nargs="+", default=make_clips.ALL_CASES)
    ap.add_argument("--models-only", default="wav2lip,edtalk,latentsync",
                    help="comma-separated subset of wav2lip,edtalk,latentsync")
    ap.add_argument("--wav2lip-file", default="wav2lip_96.onnx",
                    help="wav2lip_96.onnx (batch 1, as FaceFusion's) or wav2lip_96_dyn.onnx")
    ap.add_argument("--remake-clips", action="store_true", help="make the clips even if they exist")
    a = ap.parse_args()
    wanted = [m for m in a.models_only.split(",") if m]
    bad = [m for m in wanted if m not in LIMITS]
    if bad:
        sys.exit(f"run_parity: unknown model(s) {bad} (wav2lip, edtalk, latentsync)")
    unknown = [c for c in a.cases if c not in make_clips.ALL_CASES]
    if unknown:
        sys.exit(f"run_parity: unknown case(s) {unknown} (cases: {', '.join(make_clips.ALL_CASES)})")
    try:
        check_facesync(a.facesync)
        check_file(a.recorder, "the ORT recorder library (--recorder)")
        check_file(a.ort, "the real ONNX Runtime library (--ort)")
    except ToolError as e:
        print(f"run_parity: {e}", file=sys.stderr)
        return 2
    a.facesync, a.recorder, a.ort = map(os.path.abspath, (a.facesync, a.recorder, a.ort))
    models_dir = os.path.abspath(a.models)
    make_models(models_dir, set(wanted))
    a.wav2lip_file = os.path.join(models_dir, a.wav2lip_file)

    work = os.path.abspath(a.work)
    clips = os.path.join(work, "clips")
    cases = []
    for c in a.cases:
        d = os.path.join(clips, c)
        if a.remake_clips or not os.path.isfile(os.path.join(d, "case.json")):
            log(f"making clip {c}")
            make_clips.make(c, clips, a.facesync)
        meta = json.load(open(os.path.join(d, "case.json")))
        meta["dir"] = d
        cases.append(meta)

    lines, windows, failures = [], {}, []
    for model in wanted:
        for case in cases:
            run_dir = os.path.join(work, "runs", model, case["name"])
            os.makedirs(run_dir, exist_ok=True)
            if model == "latentsync":
                spec, extra_args = f"latentsync:{os.path.join(models_dir, 'latentsync')}", ("--resolution", "256")
            else:
                f = a.wav2lip_file if model == "wav2lip" else os.path.join(models_dir, "edtalk_256.onnx")
                spec, extra_args = f"{model}:{f}", ()
            try:
                out_dir, rec_dir, lm = run_facesync(a, case, model, spec, run_dir, extra_args)
                if model == "latentsync":
                    res, wl, extra = parity_latentsync(a, case, out_dir, rec_dir, lm)
                else:
                    res, wl, extra = parity_facefusion(a, case, model, out_dir, rec_dir, lm)
            except Exception as e:  # noqa: BLE001 (every failure becomes a line and exit 1)
                res, wl, extra = {k: float("nan") for k in LIMITS[model]}, None, {}
                failures.append(f"model-parity: FAIL model={model} case={case['name']} error: {e}")
            line = (f"model-parity: model={model} case={case['name']} "
                    + " ".join(f"{k}={fmt(res[k])}" for k in
                               ("mel_max", "crop_mean", "crop_max", "paste_max_lsb", "outside_changed")))
            print(line, flush=True)
            if extra:
                print(f"model-parity-detail: model={model} case={case['name']} "
                      + " ".join(f"{k}={fmt(v)}" for k, v in extra.items()), flush=True)
            lines.append(line)
            if wl and case["name"] not in windows:
                windows[case["name"]] = wl
            for k, lim in LIMITS[model].items():
                v = res[k]
                if lim is not None and not (isinstance(v, float) and math.isnan(v)) and v > lim:
                    failures.append(f"model-parity: FAIL model={model} case={case['name']} limit {k}<={lim} (got {fmt(v)})")
            if model == "edtalk" and extra.get("weight_max", 0.0) > 1e-6:
                failures.append(f"model-parity: FAIL model=edtalk case={case['name']} weight input differs "
                                f"from FaceFusion's {WEIGHT} by {fmt(extra['weight_max'])}")
    for case in cases:
        if case["name"] in windows:
            print(windows[case["name"]], flush=True)
    for f in failures:
        print(f, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
