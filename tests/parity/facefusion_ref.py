"""FaceFusion's lip-sync steps (Wav2Lip-96, EDTalk-256), written fresh from its published source.

Reference: facefusion/facefusion at commit 33cc6b40a4a538023e12893a0439ce5062e56e36 (3.8.1,
2026-08-05). Every step below cites `file:line` at that commit. Nothing here reads facesync's
code; the functions take plain numpy arrays and return what FaceFusion would compute.

Images are BGR uint8 (FaceFusion reads frames with OpenCV). Landmarks are float32, as
FaceFusion's 2DFAN4 landmarker returns them (facefusion/face_landmarker.py:161-165: the model's
float32 output moved back with cv2.transform, which keeps float32).

Left out of the comparison, on purpose (the same samples go into both sides):
- FaceFusion decodes the audio with ffmpeg to 48 kHz stereo int16 (audio.py:40-48), isolates the
  voice with a separation network (`batch_extract_voice`, audio.py:49) and resamples to 16 kHz
  with scipy.signal.resample (audio.py:102-106). The harness starts from 16 kHz mono samples, the
  ones facesync decodes from the same WAV, so the comparison covers everything from the channel
  mean on (audio.py:94-99) and does not count resampler or separation-network differences.
  facesync runs no vocal separation: music or noise under the speech changes its result.
- Face detection and landmarks: the 68 points come from facesync's landmarks file, so landmark
  differences are not counted here; the 5 points are derived from them with FaceFusion's own
  convert_to_face_landmark_5 (face_helper.py:208-217) as FaceFusion does when its 68-point
  landmarker is confident (face_creator.py:32-33).
- The occlusion mask (face_masker.py:203, only with `--face-mask-types occlusion`; the default is
  `box`, program.py:149) and face selection / tracking.

Cross-checked against FaceFusion's own functions (extracted from the mirror into a scratch
directory, imports they do not need stubbed, both called on the same inputs; run during
development, not part of the tests): see CROSS_CHECK below for what and the max differences.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import cv2

FACEFUSION_COMMIT = "33cc6b40a4a538023e12893a0439ce5062e56e36"

CROSS_CHECK = """
Cross-checked during development (2026-12, numpy 2.4.6, scipy 1.17.1, opencv-python-headless
5.1.0.95): FaceFusion's own functions were cut out of the mirror with `ast` (audio.py
create_mel_filter_bank / prepare_audio / create_spectrogram / extract_audio_frames /
create_empty_audio_frame; face_helper.py estimate_matrix_by_face_landmark_5 /
warp_face_by_face_landmark_5 / warp_face_by_bounding_box / paste_back / calculate_paste_area /
create_bounding_box / convert_to_face_landmark_5; face_masker.py create_box_mask /
create_area_mask; lip_syncer/core.py sync_lip / prepare_audio_frame / prepare_crop_frame /
normalize_crop_frame; choices.py face_mask_area_set), with state_manager, get_model_options and
forward_wav2lip / forward_edtalk stubbed (the forwards capture their inputs and return a given
random output in -0.1..1.1). Inputs: espeak-ng speech (16 kHz), fps 24, 25, 29.97, 30000/1001,
30, 60, frames 0, 1, middle, last, last+1, last+4, weights 0, 0.5, 0.8; twelve poses of
astronaut.png (roll +-12 deg, scale 0.8-1.3, translation) in a 900x700 frame with a 68-point
face moved along (+0.7 px noise). Max differences, this module vs FaceFusion's code:
  filter bank 0, spectrogram 0, audio frames 0 (count and values), prepare_audio_frame 0,
  5 points 0, Wav2Lip source 0 / target 0 / pasted frame 0 LSB, EDTalk source 0 / target 0 /
  weight 0 / pasted frame 0 LSB; pixels changed where the returned warped mask is 0: 0.
Also checked: cv2.warpAffine with INTER_AREA gives exactly the INTER_LINEAR result; the box
mask's GaussianBlur((0,0), 19) on float32 equals a 153-tap kernel.
"""


# --- audio (facefusion/audio.py) -------------------------------------------------------------

MEL_FILTER_TOTAL = 80  # audio.py:67, audio.py:123
AUDIO_STEP_SIZE = 16  # audio.py:68


def _hertz_to_mel(hertz):
    return 2595 * np.log10(1 + hertz / 700)  # audio.py:111-112 (HTK mel)


def _mel_to_hertz(mel):
    return 700 * (10 ** (mel / 2595) - 1)  # audio.py:115-116


def create_mel_filter_bank() -> np.ndarray:
    """audio.py:119-134: 82 HTK-mel points over 55-7600 Hz, bins floor(801*hz/16000) as int16,
    filter i = scipy.signal.windows.triang(end - start) over bins [idx_i, idx_{i+1}): one
    segment wide, not the usual three-edge triangle. [80, 401] float64."""
    sample_rate = 16000  # audio.py:120
    f_min, f_max = 55.0, 7600.0  # audio.py:121-122
    bins = 800  # audio.py:124
    bank = np.zeros((MEL_FILTER_TOTAL, bins // 2 + 1))  # audio.py:125
    mels = np.linspace(_hertz_to_mel(f_min), _hertz_to_mel(f_max), MEL_FILTER_TOTAL + 2)  # :126
    idx = np.floor((bins + 1) * _mel_to_hertz(mels) / sample_rate).astype(np.int16)  # :127
    for i in range(MEL_FILTER_TOTAL):  # audio.py:129-132
        start, end = idx[i], idx[i + 1]
        bank[i, start:end] = scipy.signal.windows.triang(end - start)
    return bank


def prepare_audio(audio: np.ndarray) -> np.ndarray:
    """audio.py:94-99: channel mean (if 2-D), peak-normalise, pre-emphasis lfilter([1,-0.97])."""
    audio = np.asarray(audio)
    if audio.ndim > 1:
        audio = np.mean(audio, axis=1)  # audio.py:95-96
    audio = audio / np.max(np.abs(audio), axis=0)  # audio.py:97
    return scipy.signal.lfilter([1.0, -0.97], [1.0], audio)  # audio.py:98


def create_spectrogram(audio: np.ndarray) -> np.ndarray:
    """audio.py:137-143: scipy.signal.stft(nperseg 800, nfft 800, noverlap 600) with scipy's
    defaults (periodic Hann, boundary zeros (400 each side), padded, scaling 'spectrum' = divided
    by the window's sum), magnitude, then the filter bank. [80, C] float64."""
    bank = create_mel_filter_bank()  # audio.py:140
    spec = scipy.signal.stft(audio, nperseg=800, nfft=800, noverlap=600)[2]  # audio.py:141
    return np.dot(bank, np.abs(spec))  # audio.py:142


def mel_spectrogram(samples_16k_mono: np.ndarray) -> np.ndarray:
    """S [80, C] from 16 kHz mono samples (any scale: peak normalisation removes it).
    The 48 kHz decode, voice separation and resample of read_voice (audio.py:39-53) are left out:
    see the module docstring."""
    return create_spectrogram(prepare_audio(np.asarray(samples_16k_mono, dtype=np.float64)))


def audio_frames(spectrogram: np.ndarray, fps: float) -> list:
    """audio.py:65-76 extract_audio_frames: indices arange(0, C, 80/fps) truncated to int16,
    kept if >= 16; frame k gets S[:, idx_k-16 : idx_k] (so frame 0 gets columns 0..16)."""
    indices = np.arange(0, spectrogram.shape[1], MEL_FILTER_TOTAL / fps).astype(np.int16)  # :69
    indices = indices[indices >= AUDIO_STEP_SIZE]  # audio.py:70
    frames = []
    for index in indices:  # audio.py:72-74
        start = max(0, index - AUDIO_STEP_SIZE)
        frames.append(spectrogram[:, start:index])
    return frames


def create_empty_audio_frame() -> np.ndarray:
    """audio.py:87-91: zeros [80,16] int16 (-4 after prepare_audio_frame: a closed mouth)."""
    return np.zeros((MEL_FILTER_TOTAL, AUDIO_STEP_SIZE)).astype(np.int16)


def voice_frame(frames: list, k: int) -> np.ndarray:
    """workflows/core.py:53-63 with audio.py:79-84: frame k's window when k is in range and the
    window is not all zeros, else the empty audio frame. Returns (frame, is_empty)."""
    frame = frames[k] if k in range(len(frames)) else None  # audio.py:82-83
    if frame is not None and np.any(frame):  # workflows/core.py:60-61
        return frame, False
    return create_empty_audio_frame(), True  # workflows/core.py:63


def prepare_audio_frame(frame: np.ndarray, model_type: str, weight: float = 0.5) -> np.ndarray:
    """lip_syncer/core.py:245-255: max(1e-5), log10*1.6+3.2, clip +-4, float32; Wav2Lip's mel is
    then multiplied by weight*2 (x1 at FaceFusion's default weight 0.5, core.py:138); EDTalk's
    is not. -> [1,1,80,16] float32."""
    f = np.maximum(np.exp(-5 * np.log(10)), frame)  # core.py:247
    f = np.log10(f) * 1.6 + 3.2  # core.py:248
    f = f.clip(-4, 4).astype(np.float32)  # core.py:249
    if model_type == "wav2lip":  # core.py:251-252
        f = f * weight * 2.0
    return np.expand_dims(f, axis=(0, 1))  # core.py:254


# --- geometry (facefusion/face_helper.py) ----------------------------------------------------

FFHQ_512 = np.array(  # face_helper.py:44-51
    [
        [0.37691676, 0.46864664],
        [0.62285697, 0.46912813],
        [0.50123859, 0.61331904],
        [0.39308822, 0.72541100],
        [0.61150205, 0.72490465],
    ]
)

LOWER_FACE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31]  # choices.py:29

# FaceFusion's defaults (program.py:152-153 with an empty facefusion.ini, facefusion.ini:44-45;
# the padding goes through normalizer.py:18-26): face_mask_blur 0.3, face_mask_padding 0 0 0 0.
FACE_MASK_BLUR = 0.3
FACE_MASK_PADDING = (0, 0, 0, 0)
LIP_SYNCER_WEIGHT = 0.5  # lip_syncer/core.py:138


def landmark5_from_68(lm68: np.ndarray) -> np.ndarray:
    """face_helper.py:208-217: eye centres (means of 36-41, 42-47), nose tip 30, mouth corners
    48 and 54."""
    lm68 = np.asarray(lm68)
    return np.array(
        [
            np.mean(lm68[36:42], axis=0),
            np.mean(lm68[42:48], axis=0),
            lm68[30],
            lm68[48],
            lm68[54],
        ]
    )


def estimate_matrix_ffhq_512(lm5: np.ndarray) -> np.ndarray:
    """face_helper.py:71-74: template * crop size, cv2.estimateAffinePartial2D (a 4-dof
    similarity) with RANSAC, reprojection threshold 100 (so every point is an inlier and the
    result is OpenCV's Levenberg-Marquardt refinement over all five)."""
    template = FFHQ_512 * (512, 512)  # face_helper.py:72
    return cv2.estimateAffinePartial2D(lm5, template, method=cv2.RANSAC, ransacReprojThreshold=100)[0]


def warp_ffhq_512(frame_bgr: np.ndarray, lm5: np.ndarray):
    """face_helper.py:77-80: warpAffine to 512x512, BORDER_REPLICATE, flags INTER_AREA. OpenCV's
    warpAffine has no area mode and silently runs INTER_AREA as INTER_LINEAR (bilinear)."""
    m = estimate_matrix_ffhq_512(lm5)
    crop = cv2.warpAffine(frame_bgr, m, (512, 512), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_AREA)
    return crop, m


def create_bounding_box(lm68: np.ndarray) -> np.ndarray:
    """face_helper.py:150-161: min/max of the points, no padding."""
    x1, y1 = np.min(lm68, axis=0)
    x2, y2 = np.max(lm68, axis=0)
    x1, x2 = sorted([x1, x2])
    y1, y2 = sorted([y1, y2])
    return np.array([x1, y1, x2, y2])


def warp_face_by_bounding_box(frame: np.ndarray, box: np.ndarray, size=(96, 96)):
    """face_helper.py:83-92: box corners (x1,y1),(x2,y1),(x1,y2) -> (0,0),(W,0),(0,H) (pixel
    edges, a non-uniform stretch), float32 points; INTER_AREA when the box is larger than the
    output (again run as bilinear by warpAffine) else INTER_LINEAR; constant (black) border."""
    src = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]]]).astype(np.float32)  # :84
    dst = np.array([[0, 0], [size[0], 0], [0, size[1]]]).astype(np.float32)  # :85
    m = cv2.getAffineTransform(src, dst)  # face_helper.py:86
    if box[2] - box[0] > size[0] or box[3] - box[1] > size[1]:  # face_helper.py:87-90
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_LINEAR
    return cv2.warpAffine(frame, m, size, flags=interp), m  # face_helper.py:91


def calculate_paste_area(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray):
    """face_helper.py:116-130."""
    th, tw = frame.shape[:2]
    ch, cw = crop.shape[:2]
    inverse = cv2.invertAffineTransform(affine)  # :119
    corners = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]])  # :120
    pts = cv2.transform(corners.reshape(-1, 1, 2), inverse).reshape(-1, 2)  # :121, :164-168
    pmin = np.floor(pts.min(axis=0)).astype(int)  # :122
    pmax = np.ceil(pts.max(axis=0)).astype(int)  # :123
    x1, y1 = np.clip(pmin, 0, [tw, th])  # :124
    x2, y2 = np.clip(pmax, 0, [tw, th])  # :125
    paste_matrix = inverse.copy()  # :127-129
    paste_matrix[0, 2] -= x1
    paste_matrix[1, 2] -= y1
    return np.array([x1, y1, x2, y2]), paste_matrix


def paste_back(frame: np.ndarray, crop: np.ndarray, mask: np.ndarray, affine: np.ndarray):
    """face_helper.py:101-113: mask warped bilinear with a zero border and clipped to 0..1, the
    crop warped bilinear with BORDER_REPLICATE, blended in float32 (uint8 * float32 mask) and
    cast back to uint8 (truncation). Returns (pasted frame, the mask warped into the frame)."""
    (x1, y1, x2, y2), pm = calculate_paste_area(frame, crop, affine)
    w, h = x2 - x1, y2 - y1
    inv_mask = cv2.warpAffine(mask, pm, (w, h)).clip(0, 1)  # face_helper.py:106
    inv_mask = np.expand_dims(inv_mask, axis=-1)  # :107
    inv_frame = cv2.warpAffine(crop, pm, (w, h), borderMode=cv2.BORDER_REPLICATE)  # :108
    out = frame.copy()  # :109
    region = out[y1:y2, x1:x2]  # :110
    region = region * (1 - inv_mask) + inv_frame * inv_mask  # :111
    out[y1:y2, x1:x2] = region.astype(out.dtype)  # :112
    full_mask = np.zeros(frame.shape[:2], np.float32)
    full_mask[y1:y2, x1:x2] = inv_mask[:, :, 0]
    return out, full_mask


# --- masks (facefusion/face_masker.py) -------------------------------------------------------

def create_box_mask(crop: np.ndarray, blur: float = FACE_MASK_BLUR, padding=FACE_MASK_PADDING) -> np.ndarray:
    """face_masker.py:188-200. At 512 and blur 0.3: blur_amount int(76.8) = 76, a zero border of
    38 px, then a Gaussian with sigma 19 (OpenCV's float32 auto kernel: 153 taps)."""
    size = crop.shape[:2][::-1]  # (w, h), face_masker.py:189
    blur_amount = int(size[0] * 0.5 * blur)  # :190
    blur_area = max(blur_amount // 2, 1)  # :191
    m = np.ones(size).astype(np.float32)  # :192 (shape (w, h): square crops only)
    m[: max(blur_area, int(size[1] * padding[0] / 100)), :] = 0  # :193
    m[-max(blur_area, int(size[1] * padding[2] / 100)):, :] = 0  # :194
    m[:, : max(blur_area, int(size[0] * padding[3] / 100))] = 0  # :195
    m[:, -max(blur_area, int(size[0] * padding[1] / 100)):] = 0  # :196
    if blur_amount > 0:  # :198-199
        m = cv2.GaussianBlur(m, (0, 0), blur_amount * 0.25)
    return m


def create_area_mask(crop: np.ndarray, lm68_crop: np.ndarray, areas=("lower-face",)) -> np.ndarray:
    """face_masker.py:226-238 with the 'lower-face' area (choices.py:29): convex hull of the
    points TRUNCATED to int32 (not rounded), filled with 1.0, Gaussian sigma 5, then
    (clip(m, .5, 1) - .5) * 2."""
    assert list(areas) == ["lower-face"]
    size = crop.shape[:2][::-1]  # :227
    hull = cv2.convexHull(lm68_crop[LOWER_FACE].astype(np.int32))  # :234
    m = np.zeros(size).astype(np.float32)  # :235
    cv2.fillConvexPoly(m, hull, 1.0)  # :236
    return (cv2.GaussianBlur(m.clip(0, 1), (0, 0), 5).clip(0.5, 1) - 0.5) * 2  # :237


# --- the lip syncer (facefusion/processors/modules/lip_syncer/core.py) ------------------------

def wav2lip_inputs(frame_bgr: np.ndarray, lm68: np.ndarray, transform_dtype=np.float32):
    """sync_lip for Wav2Lip (core.py:183-211): ffhq_512 crop from the 5 points derived from the
    68 (core.py:187), the 68 moved into the crop with cv2.transform (:203), the lower-face area
    mask (:204), the points' bounding box stretched to 96x96 (:206-207), prepare_crop_frame
    (:267-272: BGR, rows 48.. of a copy zeroed as channels 0-2, the unmasked crop as 3-5, /255).
    Returns (target [1,6,96,96] float32, paste info dict).

    cv2.transform keeps the points' type: FaceFusion's float32 landmarks are moved in float32,
    where x*a + y*b + c cancels terms of ~2000 (errors ~1e-4 px); create_area_mask then
    truncates them to int32. transform_dtype=np.float64 gives the same step in double precision,
    for telling when the mask's hull sits on such a knife edge (see hull_is_knife_edge)."""
    lm68 = np.asarray(lm68, np.float32)
    lm5 = landmark5_from_68(lm68)
    crop, affine = warp_ffhq_512(frame_bgr, lm5)  # core.py:187
    pts = lm68.astype(transform_dtype)
    lm68_crop = cv2.transform(pts.reshape(1, -1, 2), affine).reshape(-1, 2)  # core.py:203
    area_mask = create_area_mask(crop, lm68_crop, ["lower-face"])  # core.py:204
    box = create_bounding_box(lm68_crop)  # core.py:206
    area, area_matrix = warp_face_by_bounding_box(crop, box, (96, 96))  # core.py:207
    x = np.expand_dims(area, axis=0)  # core.py:268
    masked = x.copy()  # core.py:269
    masked[:, 96 // 2:] = 0  # core.py:270 (rows 48..95)
    x = np.concatenate((masked, x), axis=3)  # core.py:271
    target = x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # core.py:272
    info = dict(affine=affine, area_matrix=area_matrix, lm68_crop=lm68_crop, box=box,
                crop_mask=np.minimum.reduce([area_mask]), lm5=lm5)  # core.py:213
    return target, info


def hull_is_knife_edge(lm68: np.ndarray, affine: np.ndarray) -> bool:
    """True when the lower-face hull's int32-truncated points (face_masker.py:234) differ between
    moving the 68 points into the crop in float32 (FaceFusion) and in float64: FaceFusion's own
    mask is then decided by rounding noise of ~1e-4 px, and a 1-px hull change shifts the mask's
    edge (a few levels where the model output and the frame differ strongly)."""
    lm68 = np.asarray(lm68, np.float32)
    p32 = cv2.transform(lm68.reshape(1, -1, 2), affine).reshape(-1, 2)[LOWER_FACE].astype(np.int32)
    p64 = cv2.transform(lm68.astype(np.float64).reshape(1, -1, 2), affine).reshape(-1, 2)[LOWER_FACE].astype(np.int32)
    return not np.array_equal(p32, p64)


def edtalk_inputs(frame_bgr: np.ndarray, lm68: np.ndarray, weight: float = LIP_SYNCER_WEIGHT):
    """sync_lip for EDTalk (core.py:187, 194-198): ffhq_512 crop, box mask from the 512 crop
    (:196), prepare_crop_frame (:262-265: INTER_AREA resize to 256, BGR->RGB, /255 in float64,
    NCHW, float32), weight [1] float32 (:195). Returns (target [1,3,256,256], weight [1], info)."""
    lm68 = np.asarray(lm68, np.float32)
    lm5 = landmark5_from_68(lm68)
    crop, affine = warp_ffhq_512(frame_bgr, lm5)  # core.py:187
    w = np.array([weight]).astype(np.float32)  # core.py:195
    box_mask = create_box_mask(crop, FACE_MASK_BLUR, FACE_MASK_PADDING)  # core.py:196
    x = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)  # core.py:263
    x = x[:, :, ::-1] / 255.0  # core.py:264
    target = np.expand_dims(x.transpose(2, 0, 1), axis=0).astype(np.float32)  # core.py:265
    info = dict(affine=affine, crop_mask=np.minimum.reduce([box_mask]), lm5=lm5)  # core.py:213
    return target, w, info


def normalize_crop_frame(output: np.ndarray, model_type: str) -> np.ndarray:
    """core.py:277-287: NCHW -> HWC, clip 0..1, *255, astype uint8 (truncation, not rounding);
    EDTalk: RGB->BGR and a bicubic resize to 512."""
    f = np.asarray(output)[0].transpose(1, 2, 0)  # :279
    f = f.clip(0, 1) * 255  # :280
    f = f.astype(np.uint8)  # :281
    if model_type == "edtalk":  # :283-285
        f = f[:, :, ::-1]
        f = cv2.resize(f, (512, 512), interpolation=cv2.INTER_CUBIC)
    return f


def paste_wav2lip(frame_bgr: np.ndarray, model_output: np.ndarray, info: dict):
    """core.py:210-214: normalise the [1,3,96,96] output, warp it back into the 512 crop
    (inverse of the box matrix, bilinear, BORDER_REPLICATE), paste back with the area mask.
    Returns (frame, mask warped into the frame)."""
    area = normalize_crop_frame(model_output, "wav2lip")  # core.py:210
    crop = cv2.warpAffine(area, cv2.invertAffineTransform(info["area_matrix"]), (512, 512),
                          borderMode=cv2.BORDER_REPLICATE)  # core.py:211
    return paste_back(frame_bgr, crop, info["crop_mask"], info["affine"])  # core.py:214


def paste_edtalk(frame_bgr: np.ndarray, model_output: np.ndarray, info: dict):
    """core.py:200, 213-214: normalise the [1,3,256,256] output (RGB->BGR, cubic to 512), paste
    back with the box mask. Returns (frame, mask warped into the frame)."""
    crop = normalize_crop_frame(model_output, "edtalk")  # core.py:200
    return paste_back(frame_bgr, crop, info["crop_mask"], info["affine"])  # core.py:214
