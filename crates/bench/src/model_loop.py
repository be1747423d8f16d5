"""The per-frame loop of FaceFusion's lip syncer (facefusion/processors/modules/lip_syncer),
with onnxruntime and numpy, for `cargo xtask bench model`: audio -> mel spectrogram once (as
FaceFusion's read_static_voice), then per frame: crop the face box to 96x96 (bilinear),
prepare the 6-channel target (lower half zeroed || crop, BGR, 0..1), the 80x16 mel window,
one model call (batch 1), the result back to the box size and blended into the frame with a
feathered (Gaussian-blurred) lower-face mask. With the 12 arguments below, face detection and
landmarks are NOT run: the loop gets the face box for free (an advantage over facesync, which
detects and aligns every frame).

With two more arguments (a BlazeFace and a FaceMesh ONNX file: the detector and landmarker
facesync uses, standing in for FaceFusion's, whose weights are not available here) the loop also
does what FaceFusion's `select_faces` does per frame before the lip sync: it detects the face
(BlazeFace on the whole frame resized to 128x128, the best-scoring anchor) and landmarks it
(FaceMesh on a 192x192 crop around that box), and the Wav2Lip box comes from the landmarks'
bounding box (as FaceFusion's `create_bounding_box` of its 68 points) instead of the given box.
The three sessions keep onnxruntime's default thread count but do not spin-wait between calls:
with spinning (onnxruntime's default, and FaceFusion's) the idle pools of the two small
networks spin while the lip-sync call runs on the same two cores, and the model calls took
more than twice as long in a trial run; this loop is the faster, careful variant. The network
inputs are nearest-neighbour resamples (one numpy gather; FaceFusion resizes with OpenCV).

argv: model frames.rgb width height count audio.wav fps box_x0 box_y0 box_x1 box_y1 rounds
      [blazeface.onnx facemesh.onnx]
Prints one line per round: `loop: frames=N secs=S model_secs=M` (M: the time inside the model
calls).
"""
import sys
import time
import wave

import numpy as np
import onnxruntime

model, frames_path = sys.argv[1], sys.argv[2]
w, h, n = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
wav_path, fps = sys.argv[6], float(sys.argv[7])
box = [float(v) for v in sys.argv[8:12]]
rounds = int(sys.argv[12])
detect = len(sys.argv) > 14

options = onnxruntime.SessionOptions()  # the default thread count, as facesync's session
if detect:
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
if detect:
    detector = onnxruntime.InferenceSession(sys.argv[13], options, providers=["CPUExecutionProvider"])
    landmarker = onnxruntime.InferenceSession(sys.argv[14], options, providers=["CPUExecutionProvider"])
    # MediaPipe's front-camera SSD anchors: a 16x16 grid with 2 anchors per cell (stride 8),
    # then an 8x8 grid with 6 (stride 16); centres at cell centres, in 0..1.
    anchors = np.concatenate([
        np.repeat(np.stack(np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g), -1).reshape(-1, 2), k, axis=0)
        for g, k in ((16, 2), (8, 6))
    ])


def mel_spectrogram(x):
    x = x / np.max(np.abs(x))
    x = np.concatenate([[x[0]], x[1:] - 0.97 * x[:-1]])
    n_fft, hop = 800, 200
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
    padded = np.concatenate([padded, np.zeros((-(len(padded) - n_fft)) % hop)])
    cols = (len(padded) - n_fft) // hop + 1
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:cols]
    mag = np.abs(np.fft.rfft(frames * win, axis=1)) / win.sum()
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    edges = hz(np.linspace(mel(55.0), mel(7600.0), 82))
    freqs = np.arange(n_fft // 2 + 1) * 16000 / n_fft
    lo, c, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    spec = (mag @ bank.T).T
    return np.clip(np.log10(np.maximum(1e-5, spec)) * 1.6 + 3.2, -4, 4).astype(np.float32)


def bilinear_maps(x0, y0, x1, y1, ow, oh):
    xs = x0 + (np.arange(ow) + 0.5) * (x1 - x0) / ow - 0.5
    ys = y0 + (np.arange(oh) + 0.5) * (y1 - y0) / oh - 0.5
    return xs, ys


def sample(img, xs, ys):
    xs = np.clip(xs, 0, img.shape[1] - 1)
    ys = np.clip(ys, 0, img.shape[0] - 1)
    xa = np.floor(xs).astype(int)
    ya = np.floor(ys).astype(int)
    xb = np.minimum(xa + 1, img.shape[1] - 1)
    yb = np.minimum(ya + 1, img.shape[0] - 1)
    fx = (xs - xa)[None, :, None]
    fy = (ys - ya)[:, None, None]
    top = img[ya][:, xa] * (1 - fx) + img[ya][:, xb] * fx
    bottom = img[yb][:, xa] * (1 - fx) + img[yb][:, xb] * fx
    return top * (1 - fy) + bottom * fy


def gaussian_blur(mask, sigma):
    r = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    mask = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, mask)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, mask)


def nearest(img, x0, y0, x1, y1, side):
    xs = np.clip(x0 + (np.arange(side) + 0.5) * (x1 - x0) / side, 0, img.shape[1] - 1).astype(int)
    ys = np.clip(y0 + (np.arange(side) + 0.5) * (y1 - y0) / side, 0, img.shape[0] - 1).astype(int)
    return img[ys][:, xs]


def face_box(frame):
    """FaceFusion's per-frame face analysis, with facesync's networks: detect, landmark, and
    the landmarks' bounding box (frame pixels)."""
    small = nearest(frame, 0, 0, w, h, 128) / 127.5 - 1.0
    out = detector.run(None, {"input:0": small[None].astype(np.float32)})
    scores = np.concatenate([out[0][0, :, 0], out[1][0, :, 0]])
    regressors = np.concatenate([out[2][0], out[3][0]])
    best = int(np.argmax(scores))
    cx, cy = regressors[best, :2] / 128 + anchors[best]
    side = max(regressors[best, 2], regressors[best, 3]) / 128 * 1.5
    x0, y0 = (cx - side / 2) * w, (cy - side / 2) * h
    x1, y1 = (cx + side / 2) * w, (cy + side / 2) * h
    crop = (nearest(frame, x0, y0, x1, y1, 192) / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
    points = landmarker.run(None, {"input_1": crop})[0].reshape(-1, 3)[:, :2]
    points = points / 192 * [x1 - x0, y1 - y0] + [x0, y0]
    (px0, py0), (px1, py1) = points.min(axis=0), points.max(axis=0)
    return [max(px0, 0.0), max(py0, 0.0), min(px1, float(w)), min(py1, float(h))]


def one_round():
    start = time.perf_counter()
    frames = np.fromfile(frames_path, dtype=np.uint8).reshape(n, h, w, 3)
    with wave.open(wav_path) as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float64)
        if f.getnchannels() > 1:
            pcm = pcm.reshape(-1, f.getnchannels()).mean(axis=1)
    spec = mel_spectrogram(pcm / 32768.0)
    out = np.empty_like(frames)
    model_secs = 0.0
    for k in range(n):
        frame = frames[k].astype(np.float32)
        x0, y0, x1, y1 = face_box(frame) if detect else box
        bw, bh = int(round(x1 - x0)), int(round(y1 - y0))
        ix0, iy0 = int(round(x0)), int(round(y0))
        xs, ys = bilinear_maps(x0, y0, x1, y1, 96, 96)
        crop = sample(frame, xs, ys)[:, :, ::-1] / 255.0  # BGR, 0..1
        masked = crop.copy()
        masked[48:] = 0
        target = np.concatenate([masked, crop], axis=2).transpose(2, 0, 1)[None].astype(np.float32)
        idx = min(int(k * 80 / fps), spec.shape[1] - 16)
        window = spec[:, idx:idx + 16]
        if window.shape[1] < 16:
            window = np.pad(window, ((0, 0), (0, 16 - window.shape[1])), constant_values=-4)
        source = window[None, None].astype(np.float32)
        called = time.perf_counter()
        result = session.run(None, {"source": source, "target": target})[0][0]
        model_secs += time.perf_counter() - called
        result = np.clip(result.transpose(1, 2, 0)[:, :, ::-1] * 255, 0, 255)
        back_x, back_y = bilinear_maps(0, 0, 96, 96, bw, bh)
        back = sample(result, back_x, back_y)
        mask = np.zeros((bh, bw), np.float32)
        mask[bh // 2:int(bh * 0.98), int(bw * 0.12):int(bw * 0.88)] = 1
        mask = gaussian_blur(mask, 5)[:, :, None]
        region = frame[iy0:iy0 + bh, ix0:ix0 + bw]
        frame[iy0:iy0 + bh, ix0:ix0 + bw] = mask * back[: region.shape[0], : region.shape[1]] + (1 - mask) * region
        out[k] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return time.perf_counter() - start, model_secs


one_round()  # warm-up, as facesync's first run
for _ in range(rounds):
    secs, model_secs = one_round()
    print(f"loop: frames={n} secs={secs:.4f} model_secs={model_secs:.4f}", flush=True)
