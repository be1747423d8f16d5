"""LatentSync's face crop, VAE input, Whisper log-mel and restore, as the ONNX export runs them.

Followed: axinc-ai/ailia-models, folder diffusion/latentsync (the export people run with ONNX
Runtime; it aligns with 68-point `face_alignment` landmarks):
  affine_transform.py    at commit cbe2b714002a8ccd6bfbeebe73320fe7a8c2cb2b
  image_processor.py     at commit 068b6fc129dab8b7e617ac4f9c2b9a213432f625
  latentsync.py          at commit cbe2b714002a8ccd6bfbeebe73320fe7a8c2cb2b
  df/pipelines/lipsync_pipeline.py, whisper/transcribe.py at 0a3483c2d6f4953867b975370b2fd691717352d8
and where ailia calls librosa, librosa 0.10.2.post1 (librosa/librosa, tag 0.10.2.post1):
  librosa/filters.py (mel), librosa/core/convert.py (hz_to_mel, mel_to_hz, mel_frequencies,
  fft_frequencies), librosa/core/spectrum.py (stft).
bytedance/LatentSync (commit a229c3948406bc2cf6eaf4873e662e70c6a04746) is the original; where it
differs from the export it is said below (it aligns with InsightFace's 106 points, rounds the 3
points, warps bilinear in float16 with kornia, and restores with a bilinear warp).

Images here are RGB uint8: the export converts every decoded frame BGR->RGB
(latentsync.py:110) and works in RGB from then on (face_alignment, crop, VAE input, restore).

Cross-checked during development against ailia's own files (affine_transform.py,
image_processor.py with face_alignment stubbed and the landmarks given, whisper/transcribe.py,
the pipeline's and restore_video's steps inlined) with librosa 0.10.2.post1 and Pillow
installed: ten frames of a moving, rotating, scaling face in sequence (smoothing state carried),
max differences: affine matrix 0, 256 crop 0 LSB, VAE input (pixel and masked, float16) 0, mask
0, restored frame 0 LSB, changed pixels outside the soft mask 0; librosa.filters.mel 0,
log-mel 0 (float32 chain as librosa's), float16 segments 0 (one and two segments);
librosa.load vs int16/32768 0. (Computed in float64 instead, 26 of 240,000 float16 values
differed by one step, 0.00098.)

Nothing here reads facesync's code. Only numpy, scipy and OpenCV are used; librosa's mel filter
bank and STFT are rewritten from its published formula with numpy (cited line by line).
"""

from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np
import scipy.signal

LATENTSYNC_EXPORT = "axinc-ai/ailia-models diffusion/latentsync"

# --- the crop (affine_transform.py, image_processor.py) --------------------------------------

RATIO = 2.8  # affine_transform.py:36 (256 px; bytedance: resolution / 256 * 2.8, its :14)
TEMPLATE = np.array([[19 - 2, 30 - 10], [56 + 2, 30 - 10], [37.5, 45 - 5]]) * RATIO  # :38-41
FACE_SIZE = (int(75 * RATIO), int(100 * RATIO))  # (w, h) = (210, 280), affine_transform.py:42-45
RESOLUTION = 256  # latentsync.py:165, :197


def points3_from_68(lm68: np.ndarray) -> np.ndarray:
    """image_processor.py:65-68: means of 68-point landmarks 17-21 (one brow), 22-26 (the
    other brow), 27-35 (nose bridge and base), not rounded. (bytedance, image_processor.py:61-65:
    means of InsightFace-106 points, rounded with np.round.)"""
    p = np.asarray(lm68, dtype=np.float64)
    out = np.zeros((3, 2))  # image_processor.py:65
    out[0] = p[17:22].mean(0)  # :66
    out[1] = p[22:27].mean(0)  # :67
    out[2] = p[27:36].mean(0)  # :68
    return out


def transformation_from_points(points1, points0, smooth=True, p_bias=None):
    """affine_transform.py:5-30, unchanged: centre both sets, divide each by its global std
    (np.std, population), SVD of p1^T p2, R = (U Vt)^T (no reflection check; bytedance adds one,
    its :126-129), M = [s2/s1 R | c2 - s2/s1 R c1]. With smooth=True (as the export calls it,
    image_processor.py:70-72) the difference of the NORMALISED third points (template minus
    face, in units of each set's std) is added to the translation, as pixels, and carried to
    the next frame (0.2 previous + 0.8 current). Returns (M image->crop, p_bias)."""
    points2 = np.array(points0).astype(np.float64)  # :6-7
    points1 = np.array(points1).astype(np.float64)  # :8
    c1 = np.mean(points1, axis=0)  # :9
    c2 = np.mean(points2, axis=0)  # :10
    points1 -= c1  # :11
    points2 -= c2  # :12
    s1 = np.std(points1)  # :13
    s2 = np.std(points2)  # :14
    points1 /= s1  # :15
    points2 /= s2  # :16
    U, S, Vt = np.linalg.svd(np.matmul(points1.T, points2))  # :17
    R = (np.matmul(U, Vt)).T  # :18
    sR = (s2 / s1) * R  # :19
    T = c2.reshape(2, 1) - (s2 / s1) * np.matmul(R, c1.reshape(2, 1))  # :20
    M = np.concatenate((sR, T), axis=1)  # :21
    if smooth:  # :22-29
        bias = points2[2] - points1[2]
        if p_bias is None:
            p_bias = bias
        else:
            bias = p_bias * 0.2 + bias * 0.8
        p_bias = bias
        M[:, 2] = M[:, 2] + bias
    return M, p_bias


class LaplacianSmooth:
    """affine_transform.py:108-135 (laplacianSmooth, alpha 0.3): each landmark moves towards its
    previous smoothed position with weight exp(-d^2 / (0.3 * landmark-box width))."""

    def __init__(self, alpha=0.3):
        self.alpha = alpha
        self.pts_last = None

    def smooth(self, pts_cur):
        pts_cur = np.asarray(pts_cur, dtype=np.float64)
        if self.pts_last is None:  # :114-116
            self.pts_last = pts_cur.copy()
            return pts_cur.copy()
        width = max(pts_cur[:, 0]) - min(pts_cur[:, 0])  # :118-123
        out = []
        for i in range(len(pts_cur)):  # :125-132
            x_new, y_new = pts_cur[i]
            x_old, y_old = self.pts_last[i]
            tmp = (x_new - x_old) ** 2 + (y_new - y_old) ** 2
            w = np.exp(-tmp / (width * self.alpha))
            out.append([x_old * w + x_new * (1 - w), y_old * w + y_new * (1 - w)])
        out = np.array(out)
        self.pts_last = out.copy()  # :134
        return out


def warp_crop(frame_rgb: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """affine_transform.py:53-60: warpAffine to 210x280 with Lanczos-4 and a constant 127 border;
    image_processor.py:74-77: Lanczos-4 resize to 256x256, HWC -> CHW. (bytedance: kornia
    bilinear warp in float16, fill 127, cast to uint8 (truncation), its affine_transform.py:30-41.)
    Returns CHW uint8 RGB [3,256,256]."""
    crop = cv2.warpAffine(frame_rgb, affine, FACE_SIZE, flags=cv2.INTER_LANCZOS4,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=[127, 127, 127])
    face = cv2.resize(crop, (RESOLUTION, RESOLUTION), interpolation=cv2.INTER_LANCZOS4)
    return face.transpose(2, 0, 1)


class Aligner:
    """ImageProcessor.affine_transform (image_processor.py:58-79) for a sequence of frames, with
    the export's state: the landmark smoother (:64) and the translation bias (:70-72) carry from
    frame to frame. smooth=False gives the per-frame crop with neither (for a diagnosis: what
    the crop would be without the temporal state)."""

    def __init__(self, smooth=True):
        self.smooth = smooth
        self.smoother = LaplacianSmooth()
        self.p_bias = None

    def align(self, frame_rgb: np.ndarray, lm68: np.ndarray):
        pts = self.smoother.smooth(lm68) if self.smooth else np.asarray(lm68, np.float64)  # :64
        p3 = points3_from_68(pts)  # :65-68
        affine, p_bias = transformation_from_points(p3, TEMPLATE, self.smooth, self.p_bias)  # :70-72
        if self.smooth:
            self.p_bias = p_bias
        return warp_crop(frame_rgb, affine), affine


# --- the VAE encoder's input (image_processor.py, lipsync_pipeline.py) ------------------------

def mask_png_path() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "crates", "onnx-models", "assets", "latentsync", "mask.png")


# git blob id of bytedance/LatentSync latentsync/utils/mask.png (the export ships the same image)
MASK_BLOB = "eb8fdd1f4e1c59a55f9b3604a71946b9833f3ca2"


def load_fixed_mask(path: str | None = None, resolution: int = RESOLUTION) -> np.ndarray:
    """image_processor.py:18-29: imread, BGR->RGB, Lanczos-4 resize to the resolution (a plain
    copy at 256: OpenCV returns the source when the size does not change), /255, CHW. [3,R,R]
    float64. The file is checked against the upstream blob id."""
    path = path or mask_png_path()
    data = open(path, "rb").read()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if blob != MASK_BLOB:
        raise ValueError(f"{path}: not LatentSync's mask.png (git blob {blob}, expected {MASK_BLOB})")
    m = cv2.imread(path)
    m = cv2.cvtColor(m, cv2.COLOR_BGR2RGB)
    m = cv2.resize(m, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4) / 255.0
    return m.transpose(2, 0, 1)


def vae_inputs(face_chw: np.ndarray, mask: np.ndarray):
    """image_processor.py:32-43 and lipsync_pipeline.py:213-227 for one face: (the Pillow bilinear
    resize at :34-36 is a copy at 256, Pillow's resize returns a copy when the size is unchanged)
    pixel = (x/255 - 0.5)/0.5 in float64, masked = pixel * mask, both cast to float16 (:226-227).
    The VAE encoder gets masked first (lipsync_pipeline.py:103, prepare_mask_latents) then the
    unmasked reference (:134, prepare_image_latents), [16,3,256,256] float16 each, RGB.
    Returns (pixel f16 [3,R,R], masked f16 [3,R,R], mask[0:1] float64)."""
    pixel = (face_chw / 255.0 - 0.5) / 0.5  # image_processor.py:41
    masked = pixel * mask  # image_processor.py:42
    return pixel.astype(np.float16), masked.astype(np.float16), mask[0:1]


# --- Whisper log-mel (whisper/transcribe.py with librosa 0.10.2's stft and mel) -------------

SAMPLE_RATE = 16000  # transcribe.py:6
N_FFT = 400  # transcribe.py:7
N_MELS = 80  # transcribe.py:8
HOP = 160  # transcribe.py:9
N_FRAMES = 3000  # transcribe.py:13


def _hz_to_mel_slaney(f):
    """librosa/core/convert.py:1209-1235 (htk=False): linear below 1 kHz (f / (200/3)), log above
    (15 + ln(f/1000) / (ln 6.4 / 27))."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3  # :1217
    mels = f / f_sp  # :1219
    min_log_hz = 1000.0  # :1223
    min_log_mel = min_log_hz / f_sp  # :1224
    logstep = np.log(6.4) / 27.0  # :1225
    if mels.ndim:
        t = f >= min_log_hz
        mels[t] = min_log_mel + np.log(f[t] / min_log_hz) / logstep  # :1229-1230
    elif f >= min_log_hz:
        mels = min_log_mel + np.log(f / min_log_hz) / logstep
    return mels


def _mel_to_hz_slaney(m):
    """librosa/core/convert.py:1284-1307 (htk=False)."""
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3  # :1291
    freqs = f_sp * m  # :1292
    min_log_hz = 1000.0  # :1295
    min_log_mel = min_log_hz / f_sp  # :1296
    logstep = np.log(6.4) / 27.0  # :1297
    t = m >= min_log_mel  # :1301
    freqs[t] = min_log_hz * np.exp(logstep * (m[t] - min_log_mel))  # :1302
    return freqs


def mel_filters_slaney(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) with its defaults fmin 0, fmax sr/2,
    htk False, norm 'slaney', dtype float32 (librosa/filters.py:128-137), built as its
    filters.py:217-245: fft_frequencies = rfftfreq(n_fft, 1/sr) (convert.py:1608),
    n_mels+2 points evenly spaced in Slaney mel (convert.py:1724-1730), triangles
    max(0, min(lower, upper)) (filters.py:230-239), each scaled by 2/(f[i+2]-f[i]) (:244-245).
    [80, 201] float32."""
    fmax = float(sr) / 2  # filters.py:217-218
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)  # :222
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)  # :225, convert.py:1608
    mels = np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(fmax), n_mels + 2)  # convert.py:1724-1727
    mel_f = _mel_to_hz_slaney(mels)  # convert.py:1729, filters.py:228
    fdiff = np.diff(mel_f)  # filters.py:230
    ramps = np.subtract.outer(mel_f, fftfreqs)  # :231
    for i in range(n_mels):  # :233-239
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])  # :244
    weights *= enorm[:, np.newaxis]  # :245
    return weights


def stft_power(audio: np.ndarray) -> np.ndarray:
    """librosa.stft(y, n_fft=400, hop_length=160, window='hann', pad_mode='reflect') as
    transcribe.py:34-40 calls it (center=True by default): periodic Hann
    (get_window(..., fftbins=True), spectrum.py:241), the signal padded by n_fft//2 = 200 on each
    side with reflection (spectrum.py:249-284), frames every 160 samples, rfft of window * frame
    in float64 (the window is float64) stored as complex64 for float32 audio (spectrum.py:340,
    :355, :371). Then transcribe.py:41: the last frame dropped, |X|^2 in float32.
    [201, len//160] float32."""
    y = np.asarray(audio, dtype=np.float32)
    window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
    y = np.pad(y, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(y, shape=(n, N_FFT), strides=(y.strides[0] * HOP, y.strides[0]))
    spec = np.fft.rfft(frames * window, axis=1).T.astype(np.complex64)  # [201, n]
    return np.abs(spec[:, :-1]) ** 2  # transcribe.py:41


def whisper_log_mel(samples_16k_mono_float: np.ndarray) -> np.ndarray:
    """transcribe.py:31-50: filters @ power (float32 @ float32), log10(max(x, 1e-10)), floored
    at (max over the whole clip) - 8, (x + 4) / 4, all in float32 as there. Input: samples in
    [-1, 1) as librosa.load gives them (float32 int16 / 32768, latentsync.py:120; the WAV is
    already 16 kHz mono, no resampling). [80, len//160] float32."""
    mel = mel_filters_slaney() @ stft_power(samples_16k_mono_float)  # :43-44
    log_spec = np.log10(np.clip(mel, 1e-10, None))  # :46
    log_spec = np.maximum(log_spec, np.max(log_spec) - 8.0)  # :47
    return (log_spec + 4.0) / 4.0  # :48


def whisper_segments(log_mel: np.ndarray) -> list:
    """transcribe.py:76-84: 3000-column segments from column 0, the last zero-padded (with 0.0,
    not with the floor value) to 3000 (pad_or_trim, :15-27), cast to float16, [1,80,3000]."""
    out = []
    seek = 0
    while seek < log_mel.shape[-1]:  # :80
        seg = log_mel[:, seek : seek + N_FRAMES]  # :83
        if seg.shape[-1] < N_FRAMES:
            seg = np.pad(seg, [(0, 0), (0, N_FRAMES - seg.shape[-1])])  # :22-25
        out.append(seg.astype(np.float16)[None])  # :84, :86-88
        seek += N_FRAMES
    return out


# --- restore (latentsync.py restore_video, affine_transform.py restore_img) -----------------

def restore(frame_rgb: np.ndarray, decoded_chw: np.ndarray, pixel_chw: np.ndarray,
            mask1: np.ndarray, affine: np.ndarray):
    """One frame of the export's ending:
    lipsync_pipeline.py:311  decoded * (1 - mask) + pixel_values * mask (the kept upper face
                             comes from the encoder's input, not from the decoder);
    latentsync.py:212        CHW -> HWC;
    latentsync.py:148-150    clip(x/2 + 0.5, 0, 1), *255, astype uint8 (truncation), INTER_AREA
                             resize to the crop size 210x280;
    affine_transform.py:63-105 restore_img: the frame itself (the Lanczos resize at :66-68 is to
      the same size: a copy), inverse warp of the face with Lanczos-4 and a ZERO border (:76-78;
      bytedance fills 127 and warps bilinear), a ones-mask warped bilinear (:79-80), eroded 2x2
      (:81-86), w_edge = int(sqrt(area)) // 20, eroded again with a 2*w_edge square (:88-93),
      Gaussian blur ksize 2*w_edge+1 with sigma from the kernel size (:94-97), blended in float32
      and cast to uint8 (truncation) (:99-103).
    Returns (frame RGB uint8, soft mask in the frame float32)."""
    synced = decoded_chw * (1 - mask1) + pixel_chw * mask1  # lipsync_pipeline.py:311
    face = synced.transpose(1, 2, 0)  # latentsync.py:212
    face = np.clip(face / 2 + 0.5, 0, 1)  # latentsync.py:148
    face = (face * 255).astype(np.uint8)  # :149
    face = cv2.resize(face, FACE_SIZE, interpolation=cv2.INTER_AREA)  # :150 (box = crop size)

    h, w, _ = frame_rgb.shape  # affine_transform.py:64-68 (upscale_factor 1)
    upsample_img = cv2.resize(frame_rgb, (w, h), interpolation=cv2.INTER_LANCZOS4)
    inverse_affine = cv2.invertAffineTransform(affine)  # :69-75 (extra offset 0)
    inv_restored = cv2.warpAffine(face, inverse_affine, (w, h), flags=cv2.INTER_LANCZOS4)  # :76-78
    mask = np.ones((FACE_SIZE[1], FACE_SIZE[0]), dtype=np.float32)  # :79
    inv_mask = cv2.warpAffine(mask, inverse_affine, (w, h))  # :80
    inv_mask_erosion = cv2.erode(inv_mask, np.ones((2, 2), np.uint8))  # :81-86
    pasted_face = inv_mask_erosion[:, :, None] * inv_restored  # :87
    total_face_area = np.sum(inv_mask_erosion)  # :88
    w_edge = int(total_face_area ** 0.5) // 20  # :89
    erosion_radius = w_edge * 2  # :90
    inv_mask_center = cv2.erode(inv_mask_erosion, np.ones((erosion_radius, erosion_radius), np.uint8))  # :91-93
    blur_size = w_edge * 2  # :94
    inv_soft_mask = cv2.GaussianBlur(inv_mask_center, (blur_size + 1, blur_size + 1), 0)  # :95-97
    soft = inv_soft_mask[:, :, None]  # :98
    out = soft * pasted_face + (1 - soft) * upsample_img  # :99
    out = out.astype(np.uint16) if np.max(out) > 256 else out.astype(np.uint8)  # :100-103
    return out, inv_soft_mask
