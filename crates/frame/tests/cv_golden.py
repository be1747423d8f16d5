"""Golden cases for `facesync_frame::cv`, produced by real OpenCV (cv2).

Regenerate (from the repository root; the venv path is only an example):

    python3 -m venv /tmp/venv-cv
    /tmp/venv-cv/bin/pip install numpy opencv-python-headless==4.11.0.86
    /tmp/venv-cv/bin/python crates/frame/tests/cv_golden.py

and commit `crates/frame/tests/cv_golden/*.bin`. `cargo test` reads only those files. The inputs
come from a fixed seed, so a rerun with the same cv2 rewrites identical files. Run it on an x86-64
CPU with AVX2 and FMA (any recent one): there OpenCV's float Gaussian kernels fuse their
multiply-adds, and `tests/cv.rs` holds the blur to those results bit for bit.

File format (all little-endian):

    file   := b"CVG1"  u8 n  version[n] (ascii: cv2.__version__)  u32 ncases  case*
    case   := u32 narrays  array*
    array  := u8 n  name[n] (ascii)  u8 dtype  u8 ndim  u32 dims[ndim]  data
    dtype  := b"u" (u8) | b"i" (i32) | b"f" (f32) | b"d" (f64)

`data` is the array in row-major order (numpy's C order). Which arrays a case holds is listed at
each `write(...)` below and read by `tests/cv.rs`.

Every output is what cv2 returns with its default settings (IPP on), except where an array is
in `resize_cubic.bin`: for INTER_CUBIC resizes the wheel's IPP path can differ from OpenCV's own
code, so `out{k}` holds OpenCV's own result (`cv2.ipp.setUseIPP(False)`) and `ipp{k}`, present only
where it differs, the default one.
For every other output the script checks that IPP on and off agree, so the default result is
also OpenCV's own arithmetic.

The Lanczos-4 files (LatentSync's crop) keep the LatentSync-sized outputs small:
`latentsync_lanczos4.bin` and `resize_lanczos4_hashed.bin` store the 210x280 warps and 256x256
resizes as per-row 32-bit FNV-1a hashes (`row_hashes`, int32) of cv2's pixels, and their inputs
are not stored but computed by `pattern()`, which `tests/cv.rs` repeats. The new cases draw from
a generator of their own, so adding them left the older files byte-identical.
"""

import os
import struct
import sys

import cv2
import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cv_golden")
DTYPES = {np.uint8: b"u", np.int32: b"i", np.float32: b"f", np.float64: b"d"}


def encode_array(name, a):
    a = np.ascontiguousarray(a)
    code = DTYPES[a.dtype.type]
    out = bytearray()
    out += struct.pack("<B", len(name)) + name.encode("ascii")
    out += code + struct.pack("<B", a.ndim)
    out += b"".join(struct.pack("<I", d) for d in a.shape)
    out += a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    return bytes(out)


def write(filename, cases):
    """cases: list of dicts name -> numpy array."""
    out = bytearray(b"CVG1")
    version = cv2.__version__.encode("ascii")
    out += struct.pack("<B", len(version)) + version
    out += struct.pack("<I", len(cases))
    for case in cases:
        out += struct.pack("<I", len(case))
        for name, a in case.items():
            out += encode_array(name, a)
    path = os.path.join(OUT_DIR, filename)
    with open(path, "wb") as f:
        f.write(out)
    print(f"{filename}: {len(cases)} cases, {len(out)} bytes")
    return len(out)


def both_ipp(fn):
    """Runs fn with IPP on and off; returns (default result, non-IPP result)."""
    cv2.ipp.setUseIPP(True)
    a = fn()
    cv2.ipp.setUseIPP(False)
    b = fn()
    cv2.ipp.setUseIPP(True)
    return a, b


def same_with_and_without_ipp(fn, what):
    a, b = both_ipp(fn)
    if not np.array_equal(a, b):
        sys.exit(f"{what}: IPP changes the result; store both and say so in the test")
    return a


def random_affine(rng, sw, sh, dw, dh):
    """A forward (source -> destination) similarity-ish map: rotation within ±15°, scale
    0.3-3, a sub-pixel translation, sometimes pushed partly outside."""
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
    sx = scale * rng.uniform(0.9, 1.1)  # a little anisotropy and shear too
    shear = rng.uniform(-0.05, 0.05)
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a = a @ np.array([[sx, shear], [0.0, scale]])
    centre_src = np.array([(sw - 1) / 2, (sh - 1) / 2])
    centre_dst = np.array([(dw - 1) / 2, (dh - 1) / 2])
    push = rng.uniform(-0.6, 0.6, 2) * np.array([dw, dh]) if rng.random() < 0.4 else 0.0
    t = centre_dst + push - a @ centre_src + rng.uniform(-1, 1, 2)
    # Snap some translations to 1/64 and 1/2048 steps: ties for the fixed-point rounding.
    snap = rng.integers(0, 3)
    if snap == 1:
        t = np.round(t * 64) / 64
    elif snap == 2:
        t = np.round(t * 2048) / 2048
    return np.array([[a[0, 0], a[0, 1], t[0]], [a[1, 0], a[1, 1], t[1]]], dtype=np.float64)


def warp_cases(rng):
    u8_cases, f32_cases = [], []
    for i in range(28):
        cn = 3 if i % 3 else 1
        sw, sh = int(rng.integers(6, 17)), int(rng.integers(6, 15))
        dw, dh = int(rng.integers(6, 21)), int(rng.integers(6, 17))
        src = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
        if i % 5 == 0:
            src[:] = rng.choice([0, 255], size=(sh, sw, cn)).astype(np.uint8)
        m = random_affine(rng, sw, sh, dw, dh)
        if i == 0:
            m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        inverse = i % 4 == 3
        if inverse:
            m = cv2.invertAffineTransform(m)
        replicate = i % 2 == 0
        border_value = float(rng.integers(0, 256)) if i % 6 == 1 else 0.0
        # FaceFusion warps the face crop with flags=INTER_AREA, which warpAffine maps to linear.
        interp = cv2.INTER_AREA if i % 7 == 2 else cv2.INTER_LINEAR
        flags = interp | (cv2.WARP_INVERSE_MAP if inverse else 0)
        border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
        s = src[:, :, 0] if cn == 1 else src

        def run():
            return cv2.warpAffine(s, m, (dw, dh), flags=flags, borderMode=border,
                                  borderValue=(border_value,) * 4)

        out = same_with_and_without_ipp(run, f"warp u8 case {i}")
        u8_cases.append({
            "src": src,
            "m": m,
            "inverse": np.array([int(inverse)], dtype=np.int32),
            "replicate": np.array([int(replicate)], dtype=np.int32),
            "border_value": np.array([border_value]),
            "interp": np.array([interp], dtype=np.int32),
            "dst": out.reshape(dh, dw, cn),
        })

    for i in range(24):
        sw, sh = int(rng.integers(6, 17)), int(rng.integers(6, 15))
        dw, dh = int(rng.integers(6, 21)), int(rng.integers(6, 17))
        kind = i % 3
        if kind == 0:  # a face-mask-like box: ones with a zero frame
            src = np.zeros((sh, sw), np.float32)
            src[2:-2, 2:-2] = 1.0
        elif kind == 1:  # random values with zero patches
            src = rng.random((sh, sw), dtype=np.float32)
            src[rng.random((sh, sw)) < 0.3] = 0.0
        else:  # a blurred box, like FaceFusion's static box mask
            src = np.zeros((sh, sw), np.float32)
            src[1:-1, 1:-1] = 1.0
            src = cv2.GaussianBlur(src, (0, 0), 1.2)
        m = random_affine(rng, sw, sh, dw, dh)
        inverse = i % 4 == 1
        if inverse:
            m = cv2.invertAffineTransform(m)
        replicate = i % 8 == 5
        flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
        border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT

        def run():
            return cv2.warpAffine(src, m, (dw, dh), flags=flags, borderMode=border)

        out = same_with_and_without_ipp(run, f"warp f32 case {i}")
        f32_cases.append({
            "src": src,
            "m": m,
            "inverse": np.array([int(inverse)], dtype=np.int32),
            "replicate": np.array([int(replicate)], dtype=np.int32),
            "dst": out,
        })

    # invertAffineTransform on random matrices, including FaceFusion-like float64 ones.
    inv_cases = []
    for i in range(40):
        m = random_affine(rng, 512, 512, 256, 256)
        if i % 10 == 9:
            m[0, 1] = m[0, 0] * m[1, 1] / m[1, 0] if m[1, 0] != 0 else 0.0  # near-singular
        inv_cases.append({"m": m, "inv": cv2.invertAffineTransform(m)})
    return u8_cases, f32_cases, inv_cases


def polygon_case(pts, w, h, rng):
    pts = np.ascontiguousarray(pts, dtype=np.int32)
    hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.int32)
    mask = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    # The fill of the same hull in another rotation and direction.
    k = int(rng.integers(0, len(hull)))
    hull2 = np.ascontiguousarray(np.roll(hull, k, 0)[::-1])
    mask2 = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(mask2, hull2, 1.0)
    assert set(np.unique(mask)) <= {0.0, 1.0} and set(np.unique(mask2)) <= {0.0, 1.0}
    return {
        "size": np.array([w, h], dtype=np.int32),
        "pts": pts,
        "hull": hull,
        # Masks bit-packed per row, most significant bit first (numpy.packbits).
        "mask": np.packbits(mask.astype(np.uint8), axis=1),
        "hull2": hull2,
        "mask2": np.packbits(mask2.astype(np.uint8), axis=1),
    }


def polygon_cases(rng):
    cases = []
    w, h = 28, 22
    for i in range(48):
        kind = i % 6
        if kind == 0:  # random convex hulls, partly outside
            n = int(rng.integers(3, 12))
            pts = rng.integers([-8, -8], [w + 8, h + 8], (n, 2))
        elif kind == 1:  # thin slivers
            p = rng.integers([0, 0], [w, h], 2)
            d = rng.integers(-20, 21, 2)
            pts = np.array([p, p + d, p + d + rng.integers(-1, 2, 2)])
        elif kind == 2:  # collinear points and duplicates
            p = rng.integers([0, 0], [w, h], 2)
            d = rng.integers(-4, 5, 2)
            pts = np.array([p + k * d for k in range(int(rng.integers(1, 5)))] + [p])
        elif kind == 3:  # face-landmark-like: many points in a blob
            c = rng.uniform([8, 6], [w - 8, h - 6])
            r = rng.uniform(3, 12)
            ang = rng.uniform(0, 2 * np.pi, int(rng.integers(5, 30)))
            pts = np.round(c + np.stack([np.cos(ang), np.sin(ang)], 1) * r * rng.uniform(0.5, 1, (len(ang), 1)))
        elif kind == 4:  # one or two points
            pts = rng.integers([-2, -2], [w + 2, h + 2], (int(rng.integers(1, 3)), 2))
        else:  # large and far outside
            pts = rng.integers([-60, -60], [w + 60, h + 60], (int(rng.integers(3, 8)), 2))
        cases.append(polygon_case(pts, w, h, rng))
    # Edges whose 16.16 stepping lands exactly on half pixels (the span rounding's ties).
    for pts in ([[0, 0], [9, 18], [0, 18]], [[3, 1], [4, 3], [27, 21], [2, 21]],
                [[14, 0], [27, 13], [14, 21], [0, 7]], [[0, 0], [27, 2], [27, 4], [0, 2]]):
        cases.append(polygon_case(pts, w, h, rng))
    # Face-sized hulls (FaceFusion fills the hull of 68 landmarks): long edges accumulate the
    # fixed-point steps.
    W = H = 160
    for _ in range(4):
        c = rng.uniform([60, 60], [100, 100])
        ang = rng.uniform(0, 2 * np.pi, 68)
        rad = rng.uniform(30, 75) * rng.uniform(0.7, 1.0, (68, 1)) * np.array([1.0, rng.uniform(0.8, 1.3)])
        cases.append(polygon_case(np.round(c + np.stack([np.cos(ang), np.sin(ang)], 1) * rad), W, H, rng))
    return cases


def gaussian_cases(rng):
    cases = []
    specs = [
        (23, 19, 0.25), (29, 9, 0.3), (24, 18, 0.4), (21, 13, 0.55), (23, 19, 0.9),
        (40, 30, 1.5), (40, 31, 2.5),
        (37, 29, 3.0), (40, 32, 5.0), (16, 12, 5.0), (44, 34, 7.3),
    ]
    for i, (w, h, sigma) in enumerate(specs):
        if i % 2:
            src = rng.random((h, w), dtype=np.float32)
        else:  # binary mask with a soft region, as FaceFusion blurs
            src = np.zeros((h, w), np.float32)
            src[h // 5: h - h // 4, w // 6: w - w // 5] = 1.0
            src[rng.random((h, w)) < 0.05] = 0.5
        out = same_with_and_without_ipp(lambda: cv2.GaussianBlur(src, (0, 0), sigma), f"gauss {i}")
        cases.append({"src": src, "sigma": np.array([sigma]), "dst": out})
    kernels = []
    for sigma in list(np.linspace(0.1, 12, 30)) + [0.3, 1.0 / 3, 2.0, 4.25, 5.0, 19.2]:
        n = int(np.round(sigma * 4 * 2 + 1)) | 1
        kernels.append({
            "sigma": np.array([sigma]),
            "ksize": np.array([n], dtype=np.int32),
            "taps": cv2.getGaussianKernel(n, sigma, cv2.CV_32F).reshape(-1),
        })
    return cases, kernels


def resize_cases(rng):
    area, cubic = [], []
    area_specs = [
        ((40, 32, 3), [(20, 16), (10, 8), (16, 10), (17, 13), (9, 7), (39, 31), (31, 32), (56, 44), (45, 36)]),
        ((33, 21, 1), [(11, 7), (16, 10), (5, 4), (33, 10), (70, 45)]),
        ((30, 20, 4), [(15, 10), (10, 5)]),
    ]
    for (sw, sh, cn), sizes in area_specs:
        src = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
        case = {"src": src}
        s = src[:, :, 0] if cn == 1 else src
        for k, (dw, dh) in enumerate(sizes):
            out = same_with_and_without_ipp(
                lambda: cv2.resize(s, (dw, dh), interpolation=cv2.INTER_AREA), f"area {sw}x{sh}->{dw}x{dh}")
            case[f"dsize{k}"] = np.array([dw, dh], dtype=np.int32)
            case[f"out{k}"] = out.reshape(dh, dw, cn)
        area.append(case)

    cubic_specs = [
        ((32, 24, 3), [(64, 48), (53, 37), (33, 25), (70, 40), (16, 12)]),
        ((12, 12, 3), [(64, 64), (24, 24)]),
        ((17, 13, 1), [(34, 26), (50, 29), (17, 13)]),
    ]
    for (sw, sh, cn), sizes in cubic_specs:
        src = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
        case = {"src": src}
        s = src[:, :, 0] if cn == 1 else src
        for k, (dw, dh) in enumerate(sizes):
            with_ipp, without = both_ipp(lambda: cv2.resize(s, (dw, dh), interpolation=cv2.INTER_CUBIC))
            case[f"dsize{k}"] = np.array([dw, dh], dtype=np.int32)
            case[f"out{k}"] = without.reshape(dh, dw, cn)
            if not np.array_equal(with_ipp, without):  # absent: IPP gave the same pixels
                case[f"ipp{k}"] = with_ipp.reshape(dh, dw, cn)
        cubic.append(case)
    return area, cubic


# --- Lanczos-4 (LatentSync's crop: warpAffine to 210x280, then resize to 256x256) -------------

LATENTSYNC_CROP = (210, 280)  # (w, h), LatentSync's affine_transform.py
LATENTSYNC_OUT = 256


def pattern(w, h, cn, seed):
    """A test image both this script and tests/cv.rs compute (so it need not be stored): 16x16
    tiles of hashed noise, a 0/255 checkerboard of 4-pixel squares (sharp edges, where Lanczos
    overshoots and saturates) and a gradient. All arithmetic wraps in uint32."""
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint32), np.arange(w, dtype=np.uint32),
                          np.arange(cn, dtype=np.uint32), indexing="ij")
    hsh = (x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ (c * np.uint32(83492791)) ^ np.uint32(seed)
    hsh = hsh * np.uint32(2654435761)
    hsh ^= hsh >> np.uint32(15)
    noise = hsh >> np.uint32(24)
    checker = (((x >> np.uint32(2)) + (y >> np.uint32(2))) & np.uint32(1)) * np.uint32(255)
    grad = (x * np.uint32(3) + y * np.uint32(2) + c * np.uint32(50)) & np.uint32(255)
    region = ((x >> np.uint32(4)) + (y >> np.uint32(4))) % np.uint32(3)
    v = np.where(region == 0, noise, np.where(region == 1, checker, grad))
    return v.astype(np.uint8)


def row_hashes(img):
    """32-bit FNV-1a of each row's bytes (as int32): what the large LatentSync-sized outputs are
    stored as, so that the golden data stay small; tests/cv.rs names the rows that differ."""
    a = img.reshape(img.shape[0], -1).astype(np.uint32)
    hsh = np.full(a.shape[0], 2166136261, dtype=np.uint32)
    for j in range(a.shape[1]):
        hsh = (hsh ^ a[:, j]) * np.uint32(16777619)
    return hsh.view(np.int32)


def latentsync_affine(frame_w, frame_h, angle_deg, scale, centre):
    """A frame -> 210x280 crop similarity like LatentSync's: `scale` frame pixels per crop
    pixel, rotated by `angle_deg`, frame point `centre` onto the crop's centre (plus a sub-pixel
    offset, as real landmarks give)."""
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) / scale
    t = np.array([LATENTSYNC_CROP[0] / 2 + 0.3137, LATENTSYNC_CROP[1] / 2 - 0.2718]) - r @ np.asarray(centre)
    return np.array([[r[0, 0], r[0, 1], t[0]], [r[1, 0], r[1, 1], t[1]]], dtype=np.float64)


def lanczos_cases():
    # A generator of its own: the files above stay byte-identical when this part changes.
    rng = np.random.default_rng(20250611)
    warp = []
    for i in range(22):
        cn = (1, 3, 3, 4)[i % 4]
        sw, sh = int(rng.integers(5, 19)), int(rng.integers(4, 16))
        dw, dh = int(rng.integers(6, 21)), int(rng.integers(6, 17))
        src = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
        if i % 5 == 0:  # hard 0/255 edges: Lanczos overshoots and saturates
            src[:] = rng.choice([0, 255], size=(sh, sw, cn)).astype(np.uint8)
        m = random_affine(rng, sw, sh, dw, dh)
        if i == 0:
            m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        elif i == 1:  # half- and quarter-pixel shifts: cells 16 and 8 of the table
            m = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.25]])
        elif i == 2:  # a 3x enlargement of a source smaller than the 8x8 kernel
            m = np.array([[3.0, 0.0, 1.2], [0.0, 3.0, -0.7]])
        inverse = i % 4 == 3
        if inverse:
            m = cv2.invertAffineTransform(m)
        replicate = i % 3 == 1
        border_value = (127.0, 0.0, 255.0, 300.0, -4.0, 12.6)[i % 6]
        flags = cv2.INTER_LANCZOS4 | (cv2.WARP_INVERSE_MAP if inverse else 0)
        border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
        s = src[:, :, 0] if cn == 1 else src

        def run():
            return cv2.warpAffine(s, m, (dw, dh), flags=flags, borderMode=border,
                                  borderValue=(border_value,) * 4)

        out = same_with_and_without_ipp(run, f"warp lanczos4 case {i}")
        warp.append({
            "src": src,
            "m": m,
            "inverse": np.array([int(inverse)], dtype=np.int32),
            "replicate": np.array([int(replicate)], dtype=np.int32),
            "border_value": np.array([border_value]),
            "dst": out.reshape(dh, dw, cn),
        })

    # LatentSync's exact sizes on a 960x720 pattern frame: rotations within +-10 degrees, 1 to 4
    # frame pixels per crop pixel, faces inside and crossing the frame's edges. Outputs as row
    # hashes: the warp's, and that of cv2.resize(warp, (256, 256), INTER_LANCZOS4) of it.
    fw, fh, seed = 960, 720, 7
    frame = pattern(fw, fh, 3, seed)
    latentsync = []
    specs = [  # (angle, scale, centre)
        (0.0, 1.0, (480.4, 360.6)), (-10.0, 1.0, (301.2, 402.9)), (10.0, 1.37, (611.7, 299.3)),
        (4.3, 2.0, (455.1, 380.2)), (-7.9, 2.71, (520.9, 340.4)), (-2.2, 3.3, (470.0, 355.5)),
        (9.6, 4.0, (480.7, 362.1)), (-10.0, 4.0, (459.3, 371.8)),
        (6.5, 1.8, (60.2, 140.9)),    # crosses the left edge
        (-8.8, 2.4, (930.6, 690.3)),  # crosses the bottom-right corner
        (3.0, 1.2, (480.0, 12.5)),    # crosses the top edge
    ]
    for angle, scale, centre in specs:
        m = latentsync_affine(fw, fh, angle, scale, centre)

        def warp_crop():
            return cv2.warpAffine(frame, m, LATENTSYNC_CROP, flags=cv2.INTER_LANCZOS4,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=[127, 127, 127])

        crop = same_with_and_without_ipp(warp_crop, f"latentsync warp {angle} {scale}")
        face = same_with_and_without_ipp(
            lambda: cv2.resize(crop, (LATENTSYNC_OUT, LATENTSYNC_OUT), interpolation=cv2.INTER_LANCZOS4),
            f"latentsync resize {angle} {scale}")
        latentsync.append({
            "frame": np.array([fw, fh, 3, seed], dtype=np.int32),
            "m": m,
            "warp_rows": row_hashes(crop),
            "resize_rows": row_hashes(face),
            "saturated": np.array([int(((crop == 0) | (crop == 255)).sum())], dtype=np.int32),
        })

    resize = []
    resize_specs = [
        ((20, 16, 3), [(40, 32), (33, 23), (21, 17), (44, 26), (10, 8), (7, 6), (19, 15)]),
        ((21, 28, 3), [(25, 25), (26, 26), (7, 9)]),  # LatentSync's 210x280 -> 256 at 1/10
        ((17, 13, 1), [(34, 26), (50, 29), (17, 13), (9, 30)]),
        ((5, 4, 4), [(13, 11), (3, 2), (5, 9)]),  # narrower than the kernel
        ((1, 6, 3), [(4, 12), (1, 3)]),
    ]
    for (sw, sh, cn), sizes in resize_specs:
        src = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
        if sw == 21:
            src[:, :, :] = rng.choice([0, 255], size=(sh, sw, cn)).astype(np.uint8)
        case = {"src": src}
        s = src[:, :, 0] if cn == 1 else src
        for k, (dw, dh) in enumerate(sizes):
            out = same_with_and_without_ipp(
                lambda: cv2.resize(s, (dw, dh), interpolation=cv2.INTER_LANCZOS4),
                f"lanczos4 {sw}x{sh}->{dw}x{dh}")
            case[f"dsize{k}"] = np.array([dw, dh], dtype=np.int32)
            case[f"out{k}"] = out.reshape(dh, dw, cn)
        resize.append(case)
    # The LatentSync resize itself on a pattern crop (row hashes; the source is computed).
    crop = pattern(*LATENTSYNC_CROP, 3, 11)
    face = same_with_and_without_ipp(
        lambda: cv2.resize(crop, (LATENTSYNC_OUT, LATENTSYNC_OUT), interpolation=cv2.INTER_LANCZOS4),
        "lanczos4 210x280->256x256")
    big = {
        "pattern": np.array([*LATENTSYNC_CROP, 3, 11], dtype=np.int32),
        "dsize": np.array([LATENTSYNC_OUT, LATENTSYNC_OUT], dtype=np.int32),
        "rows": row_hashes(face),
    }
    return warp, latentsync, resize, [big]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(20240607)
    u8, f32, inv = warp_cases(rng)
    total = write("warp_u8.bin", u8)
    total += write("warp_f32.bin", f32)
    total += write("invert_affine.bin", inv)
    total += write("fill_convex_poly.bin", polygon_cases(rng))
    gauss, kernels = gaussian_cases(rng)
    total += write("gaussian_blur.bin", gauss)
    total += write("gaussian_kernel.bin", kernels)
    area, cubic = resize_cases(rng)
    total += write("resize_area.bin", area)
    total += write("resize_cubic.bin", cubic)
    warp_l4, latentsync, resize_l4, resize_l4_big = lanczos_cases()
    total += write("warp_lanczos4_u8.bin", warp_l4)
    total += write("latentsync_lanczos4.bin", latentsync)
    total += write("resize_lanczos4.bin", resize_l4)
    total += write("resize_lanczos4_hashed.bin", resize_l4_big)
    print(f"total {total} bytes, cv2 {cv2.__version__}")
    if total > 360_000:
        sys.exit("golden data over 360 KB; shrink the cases")


if __name__ == "__main__":
    main()
