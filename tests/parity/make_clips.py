"""Makes the parity harness's test cases: each a folder with frames/000000.png... (RGB), audio.wav
(16 kHz mono 16-bit) and case.json {name, fps, fps_arg, n_frames, width, height, audio_samples,
what}.

Cases:
  sample     the frames of facesync's built-in sample (`facesync sample`), Y4M -> PNG with ffmpeg
  astronaut  crates/test-kit/assets/astronaut.png in a 1280x720 grey frame, 4 s at 25 fps: roll
             +-10 deg (a sine), scale 0.85-1.15, translation; espeak-ng speech
  solvay     one frontal face of crates/test-kit/assets/solvay-1927-row.png (box x 316, y 28, side 58 of
             SOLVAY_FACES in crates/face-proc/src/detect.rs) cut with a margin, upscaled x4
             (INTER_CUBIC), in a 640x480 frame with its own roll/scale; another voice and sentence
  fps24 fps25 fps29.97 fps30 fps60
             1.6 s of the astronaut motion at that frame rate (29.97 = 30000/1001), with speech
             at both ends of the clip (cut from inside a longer utterance)

The audio of every case is exactly as long as len(frames)/fps rounded to samples, except fps24 and
fps29.97 (1.6 s: 38.4 and 47.95 frames; the video has the whole frames only). Needs ffmpeg and
espeak-ng on PATH.

    python make_clips.py --facesync BIN --work DIR [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from fractions import Fraction

import cv2
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASTRONAUT = os.path.join(ROOT, "crates", "test-kit", "assets", "astronaut.png")
SOLVAY = os.path.join(ROOT, "crates", "test-kit", "assets", "solvay-1927-row.png")
SOLVAY_FACE = (316, 28, 58)  # x, y, side: SOLVAY_FACES[3] in crates/face-proc/src/detect.rs

FPS_CASES = {"fps24": "24", "fps25": "25", "fps29.97": "30000/1001", "fps30": "30", "fps60": "60"}
ALL_CASES = ["sample", "astronaut", "solvay", *FPS_CASES]

SENTENCE_A = ("Every morning the astronaut checks the oxygen, reads the long list of numbers "
              "out loud, and then smiles at the camera before the work begins.")
SENTENCE_B = ("Physics meetings in Brussels went on for days, with chalk on every board and "
              "arguments about waves, particles and probability.")
SENTENCE_FPS = ("Quickly now, tell me which window opens at the very first frame and which at "
                "the last one, please.")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r


def need(tool):
    if shutil.which(tool) is None:
        sys.exit(f"make_clips: `{tool}` is not on PATH (apt-get install -y {tool})")


def read_wav(path):
    with wave.open(path) as w:
        assert w.getsampwidth() == 2, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), w.getnchannels(), data.reshape(-1, w.getnchannels())


def write_wav(path, samples_i16):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.asarray(samples_i16, dtype="<i2").tobytes())


def to_16k_mono(src, dst):
    """ffmpeg to 16 kHz mono s16 unless it already is."""
    rate, ch, _ = read_wav(src) if src.endswith(".wav") else (0, 0, None)
    if rate == 16000 and ch == 1:
        shutil.copyfile(src, dst)
    else:
        run(["ffmpeg", "-loglevel", "error", "-y", "-i", src, "-ar", "16000", "-ac", "1",
             "-sample_fmt", "s16", dst])


def speech(text, voice, dst, speed=150, pitch=50):
    """espeak-ng to a WAV, then 16 kHz mono s16 (ffmpeg). Returns the samples (int16)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "espeak.wav")
        run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw, text])
        to_16k_mono(raw, dst)
    return read_wav(dst)[2][:, 0]


def fit(samples, n, start=0):
    """samples[start:start+n], zero-padded at the end to n."""
    out = np.zeros(n, np.int16)
    part = samples[start:start + n]
    out[: len(part)] = part
    return out


def motion(t, period_roll=2.3, period_scale=3.1, amp_t=(110.0, 35.0)):
    """Head pose at time t: roll +-10 deg, scale 0.85..1.15, translation."""
    roll = 10.0 * np.sin(2 * np.pi * t / period_roll)
    scale = 1.0 + 0.15 * np.sin(2 * np.pi * t / period_scale + 0.7)
    tx = amp_t[0] * np.sin(2 * np.pi * t / 3.7 + 0.3)
    ty = amp_t[1] * np.sin(2 * np.pi * t / 2.9 + 1.1)
    return roll, scale, tx, ty


def place(img_rgb, size, t, grey=(128, 128, 128), **kw):
    """img placed at the centre of a grey frame of `size` (w, h), moved by motion(t); bilinear."""
    roll, scale, tx, ty = motion(t, **kw)
    h, w = img_rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), roll, scale)
    m[0, 2] += size[0] / 2 - w / 2 + tx
    m[1, 2] += size[1] / 2 - h / 2 + ty
    return cv2.warpAffine(img_rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=grey)


def write_frames(frames_dir, frames_rgb):
    os.makedirs(frames_dir, exist_ok=True)
    for i, f in enumerate(frames_rgb):
        cv2.imwrite(os.path.join(frames_dir, f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))


def finish(case_dir, name, fps_arg, n_frames, size, audio_i16, what):
    write_wav(os.path.join(case_dir, "audio.wav"), audio_i16)
    meta = dict(name=name, fps=float(Fraction(fps_arg)), fps_arg=fps_arg, n_frames=n_frames,
                width=size[0], height=size[1], audio_samples=int(len(audio_i16)), what=what)
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def make_sample(facesync, case_dir):
    src = os.path.join(case_dir, "src")
    os.makedirs(src, exist_ok=True)
    run([facesync, "sample", "--dir", src])
    y4m = os.path.join(src, "sample.y4m")
    header = open(y4m, "rb").readline().decode()
    fields = {p[0]: p[1:] for p in header.split()[1:]}
    fps_arg = fields["F"].replace(":", "/")
    if fps_arg.endswith("/1"):
        fps_arg = fps_arg[:-2]
    frames_dir = os.path.join(case_dir, "frames")
    os.makedirs(frames_dir, exist_ok=True)
    run(["ffmpeg", "-loglevel", "error", "-y", "-i", y4m, "-pix_fmt", "rgb24", "-start_number", "0",
         os.path.join(frames_dir, "%06d.png")])
    n = len([f for f in os.listdir(frames_dir) if f.endswith(".png")])
    wav = os.path.join(src, "audio16k.wav")
    to_16k_mono(os.path.join(src, "sample.wav"), wav)
    audio = read_wav(wav)[2][:, 0]
    return finish(case_dir, "sample", fps_arg, n, (int(fields["W"]), int(fields["H"])), audio,
                  f"facesync sample ({header.strip()}), frames by ffmpeg -pix_fmt rgb24")


def make_astronaut(case_dir, name="astronaut", fps_arg="25", seconds=4.0, text=SENTENCE_A,
                   audio_start=0.0, voice="en-us", speed=150):
    fps = float(Fraction(fps_arg))
    img = cv2.cvtColor(cv2.imread(ASTRONAUT), cv2.COLOR_BGR2RGB)
    n = int(seconds * fps + 1e-9)
    size = (1280, 720)
    write_frames(os.path.join(case_dir, "frames"), [place(img, size, k / fps) for k in range(n)])
    full = speech(text, voice, os.path.join(case_dir, "speech_full.wav"), speed=speed)
    audio = fit(full, int(round(seconds * 16000)), int(round(audio_start * 16000)))
    return finish(case_dir, name, fps_arg, n, size, audio,
                  f"astronaut.png in 1280x720, roll +-10 deg, scale 0.85-1.15, {seconds} s at {fps_arg} fps; "
                  f"espeak-ng -v {voice}, audio from {audio_start} s of the utterance")


def make_solvay(case_dir):
    row = cv2.cvtColor(cv2.imread(SOLVAY), cv2.COLOR_BGR2RGB)
    x, y, s = SOLVAY_FACE
    m = int(0.45 * s)
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(row.shape[1], x + s + m), min(row.shape[0], y + s + int(1.3 * m))
    face = cv2.resize(row[y0:y1, x0:x1], None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    fps, n, size = 25.0, 100, (640, 480)
    frames = [place(face, size, k / fps, grey=(120, 120, 120), period_roll=1.9, period_scale=2.6,
                    amp_t=(60.0, 20.0)) for k in range(n)]
    write_frames(os.path.join(case_dir, "frames"), frames)
    full = speech(SENTENCE_B, "en-gb-x-rp", os.path.join(case_dir, "speech_full.wav"), speed=140, pitch=35)
    audio = fit(full, n * 16000 // 25)
    return finish(case_dir, "solvay", "25", n, size, audio,
                  f"solvay-1927-row.png face {SOLVAY_FACE} with margin, x4 cubic, 640x480, own roll/scale; "
                  "espeak-ng -v en-gb-x-rp")


def make(case, work, facesync=None):
    case_dir = os.path.join(work, case)
    if os.path.exists(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    if case == "sample":
        if not facesync:
            raise SystemExit("make_clips: the sample case needs --facesync")
        return make_sample(facesync, case_dir)
    if case == "astronaut":
        return make_astronaut(case_dir)
    if case == "solvay":
        return make_solvay(case_dir)
    if case in FPS_CASES:
        return make_astronaut(case_dir, name=case, fps_arg=FPS_CASES[case], seconds=1.6,
                              text=SENTENCE_FPS, audio_start=0.25, speed=165)
    raise SystemExit(f"make_clips: unknown case {case!r} (cases: {', '.join(ALL_CASES)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facesync", help="the facesync binary (for the sample case)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--cases", nargs="+", default=ALL_CASES)
    a = ap.parse_args()
    need("ffmpeg")
    need("espeak-ng")
    for c in a.cases:
        meta = make(c, a.work, a.facesync)
        print(f"clip: {meta['name']} fps={meta['fps_arg']} frames={meta['n_frames']} "
              f"size={meta['width']}x{meta['height']} audio_samples={meta['audio_samples']}")


if __name__ == "__main__":
    main()
