//! OpenCV's arithmetic, re-implemented: the handful of `cv2` operations that FaceFusion's lip-sync
//! pre- and post-processing calls, reproduced to the bit where OpenCV itself is deterministic.
//!
//! Why: facesync must give the same pixels as FaceFusion, and FaceFusion's results are whatever
//! OpenCV's fixed-point tables, rounding modes and border rules make them. A textbook bilinear
//! warp or Gaussian blur is close but not equal (a pixel OpenCV leaves at weight 0 would get a tiny
//! weight, a `.5` would round the other way). So each function here follows the code path that
//! `cv2` takes in OpenCV **4.11.0** (the `opencv-python-headless==4.11.0.86` wheel, x86-64,
//! default settings: IPP on, no OpenCL), read from OpenCV's sources (`modules/imgproc/src/…`) and
//! written fresh in Rust. Each function's doc names the file and function it follows.
//!
//! | function | `cv2` call | agreement (see `tests/cv.rs` and `tests/cv_golden.py`) |
//! | --- | --- | --- |
//! | [`warp_affine_u8`] | `warpAffine`, `INTER_LINEAR` (and `INTER_AREA`, which it maps to linear) | bit-exact |
//! | [`warp_affine_f32`] | the same on `CV_32FC1` | bit-exact (so the zero set is the same) |
//! | [`invert_affine`] | `invertAffineTransform` | bit-exact |
//! | [`fill_convex_poly`], [`convex_hull_i32`] | `fillConvexPoly` (`LINE_8`, `shift` 0), `convexHull` | pixel-exact; same points in the same order |
//! | [`gaussian_blur_f32`], [`gaussian_blur_f32_rect`] | `GaussianBlur(src, (0, 0), sigma)` on `CV_32F` | taps bit-exact; values bit-exact on CPUs with FMA (where OpenCV fuses its multiply-adds), within 1e-6 otherwise |
//! | [`resize_area_u8`] | `resize`, `INTER_AREA`, any factors | bit-exact |
//! | [`resize_cubic_u8`] | `resize`, `INTER_CUBIC` | bit-exact to OpenCV's own code, and to the wheel's default (IPP) for 2× enlargement; ≤ 1 LSB from IPP at other ratios |
//! | [`warp_affine_lanczos4_u8`] | `warpAffine`, `INTER_LANCZOS4` (LatentSync's 210×280 face crop) | bit-exact |
//! | [`resize_lanczos4_u8`] | `resize`, `INTER_LANCZOS4` (LatentSync's 210×280 → 256×256) | bit-exact (IPP on or off gives the same pixels) |
//!
//! Conventions: images are plain row-major slices, channels interleaved, no padding; sizes are
//! `(width, height)` like `cv2`'s `dsize`. Affine matrices are `[[a, b, tx], [c, d, ty]]`, the
//! layout of [`crate::Affine2::m`]. Functions panic (with a message naming the argument) when a
//! buffer does not match its stated size, as indexing would.
//!
//! ```
//! use facesync_frame::cv::{warp_affine_u8, Border};
//! let src: Vec<u8> = (0..4 * 4).map(|i| (i * 16) as u8).collect();
//! // Shift right by half a pixel: every output pixel averages two neighbours, rounded like OpenCV.
//! let m = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]];
//! let out = warp_affine_u8(&src, 4, 4, 1, m, false, 4, 4, Border::Replicate);
//! assert_eq!(&out[..4], &[0, 8, 24, 40]);
//! ```
//!
//! [`warp_affine_u8`]: crate::cv::warp_affine_u8
//! [`warp_affine_f32`]: crate::cv::warp_affine_f32
//! [`invert_affine`]: crate::cv::invert_affine
//! [`fill_convex_poly`]: crate::cv::fill_convex_poly
//! [`convex_hull_i32`]: crate::cv::convex_hull_i32
//! [`gaussian_blur_f32`]: crate::cv::gaussian_blur_f32
//! [`gaussian_blur_f32_rect`]: crate::cv::gaussian_blur_f32_rect
//! [`resize_area_u8`]: crate::cv::resize_area_u8
//! [`resize_cubic_u8`]: crate::cv::resize_cubic_u8
//! [`warp_affine_lanczos4_u8`]: crate::cv::warp_affine_lanczos4_u8
//! [`resize_lanczos4_u8`]: crate::cv::resize_lanczos4_u8

use std::sync::OnceLock;

/// How a warp treats source pixels outside the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Border {
    /// `cv2.BORDER_CONSTANT` with `borderValue` = this value in every channel. For `u8` images it
    /// is rounded and saturated like OpenCV's `saturate_cast<uchar>`.
    Constant(f64),
    /// `cv2.BORDER_REPLICATE`: the nearest edge pixel.
    Replicate,
}

/// A rectangle of pixels: columns `x .. x + width`, rows `y .. y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// First column.
    pub x: usize,
    /// First row.
    pub y: usize,
    /// Number of columns.
    pub width: usize,
    /// Number of rows.
    pub height: usize,
}

impl Rect {
    /// The whole of a `width` × `height` image.
    pub fn full(width: usize, height: usize) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenCV's scalar conversions (core/include/opencv2/core/fast_math.hpp, saturate.hpp), as they
// behave on x86-64: `cvRound` is `cvtsd2si`/`cvtss2si` (ties to even; INT_MIN when out of range).

fn cv_round(v: f64) -> i32 {
    let r = v.round_ties_even();
    if r >= i32::MIN as f64 && r <= i32::MAX as f64 {
        r as i32
    } else {
        i32::MIN
    }
}

fn cv_round_f32(v: f32) -> i32 {
    cv_round(f64::from(v))
}

fn cv_floor(v: f64) -> i32 {
    v.floor() as i32
}

fn cv_ceil(v: f64) -> i32 {
    v.ceil() as i32
}

fn sat_u8(v: i64) -> u8 {
    v.clamp(0, 255) as u8
}

fn sat_i16(v: i32) -> i16 {
    v.clamp(i16::MIN.into(), i16::MAX.into()) as i16
}

/// `cv::borderInterpolate` for `BORDER_REFLECT_101` (core/src/copy.cpp).
fn reflect101(p: isize, len: usize) -> usize {
    let len = len as isize;
    if (0..len).contains(&p) {
        return p as usize;
    }
    if len == 1 {
        return 0;
    }
    let mut p = p;
    while !(0..len).contains(&p) {
        p = if p < 0 { -p } else { 2 * len - 2 - p };
    }
    p as usize
}

fn check_len(what: &str, len: usize, expected: usize) {
    assert!(
        len == expected,
        "{what} has {len} elements, expected {expected}"
    );
}

// ---------------------------------------------------------------------------------------------
// Affine inverse.

/// `cv2.invertAffineTransform(m)` for a `CV_64F` matrix (imgproc/src/imgwarp.cpp,
/// `cv::invertAffineTransform`): `D = 1 / (a·d − b·c)` (0 when singular), then the adjugate times
/// `D` and `−A⁻¹·t`, in that operation order. OpenCV computes it with `softdouble`, i.e. IEEE
/// double with correct rounding, which is what Rust's `f64` does.
pub fn invert_affine(m: [[f64; 3]; 2]) -> [[f64; 3]; 2] {
    let [[m0, m1, m2], [m3, m4, m5]] = m;
    let d = m0 * m4 - m1 * m3;
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22, a12, a21) = (m4 * d, m0 * d, -m1 * d, -m3 * d);
    let b1 = -a11 * m2 - a12 * m5;
    let b2 = -a21 * m2 - a22 * m5;
    [[a11, a12, b1], [a21, a22, b2]]
}

/// The inversion `cv::warpAffine` does itself when `WARP_INVERSE_MAP` is not set (imgproc/src/
/// imgwarp.cpp, `cv::warpAffine`). It is written differently from `invertAffineTransform`
/// (`M[1] *= -D` rather than `-M[1] * D`) but rounds identically; kept separate so that each
/// follows its own source.
fn warp_affine_inverse(m: [[f64; 3]; 2]) -> [f64; 6] {
    let [[mut m0, mut m1, m2], [mut m3, mut m4, m5]] = m;
    let d = m0 * m4 - m1 * m3;
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (m4 * d, m0 * d);
    m0 = a11;
    m1 *= -d;
    m3 *= -d;
    m4 = a22;
    let b1 = -m0 * m2 - m1 * m5;
    let b2 = -m3 * m2 - m4 * m5;
    [m0, m1, b1, m3, m4, b2]
}

// ---------------------------------------------------------------------------------------------
// warpAffine, INTER_LINEAR.

const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: usize = 1 << INTER_BITS;
const INTER_TAB_SIZE2: usize = INTER_TAB_SIZE * INTER_TAB_SIZE;
const INTER_REMAP_COEF_BITS: i32 = 15;
const INTER_REMAP_COEF_SCALE: i32 = 1 << INTER_REMAP_COEF_BITS;

/// `initInterTab2D` (imgproc/src/imgwarp.cpp) for a separable kernel of `ksize` taps, given its
/// 1-D table `tab1d` (`initInterTab1D`: `ksize` weights for each sub-position `i/32`). For each
/// of the 32×32 sub-pixel cells (`fy·32 + fx`) it gives the `ksize²` products `wy·wx` as `f32`,
/// and as `i16` scaled by 2^15 (`saturate_cast<short>`, i.e. `cvRound` then saturation). Where a
/// cell's integers do not sum to 2^15, OpenCV's fix-up moves the difference onto the smallest
/// (sum too large) or the largest (too small) of the entries at rows and columns
/// `ksize/2 .. ksize/2 + 1`, searched from `(ksize/2, ksize/2)`. For Lanczos-4 that is the
/// kernel's centre; for bilinear the search reads past the cell into the next one, whose entries
/// are still 0 at that point (the flat table below reproduces that). Returns both tables flat,
/// `ksize²` entries per cell.
fn init_inter_tab_2d(ksize: usize, tab1d: &[f32]) -> (Vec<i16>, Vec<f32>) {
    let k2size = ksize * ksize;
    // Like OpenCV's static array, with room for the fix-up's look past the last cell.
    let mut itab = vec![0i16; INTER_TAB_SIZE2 * k2size + k2size];
    let mut ftab = vec![0f32; INTER_TAB_SIZE2 * k2size];
    for i in 0..INTER_TAB_SIZE {
        for j in 0..INTER_TAB_SIZE {
            let base = (i * INTER_TAB_SIZE + j) * k2size;
            let mut isum = 0i32;
            for k1 in 0..ksize {
                let vy = tab1d[i * ksize + k1];
                for k2 in 0..ksize {
                    let v = vy * tab1d[j * ksize + k2];
                    ftab[base + k1 * ksize + k2] = v;
                    let iv = sat_i16(cv_round_f32(v * INTER_REMAP_COEF_SCALE as f32));
                    itab[base + k1 * ksize + k2] = iv;
                    isum += i32::from(iv);
                }
            }
            if isum != INTER_REMAP_COEF_SCALE {
                let diff = isum - INTER_REMAP_COEF_SCALE;
                let ksize2 = ksize / 2;
                let (mut mk, mut big) = ((ksize2, ksize2), (ksize2, ksize2));
                let at = |t: &[i16], k: (usize, usize)| t[base + k.0 * ksize + k.1];
                for k1 in ksize2..ksize2 + 2 {
                    for k2 in ksize2..ksize2 + 2 {
                        let v = at(&itab, (k1, k2));
                        if v < at(&itab, mk) {
                            mk = (k1, k2);
                        } else if v > at(&itab, big) {
                            big = (k1, k2);
                        }
                    }
                }
                let fix = if diff < 0 { big } else { mk };
                let idx = base + fix.0 * ksize + fix.1;
                itab[idx] = (i32::from(itab[idx]) - diff) as i16;
            }
        }
    }
    itab.truncate(INTER_TAB_SIZE2 * k2size);
    (itab, ftab)
}

/// OpenCV's bilinear weight tables (imgproc/src/imgwarp.cpp, `initInterTab1D` +
/// `initInterTab2D(INTER_LINEAR, …)`): for each of the 32×32 sub-pixel cells the four weights
/// `(1−fy)(1−fx), (1−fy)fx, fy(1−fx), fy·fx` as `f32`, and as `i16` scaled by 2^15. Cell 0's
/// `1.0 · 32768` saturates to 32767; OpenCV's fix-up then adds the missing 1 to the entry its
/// (bilinear-unaware) search lands on, which is the bottom-right weight: cell 0 is
/// `[32767, 0, 0, 1]`. Every other cell is exact.
struct BilinearTables {
    int: Vec<[i32; 4]>,
    float: Vec<[f32; 4]>,
}

fn bilinear_tables() -> &'static BilinearTables {
    static TABLES: OnceLock<BilinearTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let scale = 1.0f32 / INTER_TAB_SIZE as f32;
        let tab1d: Vec<f32> = (0..INTER_TAB_SIZE)
            .flat_map(|i| {
                let x = i as f32 * scale;
                [1.0 - x, x]
            })
            .collect();
        let (itab, ftab) = init_inter_tab_2d(2, &tab1d);
        let int = itab
            .chunks_exact(4)
            .map(|c| std::array::from_fn(|k| i32::from(c[k])))
            .collect();
        let float = ftab
            .chunks_exact(4)
            .map(|c| std::array::from_fn(|k| c[k]))
            .collect();
        BilinearTables { int, float }
    })
}

/// OpenCV's Lanczos-4 weights (a = 4, eight taps at offsets −3 … +4) for a fractional position
/// `x` in `[0, 1)`, as both `imgwarp.cpp` and `resize.cpp` compute them (`interpolateLanczos4`;
/// each file has its own identical copy). Up to normalisation, tap `i` is
/// `sin(π·t)·sin(π·t/4) / t²` at `t = x + 3 − i`; the common factor `±sin(π·x)` is dropped and
/// the rest is evaluated as `(csᵢ₀·s₀ + csᵢ₁·c₀) / yᵢ²`, with `y₀ = −(x+3)·π/4` (the `x + 3` in
/// `f32`, then double), `s₀ = sin y₀`, `c₀ = cos y₀`, `yᵢ = −(x+3−i)·π/4` and `cs` OpenCV's table
/// of entries 0, ±1, ±√½ that makes the numerator `sin(y₀ − i·3π/4)`; each quotient is rounded
/// to `f32`. A tap whose offset
/// `x + 3 − i` (in `f32`) is below 1e−6 in magnitude gets `1e30` instead. The taps are summed in
/// `f32` in order and each multiplied by `1/sum` (an `f32` reciprocal), so `x = 0` gives
/// `[≈0, ≈0, ≈0, 1, ≈0, …]` (the others about 1e−30). `sin`/`cos` are the C library's, as in
/// OpenCV.
fn interpolate_lanczos4(x: f32) -> [f32; 8] {
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-S45, -S45],
        [0.0, 1.0],
        [S45, -S45],
        [-1.0, 0.0],
        [S45, S45],
        [0.0, -1.0],
        [-S45, S45],
    ];
    const CV_PI: f64 = std::f64::consts::PI;
    let y0 = f64::from(-(x + 3.0)) * CV_PI * 0.25;
    let (s0, c0) = (y0.sin(), y0.cos());
    let mut coeffs = [0f32; 8];
    let mut sum = 0f32;
    for (i, (c, cs)) in coeffs.iter_mut().zip(CS).enumerate() {
        let off = x + 3.0 - i as f32;
        *c = if off.abs() >= 1e-6 {
            let y = f64::from(-off) * CV_PI * 0.25;
            ((cs[0] * s0 + cs[1] * c0) / (y * y)) as f32
        } else {
            1e30
        };
        sum += *c;
    }
    let inv = 1.0 / sum;
    coeffs.map(|c| c * inv)
}

/// OpenCV's Lanczos-4 remap table (imgproc/src/imgwarp.cpp, `initInterTab2D(INTER_LANCZOS4,
/// true)`): for each 1/32-pixel cell `fy·32 + fx` the 8×8 weights (row-major, rows `sy−3 …
/// sy+4`, columns `sx−3 … sx+4`) of [`interpolate_lanczos4`]`(fy/32) ⊗ (fx/32)`, in 15-bit fixed
/// point, each cell summing to exactly 2^15 after OpenCV's fix-up.
fn lanczos4_table() -> &'static [[i16; 64]] {
    static TABLE: OnceLock<Vec<[i16; 64]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let scale = 1.0f32 / INTER_TAB_SIZE as f32;
        let tab1d: Vec<f32> = (0..INTER_TAB_SIZE)
            .flat_map(|i| interpolate_lanczos4(i as f32 * scale))
            .collect();
        let (itab, _) = init_inter_tab_2d(8, &tab1d);
        itab.chunks_exact(64)
            .map(|c| c.try_into().expect("64 taps"))
            .collect()
    })
}

/// Runs OpenCV's fixed-point coordinate generation for `warpAffine` (imgproc/src/imgwarp.cpp,
/// `hal::warpAffine`, `WarpAffineInvoker`, `hal::warpAffineBlockline`) and calls `f(index, sx, sy,
/// cell)` for every destination pixel: `(sx, sy)` is the top-left source pixel of the 2×2
/// neighbourhood (saturated to `i16` like the `CV_16SC2` map) and `cell` the 1/32-pixel
/// sub-position `fy·32 + fx`.
fn for_each_warp_sample(
    mi: [f64; 6],
    dw: usize,
    dh: usize,
    mut f: impl FnMut(usize, i32, i32, usize),
) {
    const AB_BITS: i32 = 10; // MAX(10, INTER_BITS)
    const AB_SCALE: f64 = (1 << AB_BITS) as f64;
    const ROUND_DELTA: i32 = (1 << AB_BITS) / INTER_TAB_SIZE as i32 / 2;
    const MASK: i32 = INTER_TAB_SIZE as i32 - 1;
    // Per-column offsets, rounded once in double (`saturate_cast<int>` is `cvRound`).
    let adelta: Vec<i32> = (0..dw)
        .map(|x| cv_round(mi[0] * x as f64 * AB_SCALE))
        .collect();
    let bdelta: Vec<i32> = (0..dw)
        .map(|x| cv_round(mi[3] * x as f64 * AB_SCALE))
        .collect();
    for y in 0..dh {
        let x0 = cv_round((mi[1] * y as f64 + mi[2]) * AB_SCALE).wrapping_add(ROUND_DELTA);
        let y0 = cv_round((mi[4] * y as f64 + mi[5]) * AB_SCALE).wrapping_add(ROUND_DELTA);
        for (x, (&ad, &bd)) in adelta.iter().zip(&bdelta).enumerate() {
            let xx = x0.wrapping_add(ad) >> (AB_BITS - INTER_BITS);
            let yy = y0.wrapping_add(bd) >> (AB_BITS - INTER_BITS);
            let sx = i32::from(sat_i16(xx >> INTER_BITS));
            let sy = i32::from(sat_i16(yy >> INTER_BITS));
            let cell = ((yy & MASK) * INTER_TAB_SIZE as i32 + (xx & MASK)) as usize;
            f(y * dw + x, sx, sy, cell);
        }
    }
}

/// The source pixels (as flat pixel indices, `None` for "use the border value") of the 2×2
/// neighbourhood at `(sx, sy)`, following `remapBilinear`'s border branch
/// (imgproc/src/imgwarp.cpp): with `BORDER_CONSTANT` a neighbourhood wholly outside gives `None`
/// for the whole pixel, one partly outside takes the constant for the taps outside; with
/// `BORDER_REPLICATE` each tap is clamped. Inside the image this is the plain 2×2 block, which is
/// what OpenCV's fast path reads.
fn bilinear_taps(
    sx: i32,
    sy: i32,
    sw: usize,
    sh: usize,
    replicate: bool,
) -> Option<[Option<usize>; 4]> {
    let (w, h) = (sw as i32, sh as i32);
    if replicate {
        let cx = |x: i32| x.clamp(0, w - 1) as usize;
        let cy = |y: i32| y.clamp(0, h - 1) as usize;
        let (x0, x1, y0, y1) = (cx(sx), cx(sx + 1), cy(sy), cy(sy + 1));
        return Some([
            Some(y0 * sw + x0),
            Some(y0 * sw + x1),
            Some(y1 * sw + x0),
            Some(y1 * sw + x1),
        ]);
    }
    if sx >= w || sx + 1 < 0 || sy >= h || sy + 1 < 0 {
        return None;
    }
    let inside = |x: i32, y: i32| {
        ((0..w).contains(&x) && (0..h).contains(&y)).then(|| y as usize * sw + x as usize)
    };
    Some([
        inside(sx, sy),
        inside(sx + 1, sy),
        inside(sx, sy + 1),
        inside(sx + 1, sy + 1),
    ])
}

fn warp_inverse_matrix(m: [[f64; 3]; 2], inverse_map: bool) -> [f64; 6] {
    if inverse_map {
        [m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2]]
    } else {
        warp_affine_inverse(m)
    }
}

/// The argument checks of the 8-bit warps (see their `# Panics`).
fn check_warp_u8(
    name: &str,
    len: usize,
    sw: usize,
    sh: usize,
    channels: usize,
    dw: usize,
    dh: usize,
) {
    assert!(
        (1..=4).contains(&channels),
        "channels is {channels}, expected 1 to 4"
    );
    assert!(
        sw > 0 && sh > 0 && dw > 0 && dh > 0,
        "warp sizes {sw}x{sh} -> {dw}x{dh} include an empty side"
    );
    assert!(
        len == sw * sh * channels,
        "{name} src has {len} elements, expected {}",
        sw * sh * channels
    );
}

/// `cv2.warpAffine(src, m, (dw, dh), flags=INTER_LINEAR [| WARP_INVERSE_MAP], borderMode, borderValue)`
/// on `CV_8U` images with `channels` interleaved channels (1 to 4).
///
/// `inverse_map` is `cv2.WARP_INVERSE_MAP`: `true` when `m` already maps destination pixels to
/// source pixels; otherwise `m` is inverted first with `warpAffine`'s own double-precision code.
/// `cv2.INTER_AREA` gives the same result: `cv::warpAffine` replaces `INTER_AREA` by `INTER_LINEAR`
/// before anything else (imgproc/src/imgwarp.cpp: `if( interpolation == INTER_AREA )
/// interpolation = INTER_LINEAR;`).
///
/// The arithmetic is OpenCV's (imgproc/src/imgwarp.cpp, `hal::warpAffine`, `WarpAffineInvoker`,
/// `warpAffineBlockline`, `remap`, `remapBilinear` with `FixedPtCast<int, uchar, 15>`): source
/// coordinates in 22.10 fixed point (`cvRound` of the double products, the row part plus
/// `1 << 4` to round to 1/32 pixel, per-column offsets added as integers), quantised to 1/32 pixel;
/// the bilinear weights from OpenCV's 15-bit table (each cell sums to 32768); the result
/// `(Σ pixel·weight + (1 << 14)) >> 15`. IPP's warp is disabled in OpenCV 4.11
/// (`IPP_DISABLE_WARPAFFINE`), so this is the code `cv2` runs.
///
/// # Panics
/// If `src.len() != sw * sh * channels`, a size is zero, or `channels` is not 1 to 4.
#[allow(clippy::too_many_arguments)] // mirrors cv2.warpAffine's arguments one to one
pub fn warp_affine_u8(
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    m: [[f64; 3]; 2],
    inverse_map: bool,
    dw: usize,
    dh: usize,
    border: Border,
) -> Vec<u8> {
    check_warp_u8("warp_affine_u8", src.len(), sw, sh, channels, dw, dh);
    let mi = warp_inverse_matrix(m, inverse_map);
    let tab = &bilinear_tables().int;
    let (replicate, cval) = match border {
        Border::Constant(v) => (false, sat_u8(cv_round(v).into())),
        Border::Replicate => (true, 0),
    };
    let mut dst = vec![0u8; dw * dh * channels];
    for_each_warp_sample(mi, dw, dh, |i, sx, sy, cell| {
        let out = &mut dst[i * channels..(i + 1) * channels];
        let Some(taps) = bilinear_taps(sx, sy, sw, sh, replicate) else {
            out.fill(cval);
            return;
        };
        let w = tab[cell];
        for (c, o) in out.iter_mut().enumerate() {
            let mut sum = 0i64;
            for (tap, wk) in taps.iter().zip(w) {
                let v = tap.map_or(cval, |p| src[p * channels + c]);
                sum += i64::from(v) * i64::from(wk);
            }
            *o = sat_u8((sum + (1 << (INTER_REMAP_COEF_BITS - 1))) >> INTER_REMAP_COEF_BITS);
        }
    });
    dst
}

/// `cv2.warpAffine` with `INTER_LINEAR` on a single-channel `CV_32F` image (what FaceFusion does
/// to its float masks before `.clip(0, 1)`); arguments as in [`warp_affine_u8`].
///
/// Same coordinates as the `u8` warp (still quantised to 1/32 pixel), then OpenCV's float weight
/// table and `remapBilinear<Cast<float, float>, RemapNoVec, float>` (imgproc/src/imgwarp.cpp):
/// `((v00·w00 + v01·w01) + v10·w10) + v11·w11` in `f32`, each product and sum rounded (no fused
/// multiply-add: imgwarp.cpp is built for the SSE baseline). Taps outside the image take the border
/// value, so a destination pixel is exactly 0 under `Border::Constant(0.0)` precisely when OpenCV's
/// is.
///
/// # Panics
/// If `src.len() != sw * sh` or a size is zero.
#[allow(clippy::too_many_arguments)] // mirrors cv2.warpAffine's arguments one to one
pub fn warp_affine_f32(
    src: &[f32],
    sw: usize,
    sh: usize,
    m: [[f64; 3]; 2],
    inverse_map: bool,
    dw: usize,
    dh: usize,
    border: Border,
) -> Vec<f32> {
    assert!(
        sw > 0 && sh > 0 && dw > 0 && dh > 0,
        "warp sizes {sw}x{sh} -> {dw}x{dh} include an empty side"
    );
    check_len("warp_affine_f32 src", src.len(), sw * sh);
    let mi = warp_inverse_matrix(m, inverse_map);
    let tab = &bilinear_tables().float;
    let (replicate, cval) = match border {
        Border::Constant(v) => (false, v as f32),
        Border::Replicate => (true, 0.0),
    };
    let mut dst = vec![0f32; dw * dh];
    for_each_warp_sample(mi, dw, dh, |i, sx, sy, cell| {
        dst[i] = match bilinear_taps(sx, sy, sw, sh, replicate) {
            None => cval,
            Some(taps) => {
                let w = tab[cell];
                let v = |k: usize| taps[k].map_or(cval, |p| src[p]);
                v(0) * w[0] + v(1) * w[1] + v(2) * w[2] + v(3) * w[3]
            }
        };
    });
    dst
}

/// `cv2.warpAffine(src, m, (dw, dh), flags=INTER_LANCZOS4 [| WARP_INVERSE_MAP], borderMode,
/// borderValue)` on `CV_8U` images with `channels` interleaved channels (1 to 4); arguments as in
/// [`warp_affine_u8`]. This is LatentSync's face crop (`warpAffine(frame, M, (210, 280),
/// flags=INTER_LANCZOS4, borderMode=BORDER_CONSTANT, borderValue=[127, 127, 127])`).
///
/// Same source coordinates as the bilinear warp (22.10 fixed point, quantised to 1/32 pixel, see
/// [`warp_affine_u8`]); then OpenCV's `remapLanczos4<FixedPtCast<int, uchar, 15>, short, 32768>`
/// (imgproc/src/imgwarp.cpp): the 8×8 source block at columns `sx−3 … sx+4` and rows
/// `sy−3 … sy+4`, weighted by the cell's entry of OpenCV's 15-bit Lanczos table (1-D taps from
/// `interpolateLanczos4` at `i/32`, outer products rounded to `i16`, each cell fixed up to sum to
/// 32768), result `(Σ pixel·weight + (1 << 14)) >> 15` saturated to `0 … 255` (Lanczos
/// overshoots, so saturation happens near edges). Blocks partly outside the image follow the
/// border branch: with `BORDER_CONSTANT`, a block wholly outside gives the border value and
/// otherwise `sum = value·32768 + Σ (pixel − value)·weight` over the taps inside (the same
/// integer as reading the value for every tap outside); with `BORDER_REPLICATE` each tap's row
/// and column are clamped. IPP's warp is disabled in OpenCV 4.11 (`IPP_DISABLE_WARPAFFINE`).
///
/// # Panics
/// If `src.len() != sw * sh * channels`, a size is zero, or `channels` is not 1 to 4.
#[allow(clippy::too_many_arguments)] // mirrors cv2.warpAffine's arguments one to one
pub fn warp_affine_lanczos4_u8(
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    m: [[f64; 3]; 2],
    inverse_map: bool,
    dw: usize,
    dh: usize,
    border: Border,
) -> Vec<u8> {
    check_warp_u8(
        "warp_affine_lanczos4_u8",
        src.len(),
        sw,
        sh,
        channels,
        dw,
        dh,
    );
    let mi = warp_inverse_matrix(m, inverse_map);
    let geom = (sw, sh, mi, dw, dh);
    // The channel count as a constant, so that the 8×8×channels inner loop unrolls.
    match channels {
        1 => remap_lanczos4::<1>(src, geom, border),
        2 => remap_lanczos4::<2>(src, geom, border),
        3 => remap_lanczos4::<3>(src, geom, border),
        _ => remap_lanczos4::<4>(src, geom, border),
    }
}

/// [`warp_affine_lanczos4_u8`] for `CN` channels, given the inverse matrix `mi`.
fn remap_lanczos4<const CN: usize>(
    src: &[u8],
    (sw, sh, mi, dw, dh): (usize, usize, [f64; 6], usize, usize),
    border: Border,
) -> Vec<u8> {
    let tab = lanczos4_table();
    let (replicate, cval) = match border {
        Border::Constant(v) => (false, sat_u8(cv_round(v).into())),
        Border::Replicate => (true, 0),
    };
    let cast = |sum: i32| {
        sat_u8(((sum + (1 << (INTER_REMAP_COEF_BITS - 1))) >> INTER_REMAP_COEF_BITS).into())
    };
    let (w, h) = (sw as i32, sh as i32);
    let mut dst = vec![0u8; dw * dh * CN];
    for_each_warp_sample(mi, dw, dh, |i, sx, sy, cell| {
        let out = &mut dst[i * CN..(i + 1) * CN];
        let wt = &tab[cell];
        let (x0, y0) = (sx - 3, sy - 3);
        if x0 >= 0 && y0 >= 0 && x0 + 8 <= w && y0 + 8 <= h {
            // OpenCV's fast path, `(unsigned)sx < width - 7 && (unsigned)sy < height - 7`.
            // One lane per (tap column, channel), summed per channel at the end: the same
            // integer sum in an order that vectorises.
            let mut lanes = [0i32; 32];
            for (r, wr) in wt.chunks_exact(8).enumerate() {
                let start = ((y0 as usize + r) * sw + x0 as usize) * CN;
                let row = &src[start..start + 8 * CN];
                let wexp: [i32; 32] = std::array::from_fn(|l| i32::from(wr[(l / CN).min(7)]));
                for ((a, &v), &wk) in lanes.iter_mut().zip(row).zip(&wexp) {
                    *a += i32::from(v) * wk;
                }
            }
            for (c, o) in out.iter_mut().enumerate() {
                *o = cast(lanes[c..8 * CN].iter().step_by(CN).sum());
            }
            return;
        }
        if !replicate && (x0 >= w || x0 + 8 <= 0 || y0 >= h || y0 + 8 <= 0) {
            out.fill(cval);
            return;
        }
        // `borderInterpolate`: clamped for BORDER_REPLICATE, "none" (-1) for BORDER_CONSTANT.
        let at = |p: i32, len: i32| -> Option<usize> {
            if (0..len).contains(&p) {
                Some(p as usize)
            } else if replicate {
                Some(p.clamp(0, len - 1) as usize)
            } else {
                None
            }
        };
        let xs: [Option<usize>; 8] = std::array::from_fn(|k| at(x0 + k as i32, w));
        let ys: [Option<usize>; 8] = std::array::from_fn(|k| at(y0 + k as i32, h));
        for (c, o) in out.iter_mut().enumerate() {
            let cv = i32::from(cval);
            let mut sum = cv * INTER_REMAP_COEF_SCALE;
            for (yi, wr) in ys.iter().zip(wt.chunks_exact(8)) {
                let Some(yi) = yi else { continue };
                for (xk, &wk) in xs.iter().zip(wr) {
                    if let Some(xk) = xk {
                        sum += (i32::from(src[(yi * sw + xk) * CN + c]) - cv) * i32::from(wk);
                    }
                }
            }
            *o = cast(sum);
        }
    });
    dst
}

// ---------------------------------------------------------------------------------------------
// fillConvexPoly and convexHull.

const XY_SHIFT: i64 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// `clipLine(Size2l, Point2l&, Point2l&)` (imgproc/src/drawing.cpp): Cohen–Sutherland against
/// `[0, w−1] × [0, h−1]`, intersections computed in double and truncated toward zero.
fn clip_line(w: i64, h: i64, p1: &mut [i64; 2], p2: &mut [i64; 2]) -> bool {
    if w <= 0 || h <= 0 {
        return false;
    }
    let (right, bottom) = (w - 1, h - 1);
    let [mut x1, mut y1] = *p1;
    let [mut x2, mut y2] = *p2;
    let xcode = |x: i64| i32::from(x < 0) + i32::from(x > right) * 2;
    let ycode = |y: i64| i32::from(y < 0) * 4 + i32::from(y > bottom) * 8;
    let mut c1 = xcode(x1) + ycode(y1);
    let mut c2 = xcode(x2) + ycode(y2);
    let cut = |a: i64, b: i64, num: i64, den: i64| (a as f64 * num as f64 / den as f64) as i64 + b;
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            x1 = cut(a - y1, x1, x2 - x1, y2 - y1);
            y1 = a;
            c1 = xcode(x1);
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            x2 = cut(a - y2, x2, x2 - x1, y2 - y1);
            y2 = a;
            c2 = xcode(x2);
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                y1 = cut(a - x1, y1, y2 - y1, x2 - x1);
                x1 = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                y2 = cut(a - x2, y2, y2 - y1, x2 - x1);
                x2 = a;
                c2 = 0;
            }
        }
    }
    *p1 = [x1, y1];
    *p2 = [x2, y2];
    (c1 | c2) == 0
}

/// `Line(img, pt1, pt2, color, 8)` (imgproc/src/drawing.cpp) through `LineIterator` with
/// `leftToRight = true`: clipped to the image, then Bresenham with OpenCV's error term.
fn draw_line_8(dst: &mut [f32], w: usize, h: usize, p1: [i32; 2], p2: [i32; 2], value: f32) {
    let (mut a, mut b) = (
        [i64::from(p1[0]), i64::from(p1[1])],
        [i64::from(p2[0]), i64::from(p2[1])],
    );
    let outside = |p: [i64; 2]| p[0] < 0 || p[0] >= w as i64 || p[1] < 0 || p[1] >= h as i64;
    if (outside(a) || outside(b)) && !clip_line(w as i64, h as i64, &mut a, &mut b) {
        return;
    }
    let (mut dx, mut dy) = (b[0] - a[0], b[1] - a[1]);
    let (mut delta_x, mut delta_y) = (1i64, 1i64);
    let mut p = a;
    if dx < 0 {
        dx = -dx;
        dy = -dy;
        p = b;
    }
    if dy < 0 {
        dy = -dy;
        delta_y = -1;
    }
    let vert = dy > dx;
    if vert {
        std::mem::swap(&mut dx, &mut dy);
        std::mem::swap(&mut delta_x, &mut delta_y);
    }
    let mut err = dx - 2 * dy;
    let (plus_delta, minus_delta) = (2 * dx, -2 * dy);
    for _ in 0..=dx {
        if (0..w as i64).contains(&p[0]) && (0..h as i64).contains(&p[1]) {
            dst[p[1] as usize * w + p[0] as usize] = value;
        }
        let plus = err < 0;
        err += minus_delta + if plus { plus_delta } else { 0 };
        if vert {
            p[1] += delta_x;
            if plus {
                p[0] += delta_y;
            }
        } else {
            p[0] += delta_x;
            if plus {
                p[1] += delta_y;
            }
        }
    }
}

/// `cv2.fillConvexPoly(img, pts, value)` on a single-channel `CV_32F` image with the defaults
/// (`lineType = LINE_8`, `shift = 0`), pixel for pixel (imgproc/src/drawing.cpp, `FillConvexPoly`).
///
/// Like OpenCV it first draws every edge (including the closing one) as an 8-connected line, then
/// fills scan lines between two edge walkers that start at the topmost vertex and step in 16.16
/// fixed point (`x` starts at the vertex, `dx = round-toward-zero((Δx·2 + Δy) / (2·Δy))`), each
/// span `[(xl + ½) >> 16, (xr + ½) >> 16]` clipped to the image. Fewer than three points draw only
/// the lines. Points outside the image are fine; the polygon is assumed convex (as OpenCV
/// assumes).
///
/// # Panics
/// If `dst.len() != w * h`.
pub fn fill_convex_poly(dst: &mut [f32], w: usize, h: usize, pts: &[[i32; 2]], value: f32) {
    check_len("fill_convex_poly dst", dst.len(), w * h);
    let npts = pts.len();
    if npts == 0 {
        return;
    }
    let delta1 = XY_ONE >> 1;
    let delta2 = XY_ONE >> 1;
    let (mut xmin, mut xmax) = (pts[0][0], pts[0][0]);
    let (mut ymin, mut ymax) = (pts[0][1], pts[0][1]);
    let mut imin = 0usize;
    let mut p0 = pts[npts - 1];
    for (i, &p) in pts.iter().enumerate() {
        if p[1] < ymin {
            ymin = p[1];
            imin = i;
        }
        ymax = ymax.max(p[1]);
        xmax = xmax.max(p[0]);
        xmin = xmin.min(p[0]);
        draw_line_8(dst, w, h, p0, p, value);
        p0 = p;
    }
    if npts < 3
        || xmax < 0
        || ymax < 0
        || i64::from(xmin) >= w as i64
        || i64::from(ymin) >= h as i64
    {
        return;
    }
    let ymax = i64::from(ymax).min(h as i64 - 1);

    #[derive(Clone, Copy)]
    struct Edge {
        idx: usize,
        di: usize,
        x: i64,
        dx: i64,
        ye: i64,
    }
    let mut y = i64::from(ymin);
    let mut edge = [
        Edge {
            idx: imin,
            di: 1,
            x: -XY_ONE,
            dx: 0,
            ye: y,
        },
        Edge {
            idx: imin,
            di: npts - 1,
            x: -XY_ONE,
            dx: 0,
            ye: y,
        },
    ];
    let mut edges = npts as i64;
    loop {
        for e in &mut edge {
            if y < e.ye {
                continue;
            }
            let mut idx0 = e.idx;
            let mut idx = (idx0 + e.di) % npts;
            // `for (; edges-- > 0; )`: the edge budget is shared by both walkers.
            loop {
                let more = edges > 0;
                edges -= 1;
                if !more {
                    break;
                }
                let ty = i64::from(pts[idx][1]);
                if ty > y {
                    let xs = i64::from(pts[idx0][0]) << XY_SHIFT;
                    let xe = i64::from(pts[idx][0]) << XY_SHIFT;
                    e.ye = ty;
                    e.dx = ((xe - xs) * 2 + (ty - y)) / (2 * (ty - y));
                    e.x = xs;
                    e.idx = idx;
                    break;
                }
                idx0 = idx;
                idx = (idx + e.di) % npts;
            }
        }
        if edges < 0 {
            break;
        }
        if y >= 0 {
            let (left, right) = if edge[0].x > edge[1].x {
                (1, 0)
            } else {
                (0, 1)
            };
            let xx1 = ((edge[left].x + delta1) >> XY_SHIFT) as i32;
            let xx2 = ((edge[right].x + delta2) >> XY_SHIFT) as i32;
            if xx2 >= 0 && i64::from(xx1) < w as i64 {
                let x1 = xx1.max(0) as usize;
                let x2 = (i64::from(xx2)).min(w as i64 - 1) as usize;
                if x1 <= x2 {
                    let row = y as usize * w;
                    dst[row + x1..=row + x2].fill(value);
                }
            }
        }
        edge[0].x += edge[0].dx;
        edge[1].x += edge[1].dx;
        y += 1;
        if y > ymax {
            break;
        }
    }
}

/// `Sklansky_<int, int64>` (imgproc/src/convhull.cpp): one monotone chain of the hull over the
/// x-sorted points `sorted[start..=end]`, written into `stack`; returns its length.
fn sklansky(
    pts: &[[i32; 2]],
    sorted: &[usize],
    start: i32,
    end: i32,
    stack: &mut [i32],
    nsign: i32,
    sign2: i32,
) -> usize {
    let at = |i: i32| pts[sorted[i as usize]];
    let incr = if end > start { 1 } else { -1 };
    let (mut pprev, mut pcur, mut pnext) = (start, start + incr, start + 2 * incr);
    if start == end || at(start) == at(end) {
        stack[0] = start;
        return 1;
    }
    stack[0] = pprev;
    stack[1] = pcur;
    stack[2] = pnext;
    let mut stacksize = 3usize;
    let end = end + incr;
    while pnext != end {
        let cury = at(pcur)[1];
        let nexty = at(pnext)[1];
        let by = nexty.wrapping_sub(cury);
        if by.signum() != nsign {
            let ax = at(pcur)[0].wrapping_sub(at(pprev)[0]);
            let bx = at(pnext)[0].wrapping_sub(at(pcur)[0]);
            let ay = cury.wrapping_sub(at(pprev)[1]);
            let convexity = i64::from(ay) * i64::from(bx) - i64::from(ax) * i64::from(by);
            if convexity.signum() as i32 == sign2 && (ax != 0 || ay != 0) {
                pprev = pcur;
                pcur = pnext;
                pnext += incr;
                stack[stacksize] = pnext;
                stacksize += 1;
            } else if pprev == start {
                pcur = pnext;
                stack[1] = pcur;
                pnext += incr;
                stack[2] = pnext;
            } else {
                stack[stacksize - 2] = pnext;
                pcur = pprev;
                pprev = stack[stacksize - 4];
                stacksize -= 1;
            }
        } else {
            pnext += incr;
            stack[stacksize - 1] = pnext;
        }
    }
    stacksize - 1
}

/// `cv2.convexHull(pts)` for integer points with the defaults (`clockwise=False`,
/// `returnPoints=True`): the same points in the same order (imgproc/src/convhull.cpp,
/// `cv::convexHull`: Sklansky's scan over the points sorted by `(x, y, input index)`, upper then
/// lower chains, then OpenCV's cyclic shift towards ascending input indices). Collinear points on
/// an edge are dropped, duplicates collapse. The order matters to [`fill_convex_poly`] only
/// through which vertex starts the scan, and the point set matters through the edge stepping, so
/// both are kept identical.
pub fn convex_hull_i32(pts: &[[i32; 2]]) -> Vec<[i32; 2]> {
    let total = pts.len();
    if total == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<usize> = (0..total).collect();
    sorted.sort_unstable_by_key(|&i| (pts[i][0], pts[i][1], i));
    let (mut miny, mut maxy) = (0usize, 0usize);
    for i in 1..total {
        let y = pts[sorted[i]][1];
        if pts[sorted[miny]][1] > y {
            miny = i;
        }
        if pts[sorted[maxy]][1] < y {
            maxy = i;
        }
    }
    let mut hull: Vec<usize> = Vec::with_capacity(total);
    // OpenCV's stack has total + 2 entries; a little slack keeps a surprise from panicking.
    let mut stack = vec![0i32; total + 8];
    if pts[sorted[0]] == pts[sorted[total - 1]] {
        hull.push(0);
    } else {
        let last = total as i32 - 1;
        // "Upper" half (OpenCV's name; y grows downwards): the chains from the leftmost and the
        // rightmost point to the point of largest y.
        let tl_count = sklansky(pts, &sorted, 0, maxy as i32, &mut stack, -1, 1);
        let tr_count = sklansky(
            pts,
            &sorted,
            last,
            maxy as i32,
            &mut stack[tl_count..],
            -1,
            -1,
        );
        // clockwise == false: the chains trade places.
        let (tl_off, tl_count, tr_off, tr_count) = (tl_count, tr_count, 0usize, tl_count);
        for i in 0..tl_count.saturating_sub(1) {
            hull.push(sorted[stack[tl_off + i] as usize]);
        }
        for i in (1..tr_count).rev() {
            hull.push(sorted[stack[tr_off + i] as usize]);
        }
        let stop_idx = if tr_count > 2 {
            stack[tr_off + 1]
        } else if tl_count > 2 {
            stack[tl_off + tl_count - 2]
        } else {
            -1
        };

        // Lower half.
        let mut bl_count = sklansky(pts, &sorted, 0, miny as i32, &mut stack, 1, -1);
        let br_off = bl_count;
        let mut br_count = sklansky(pts, &sorted, last, miny as i32, &mut stack[br_off..], 1, 1);
        if stop_idx >= 0 {
            let check_idx = if bl_count > 2 {
                stack[1]
            } else if bl_count + br_count > 2 {
                stack[br_off + 2 - bl_count]
            } else {
                -1
            };
            let same = |a: i32, b: i32| pts[sorted[a as usize]] == pts[sorted[b as usize]];
            if check_idx == stop_idx || (check_idx >= 0 && same(check_idx, stop_idx)) {
                // All points on one line: the lower chain mirrors the upper one.
                bl_count = bl_count.min(2);
                br_count = br_count.min(2);
            }
        }
        for i in 0..bl_count.saturating_sub(1) {
            hull.push(sorted[stack[i] as usize]);
        }
        for i in (1..br_count).rev() {
            hull.push(sorted[stack[br_off + i] as usize]);
        }

        // Cyclic shift so that the input indices ascend or descend, where they can.
        let nout = hull.len();
        if nout >= 3 {
            let (mut min_idx, mut max_idx, mut lt) = (0usize, 0usize, 0usize);
            for i in 1..nout {
                let idx = hull[i];
                lt += usize::from(hull[i - 1] < idx);
                if lt > 1 && lt + 2 <= i {
                    break;
                }
                if idx < hull[min_idx] {
                    min_idx = i;
                }
                if idx > hull[max_idx] {
                    max_idx = i;
                }
            }
            let mmdist = max_idx.abs_diff(min_idx);
            if (mmdist == 1 || mmdist == nout - 1) && (lt <= 1 || lt + 2 >= nout) {
                let ascending = (max_idx + 1) % nout == min_idx;
                let i0 = if ascending { min_idx } else { max_idx };
                if i0 > 0 {
                    let mut shifted = Vec::with_capacity(nout);
                    let mut j = i0;
                    let mut i = 0;
                    while i < nout {
                        let curr = hull[j];
                        shifted.push(curr);
                        let next_j = if j + 1 < nout { j + 1 } else { 0 };
                        if i < nout - 1 && ascending != (curr < hull[next_j]) {
                            break;
                        }
                        j = next_j;
                        i += 1;
                    }
                    if i == nout {
                        hull = shifted;
                    }
                }
            }
        }
    }
    hull.into_iter().map(|i| pts[i]).collect()
}

// ---------------------------------------------------------------------------------------------
// GaussianBlur on CV_32F.

/// The kernel size `cv2.GaussianBlur(src, (0, 0), sigma)` picks for a float image
/// (imgproc/src/smooth.dispatch.cpp, `createGaussianKernels`): `cvRound(sigma·4·2 + 1) | 1`
/// (8-bit images use 3 instead of 4). `sigma = 5` gives 41.
///
/// # Panics
/// If `sigma` is not a positive finite number.
pub fn gaussian_ksize_f32(sigma: f64) -> usize {
    assert!(
        sigma.is_finite() && sigma > 0.0,
        "gaussian sigma is {sigma}, expected a positive number"
    );
    (cv_round(sigma * 4.0 * 2.0 + 1.0) | 1) as usize
}

/// `cv2.getGaussianKernel(n, sigma, cv2.CV_32F)` for `sigma > 0`, the taps `GaussianBlur` uses on
/// float images (imgproc/src/smooth.dispatch.cpp, `getGaussianKernelBitExact`): in double,
/// `exp(x²·(−0.125/σ²))` for `x = 1−n, 3−n, …` (twice the offset, hence 0.125), the half-sum
/// doubled plus the centre's 1, each tap times `1/sum`, then rounded to `f32`.
///
/// OpenCV evaluates `exp` with its `softdouble` routine and Rust with the C library's; the two may
/// differ in the last bit of a double, which the rounding to `f32` hides (the tests compare the
/// taps bit for bit).
///
/// # Panics
/// If `n` is zero or `sigma` is not a positive finite number.
pub fn gaussian_kernel_f32(n: usize, sigma: f64) -> Vec<f32> {
    assert!(n > 0, "gaussian kernel size is 0");
    assert!(
        sigma.is_finite() && sigma > 0.0,
        "gaussian sigma is {sigma}, expected a positive number"
    );
    let scale2x = -0.125 / (sigma * sigma);
    let half = (n - 1) / 2;
    let values: Vec<f64> = (0..half)
        .map(|i| {
            let x = 1 - n as i64 + 2 * i as i64;
            ((x * x) as f64 * scale2x).exp()
        })
        .collect();
    let mut sum = 0.0f64;
    for v in &values {
        sum += v;
    }
    sum *= 2.0;
    sum += 1.0;
    if n.is_multiple_of(2) {
        sum += 1.0;
    }
    let mul1 = 1.0 / sum;
    let mut out = vec![0f32; n];
    for (i, v) in values.iter().enumerate() {
        let t = (v * mul1) as f32;
        out[i] = t;
        out[n - 1 - i] = t;
    }
    out[half] = mul1 as f32;
    if n.is_multiple_of(2) {
        out[half + 1] = out[half];
    }
    out
}

/// `fma(a, b, c)` in `f32`: the product is exact in `f64` and the sum is rounded there first, so
/// this agrees with a true single-rounding FMA except in the rare double-rounding tie.
#[inline(always)]
fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

/// `cv2.GaussianBlur(src, (0, 0), sigma)` on a single-channel `CV_32F` image
/// (`borderType = BORDER_DEFAULT`, i.e. `BORDER_REFLECT_101`). Same as
/// [`gaussian_blur_f32_rect`] over the whole image.
///
/// # Panics
/// If `src.len() != w * h`, a side is zero, or `sigma` is not a positive finite number.
pub fn gaussian_blur_f32(src: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    gaussian_blur_f32_rect(src, w, h, sigma, Rect::full(w, h))
}

/// [`gaussian_blur_f32`] evaluated only inside `rect`: returns `rect.width × rect.height` values
/// (row-major), equal to the same pixels of the full blur. Rows and columns outside `rect` are
/// read as the filter needs them but never filtered, so a mask blurred only around a face costs
/// only the face's area.
///
/// OpenCV's path (imgproc/src/smooth.dispatch.cpp `GaussianBlur` → filter.dispatch.cpp
/// `sepFilter2D` → filter.simd.hpp; the IPP Gaussian is compiled out unless OpenCV is built with
/// `OPENCV_IPP_GAUSSIAN_BLUR`, and the golden script checks that IPP changes nothing): the taps of
/// [`gaussian_kernel_f32`] both ways; borders reflected (`101`); then
///
/// - row pass, `RowFilter<float, float, RowVec_32f>`: `s = k₀·x₀; s = fma(kᵢ, xᵢ, s)` over all
///   `n` taps (no use of the symmetry);
/// - column pass, `SymmColumnFilter<…, SymmColumnVec_32f>`: `s = k_c·y₀;
///   s = fma(k_j, y_j + y_−j, s)` for `j = 1..=n/2`;
/// - for 3 and 5 taps (`sigma < 0.5625`) OpenCV's "small" filters with their own orders, which
///   differ between its SIMD part, its scalar loop over column pairs and a last odd column;
///   followed here too.
///
/// `fma` is a fused multiply-add, as OpenCV's AVX2/FMA3 (and NEON) kernels and its FMA-compiled
/// scalar loops compute it. That makes this bit-exact to `cv2` on such CPUs (the tests check it
/// on every pixel). On an x86 CPU without FMA, OpenCV rounds products and sums separately in the
/// same order: a few `f32` ulps apart, within 1e-6 for values in `[0, 1]`.
///
/// # Panics
/// If `src.len() != w * h`, a side is zero, `rect` is not inside the image, or `sigma` is not a
/// positive finite number.
pub fn gaussian_blur_f32_rect(src: &[f32], w: usize, h: usize, sigma: f64, rect: Rect) -> Vec<f32> {
    assert!(w > 0 && h > 0, "gaussian image {w}x{h} is empty");
    check_len("gaussian_blur_f32 src", src.len(), w * h);
    assert!(
        rect.x + rect.width <= w && rect.y + rect.height <= h,
        "gaussian rect {rect:?} is not inside the {w}x{h} image"
    );
    let n = gaussian_ksize_f32(sigma);
    // GaussianBlur drops the filter along a side of length 1 (non-constant borders).
    let kx = if w == 1 {
        vec![1.0]
    } else {
        gaussian_kernel_f32(n, sigma)
    };
    let ky = if h == 1 {
        vec![1.0]
    } else {
        gaussian_kernel_f32(n, sigma)
    };
    let (rx, ry) = (kx.len() / 2, ky.len() / 2);
    let (rw, rh) = (rect.width, rect.height);
    if rw == 0 || rh == 0 {
        return Vec::new();
    }

    // Row pass over the source rows the column pass will read.
    let mut rows = vec![0f32; (rh + 2 * ry) * rw];
    let mut pad = vec![0f32; rw + 2 * rx];
    for (t, out) in rows.chunks_exact_mut(rw).enumerate() {
        let sy = reflect101(rect.y as isize + t as isize - ry as isize, h);
        let line = &src[sy * w..(sy + 1) * w];
        let first = rect.x as isize - rx as isize;
        for (k, p) in pad.iter_mut().enumerate() {
            *p = line[reflect101(first + k as isize, w)];
        }
        if kx.len() <= 5 {
            small_row_pass(out, &pad, &kx, rect.x, w);
            continue;
        }
        for (o, &p) in out.iter_mut().zip(&pad[..rw]) {
            *o = kx[0] * p;
        }
        for (k, &kk) in kx.iter().enumerate().skip(1) {
            for (o, &p) in out.iter_mut().zip(&pad[k..k + rw]) {
                *o = fma_f32(p, kk, *o);
            }
        }
    }

    // Symmetric column pass.
    let mut dst = vec![0f32; rw * rh];
    let kc = ky[ry];
    for (i, out) in dst.chunks_exact_mut(rw).enumerate() {
        let centre = &rows[(i + ry) * rw..(i + ry + 1) * rw];
        if ky.len() == 3 {
            // SymmColumnSmallFilter / SymmColumnSmallVec_32f: the neighbours' pair last, in the
            // SIMD part and in the scalar tail alike.
            let below = &rows[(i + 2) * rw..(i + 3) * rw];
            let above = &rows[i * rw..(i + 1) * rw];
            for (((o, &c), &a), &b) in out.iter_mut().zip(centre).zip(above).zip(below) {
                *o = fma_f32(a + b, ky[2], c * kc);
            }
            continue;
        }
        for (o, &v) in out.iter_mut().zip(centre) {
            *o = v * kc;
        }
        for j in 1..=ry {
            let below = &rows[(i + ry + j) * rw..(i + ry + j + 1) * rw];
            let above = &rows[(i + ry - j) * rw..(i + ry - j + 1) * rw];
            let kk = ky[ry + j];
            for ((o, &b), &a) in out.iter_mut().zip(below).zip(above) {
                *o = fma_f32(b + a, kk, *o);
            }
        }
    }
    dst
}

/// The row pass for kernels of 3 or 5 taps, which OpenCV routes to `SymmRowSmallFilter` /
/// `SymmRowSmallVec_32f` (filter.simd.hpp), each part with its own summation order: the SIMD part
/// (all but the last `w % 8` columns) and the scalar loop over pairs of columns start from the
/// nearest neighbours' product, a last odd column from the centre's. `pad` holds the row with the
/// reflected border, `x0` is the first column's position in the `w`-wide image.
fn small_row_pass(out: &mut [f32], pad: &[f32], k: &[f32], x0: usize, w: usize) {
    let r = k.len() / 2;
    let simd_end = w / 8 * 8;
    let pairs_end = simd_end + (w - simd_end) / 2 * 2;
    for (j, o) in out.iter_mut().enumerate() {
        let c = pad[j + r];
        let pair = |d: usize| pad[j + r - d] + pad[j + r + d];
        let x = x0 + j;
        *o = match r {
            0 => k[0] * c,
            1 if x < pairs_end => fma_f32(c, k[1], pair(1) * k[2]),
            2 if x < pairs_end => fma_f32(pair(2), k[4], fma_f32(c, k[2], pair(1) * k[3])),
            _ => {
                let mut s = k[r] * c;
                for d in 1..=r {
                    s = fma_f32(pair(d), k[r + d], s);
                }
                s
            }
        };
    }
}

// ---------------------------------------------------------------------------------------------
// resize.

const INTER_RESIZE_COEF_BITS: i32 = 11;
const INTER_RESIZE_COEF_SCALE: i32 = 1 << INTER_RESIZE_COEF_BITS;

fn check_resize(
    what: &str,
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    dw: usize,
    dh: usize,
) {
    assert!(
        (1..=4).contains(&channels),
        "{what}: channels is {channels}, expected 1 to 4"
    );
    assert!(
        sw > 0 && sh > 0 && dw > 0 && dh > 0,
        "{what}: sizes {sw}x{sh} -> {dw}x{dh} include an empty side"
    );
    check_len(what, src.len(), sw * sh * channels);
}

/// `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA)` on `CV_8U` images with `channels`
/// interleaved channels (1 to 4), for any sizes (imgproc/src/resize.cpp, `hal::resize`):
///
/// - same size: a copy;
/// - integer factors (`512 → 256`): `resizeAreaFast_`; for 2×2 blocks `(a + b + c + d + 2) >> 2`,
///   otherwise `cvRound(sum · (1/area as f32))`;
/// - other shrinking factors: `resizeArea_` with `computeResizeAreaTab`'s `f32` coverage weights,
///   accumulated in `f32` in OpenCV's order and rounded half to even;
/// - enlarging along either axis: OpenCV's bilinear path with `INTER_AREA`'s coefficients
///   (`HResizeLinear` + `VResizeLinear<uchar, int, short, …>` in 11-bit fixed point).
///
/// IPP's "super sampling" is not used by OpenCV for `INTER_AREA` unless inexact IPP is enabled,
/// so this is what `cv2` runs.
///
/// # Panics
/// If `src.len() != sw * sh * channels`, a size is zero, or `channels` is not 1 to 4.
pub fn resize_area_u8(
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    check_resize("resize_area_u8 src", src, sw, sh, channels, dw, dh);
    if sw == dw && sh == dh {
        return src.to_vec();
    }
    let inv_scale_x = dw as f64 / sw as f64;
    let inv_scale_y = dh as f64 / sh as f64;
    let scale_x = 1.0 / inv_scale_x;
    let scale_y = 1.0 / inv_scale_y;
    let iscale_x = cv_round(scale_x);
    let iscale_y = cv_round(scale_y);
    let is_area_fast = (scale_x - f64::from(iscale_x)).abs() < f64::EPSILON
        && (scale_y - f64::from(iscale_y)).abs() < f64::EPSILON;
    if scale_x >= 1.0 && scale_y >= 1.0 {
        if is_area_fast {
            return resize_area_fast(
                src,
                sw,
                sh,
                channels,
                dw,
                dh,
                iscale_x as usize,
                iscale_y as usize,
            );
        }
        return resize_area_general(src, sw, sh, channels, dw, dh, scale_x, scale_y);
    }
    resize_linear_area_mode(
        src,
        sw,
        sh,
        channels,
        dw,
        dh,
        scale_x,
        scale_y,
        inv_scale_x,
        inv_scale_y,
    )
}

/// `resizeAreaFast_Invoker` with `ResizeAreaFastVec` (imgproc/src/resize.cpp).
#[allow(clippy::too_many_arguments)]
fn resize_area_fast(
    src: &[u8],
    sw: usize,
    sh: usize,
    cn: usize,
    dw: usize,
    dh: usize,
    isx: usize,
    isy: usize,
) -> Vec<u8> {
    let area = isx * isy;
    let scale = 1.0f32 / area as f32;
    let swidth = sw * cn;
    let dwidth = dw * cn;
    let dwidth1 = (sw / isx) * cn;
    let fast_mode = isx == 2 && isy == 2 && matches!(cn, 1 | 3 | 4);
    let mut dst = vec![0u8; dwidth * dh];
    for (dy, out) in dst.chunks_exact_mut(dwidth).enumerate() {
        let sy0 = dy * isy;
        if sy0 >= sh {
            continue; // rows past the source are 0
        }
        let full = if sy0 + isy <= sh { dwidth1 } else { 0 };
        let row = |y: usize| &src[y * swidth..(y + 1) * swidth];
        for (dx, o) in out.iter_mut().enumerate().take(full) {
            let (p, c) = (dx / cn, dx % cn);
            if fast_mode {
                let (s, n) = (row(sy0), row(sy0 + 1));
                let i = 2 * p * cn + c;
                let sum =
                    u32::from(s[i]) + u32::from(s[i + cn]) + u32::from(n[i]) + u32::from(n[i + cn]);
                *o = ((sum + 2) >> 2) as u8;
            } else {
                let mut sum = 0i32;
                for sy in 0..isy {
                    let s = row(sy0 + sy);
                    for sx in 0..isx {
                        sum += i32::from(s[(p * isx + sx) * cn + c]);
                    }
                }
                *o = sat_u8(cv_round_f32(sum as f32 * scale).into());
            }
        }
        // Partial blocks at the right/bottom edge: the mean of the pixels that exist.
        for (dx, o) in out.iter_mut().enumerate().skip(full) {
            let (p, c) = (dx / cn, dx % cn);
            let sx0 = p * isx * cn + c;
            let (mut sum, mut count) = (0i32, 0i32);
            for sy in 0..isy {
                if sy0 + sy >= sh {
                    break;
                }
                let s = row(sy0 + sy);
                for sx in 0..isx {
                    if sx0 + sx * cn >= swidth {
                        break;
                    }
                    sum += i32::from(s[sx0 + sx * cn]);
                    count += 1;
                }
            }
            *o = if count == 0 {
                0
            } else {
                sat_u8(cv_round_f32(sum as f32 / count as f32).into())
            };
        }
    }
    dst
}

/// One entry of `computeResizeAreaTab` (imgproc/src/resize.cpp): destination index, source
/// index, weight.
struct AreaTap {
    di: usize,
    si: usize,
    alpha: f32,
}

fn resize_area_tab(ssize: usize, dsize: usize, cn: usize, scale: f64) -> Vec<AreaTap> {
    let mut tab = Vec::with_capacity(ssize * 2);
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell_width = scale.min(ssize as f64 - fsx1);
        let mut sx1 = cv_ceil(fsx1);
        let mut sx2 = cv_floor(fsx2);
        sx2 = sx2.min(ssize as i32 - 1);
        sx1 = sx1.min(sx2);
        if f64::from(sx1) - fsx1 > 1e-3 {
            tab.push(AreaTap {
                di: dx * cn,
                si: (sx1 - 1) as usize * cn,
                alpha: ((f64::from(sx1) - fsx1) / cell_width) as f32,
            });
        }
        for sx in sx1..sx2 {
            tab.push(AreaTap {
                di: dx * cn,
                si: sx as usize * cn,
                alpha: (1.0 / cell_width) as f32,
            });
        }
        if fsx2 - f64::from(sx2) > 1e-3 {
            tab.push(AreaTap {
                di: dx * cn,
                si: sx2 as usize * cn,
                alpha: ((fsx2 - f64::from(sx2)).min(1.0).min(cell_width) / cell_width) as f32,
            });
        }
    }
    tab
}

/// `ResizeArea_Invoker<uchar, float>` (imgproc/src/resize.cpp).
#[allow(clippy::too_many_arguments)]
fn resize_area_general(
    src: &[u8],
    sw: usize,
    sh: usize,
    cn: usize,
    dw: usize,
    dh: usize,
    scale_x: f64,
    scale_y: f64,
) -> Vec<u8> {
    let xtab = resize_area_tab(sw, dw, cn, scale_x);
    let ytab = resize_area_tab(sh, dh, 1, scale_y);
    let dwidth = dw * cn;
    let mut dst = vec![0u8; dwidth * dh];
    let mut buf = vec![0f32; dwidth];
    let mut sum = vec![0f32; dwidth];
    let store = |sum: &[f32], dst: &mut [u8], dy: usize| {
        for (o, &s) in dst[dy * dwidth..(dy + 1) * dwidth].iter_mut().zip(sum) {
            *o = sat_u8(cv_round_f32(s).into());
        }
    };
    let mut prev_dy = ytab.first().map_or(0, |t| t.di);
    for t in &ytab {
        let (beta, dy, sy) = (t.alpha, t.di, t.si);
        let s = &src[sy * sw * cn..(sy + 1) * sw * cn];
        buf.fill(0.0);
        for x in &xtab {
            for c in 0..cn {
                buf[x.di + c] += f32::from(s[x.si + c]) * x.alpha;
            }
        }
        if dy != prev_dy {
            store(&sum, &mut dst, prev_dy);
            for (o, &b) in sum.iter_mut().zip(&buf) {
                *o = beta * b;
            }
            prev_dy = dy;
        } else {
            for (o, &b) in sum.iter_mut().zip(&buf) {
                *o += beta * b;
            }
        }
    }
    store(&sum, &mut dst, prev_dy);
    dst
}

/// `INTER_AREA` when enlarging: `hal::resize`'s linear path in "area mode" (coefficients from
/// the pixel overlap), `HResizeLinear<uchar, int, short, 2048>` and the 8-bit `VResizeLinear`
/// (imgproc/src/resize.cpp).
#[allow(clippy::too_many_arguments)]
fn resize_linear_area_mode(
    src: &[u8],
    sw: usize,
    sh: usize,
    cn: usize,
    dw: usize,
    dh: usize,
    scale_x: f64,
    scale_y: f64,
    inv_scale_x: f64,
    inv_scale_y: f64,
) -> Vec<u8> {
    let area_coeff = |d: usize, scale: f64, inv_scale: f64| {
        let s = cv_floor(d as f64 * scale);
        let f = ((d as f64 + 1.0) - f64::from(s + 1) * inv_scale) as f32;
        let f = if f <= 0.0 { 0.0 } else { f - f.floor() };
        (s, f)
    };
    let coef = |f: f32| {
        [
            i32::from(sat_i16(cv_round_f32(
                (1.0 - f) * INTER_RESIZE_COEF_SCALE as f32,
            ))),
            i32::from(sat_i16(cv_round_f32(f * INTER_RESIZE_COEF_SCALE as f32))),
        ]
    };
    let mut xofs = vec![0usize; dw];
    let mut alpha = vec![[0i32; 2]; dw];
    let mut xmax = dw;
    for dx in 0..dw {
        let (mut sx, mut fx) = area_coeff(dx, scale_x, inv_scale_x);
        if sx < 0 {
            fx = 0.0;
            sx = 0;
        }
        if sx + 1 >= sw as i32 {
            xmax = xmax.min(dx);
            if sx >= sw as i32 - 1 {
                fx = 0.0;
                sx = sw as i32 - 1;
            }
        }
        xofs[dx] = sx as usize;
        alpha[dx] = coef(fx);
    }
    let hresize = |y: usize| -> Vec<i32> {
        let s = &src[y * sw * cn..(y + 1) * sw * cn];
        let mut out = vec![0i32; dw * cn];
        for dx in 0..dw {
            for c in 0..cn {
                let i = xofs[dx] * cn + c;
                out[dx * cn + c] = if dx < xmax {
                    i32::from(s[i]) * alpha[dx][0] + i32::from(s[i + cn]) * alpha[dx][1]
                } else {
                    i32::from(s[i]) * INTER_RESIZE_COEF_SCALE
                };
            }
        }
        out
    };
    let mut dst = vec![0u8; dw * cn * dh];
    for (dy, out) in dst.chunks_exact_mut(dw * cn).enumerate() {
        let (sy, fy) = area_coeff(dy, scale_y, inv_scale_y);
        let beta = coef(fy);
        let clip = |y: i32| y.clamp(0, sh as i32 - 1) as usize;
        let (r0, r1) = (hresize(clip(sy)), hresize(clip(sy + 1)));
        for ((o, &s0), &s1) in out.iter_mut().zip(&r0).zip(&r1) {
            let v = ((beta[0] * (s0 >> 4)) >> 16) + ((beta[1] * (s1 >> 4)) >> 16) + 2;
            *o = sat_u8((v >> 2).into());
        }
    }
    dst
}

/// OpenCV's cubic convolution weights for a fractional offset `x` (imgproc/src/resize.cpp,
/// `interpolateCubic`, `A = −0.75`), evaluated in `f32` in OpenCV's operation order.
fn interpolate_cubic(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    let c3 = 1.0 - c0 - c1 - c2;
    [c0, c1, c2, c3]
}

/// `(sx, 11-bit weights)` for each destination coordinate of a cubic resize.
fn cubic_taps(ssize: usize, dsize: usize) -> Vec<(i32, [i32; 4])> {
    let scale = 1.0 / (dsize as f64 / ssize as f64);
    (0..dsize)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i32;
            let f = f - s as f32;
            let c = interpolate_cubic(f);
            let w = c.map(|c| i32::from(sat_i16(cv_round_f32(c * INTER_RESIZE_COEF_SCALE as f32))));
            (s, w)
        })
        .collect()
}

/// `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_CUBIC)` on `CV_8U` images with `channels`
/// interleaved channels (1 to 4), following OpenCV's own code (imgproc/src/resize.cpp,
/// `hal::resize` → `resizeGeneric_` with `HResizeCubic<uchar, int, short>` and
/// `VResizeCubic<…, FixedPtCast<int, uchar, 22>, VResizeCubicVec_32s8u>`):
///
/// - weights: `interpolateCubic` (`A = −0.75`) at `fx = (dx + 0.5)·(sw/dw) − 0.5` (in double, then
///   `f32`), each rounded to 11 bits (`cvRound(c · 2048)`; the four need not sum to 2048);
/// - horizontal pass in `i32`, source columns clamped to the image (replicated edge);
/// - vertical pass over 4 clamped rows: OpenCV's SIMD kernel (SSE baseline) converts to `f32`,
///   multiplies by `β/2²²` and sums `S₀β₀ + (S₁β₁ + (S₂β₂ + S₃β₃))` with separate roundings,
///   then rounds half to even and saturates; it covers the first `⌊dw·channels / 8⌋·8` values of
///   each row; the rest take the integer path `(Σ Sᵢβᵢ + 2²¹) >> 22`. Both are reproduced.
///
/// What the `cv2` wheel actually runs can differ: OpenCV first offers the job to IPP
/// (`ipp_resize`, built into the x86-64 wheels), which for `INTER_CUBIC` returns results that
/// agree with this exactly for the 2× enlargement (256 → 512, checked in the tests) but differ by
/// up to 1 LSB on some pixels for other ratios (e.g. 96 → 512). With `cv2.ipp.setUseIPP(False)`
/// this function is bit-exact for every ratio.
///
/// # Panics
/// If `src.len() != sw * sh * channels`, a size is zero, or `channels` is not 1 to 4.
pub fn resize_cubic_u8(
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    check_resize("resize_cubic_u8 src", src, sw, sh, channels, dw, dh);
    if sw == dw && sh == dh {
        return src.to_vec();
    }
    let cn = channels;
    let xt = cubic_taps(sw, dw);
    let yt = cubic_taps(sh, dh);
    let width = dw * cn;
    let swidth = sw * cn;
    let clamp_x = |x: i32| x.clamp(0, sw as i32 - 1) as usize;
    let clamp_y = |y: i32| y.clamp(0, sh as i32 - 1) as usize;
    // Horizontal pass, once per source row that some output row reads (up to four each).
    let hrows = horizontal_rows(src, sh, swidth, yt.iter().map(|&(sy, _)| sy - 1), 4, |s| {
        let mut out = vec![0i32; width];
        for (dx, &(sx, w)) in xt.iter().enumerate() {
            for c in 0..cn {
                let mut v = 0i32;
                for (j, wj) in w.iter().enumerate() {
                    v += i32::from(s[clamp_x(sx - 1 + j as i32) * cn + c]) * wj;
                }
                out[dx * cn + c] = v;
            }
        }
        out
    });
    let simd_end = width / 8 * 8;
    let scale = 1.0f32 / (INTER_RESIZE_COEF_SCALE * INTER_RESIZE_COEF_SCALE) as f32;
    let mut dst = vec![0u8; width * dh];
    for (out, &(sy, beta)) in dst.chunks_exact_mut(width).zip(&yt) {
        let rows: [&[i32]; 4] = std::array::from_fn(|k| {
            hrows[clamp_y(sy - 1 + k as i32)]
                .as_deref()
                .expect("row computed above")
        });
        let bf = beta.map(|b| b as f32 * scale);
        for (x, o) in out.iter_mut().enumerate() {
            let s = [rows[0][x], rows[1][x], rows[2][x], rows[3][x]];
            *o = if x < simd_end {
                let t = s[3] as f32 * bf[3];
                let t = s[2] as f32 * bf[2] + t;
                let t = s[1] as f32 * bf[1] + t;
                let t = s[0] as f32 * bf[0] + t;
                sat_u8(cv_round_f32(t).into())
            } else {
                let v: i64 = s
                    .iter()
                    .zip(beta)
                    .map(|(&s, b)| i64::from(s) * i64::from(b))
                    .sum();
                sat_u8(
                    (v + (1 << (2 * INTER_RESIZE_COEF_BITS - 1))) >> (2 * INTER_RESIZE_COEF_BITS),
                )
            };
        }
    }
    dst
}

/// The horizontal pass of a separable resize for every source row the vertical pass reads:
/// for each output row starting at `first` (its first tap's row), rows `first … first + taps −
/// 1` clamped to `0 … sh − 1`, each computed once by `hresize` (one source row of `row_len`
/// bytes in); rows no output reads stay `None`.
fn horizontal_rows(
    src: &[u8],
    sh: usize,
    row_len: usize,
    firsts: impl Iterator<Item = i32>,
    taps: i32,
    hresize: impl Fn(&[u8]) -> Vec<i32>,
) -> Vec<Option<Vec<i32>>> {
    let mut rows: Vec<Option<Vec<i32>>> = vec![None; sh];
    for first in firsts {
        for k in 0..taps {
            let y = (first + k).clamp(0, sh as i32 - 1) as usize;
            if rows[y].is_none() {
                rows[y] = Some(hresize(&src[y * row_len..(y + 1) * row_len]));
            }
        }
    }
    rows
}

/// `(sx, 11-bit weights)` for each destination coordinate of a Lanczos-4 resize: `sx` is the
/// source pixel at or left of `f = (d + 0.5)·(ssize/dsize) − 0.5` (double, then `f32`), the weights
/// [`interpolate_lanczos4`]`(f − sx)` each rounded to 11 bits (`cvRound(c · 2048)`; they need not
/// sum to 2048) for the pixels `sx − 3 … sx + 4`.
fn lanczos4_taps(ssize: usize, dsize: usize) -> Vec<(i32, [i32; 8])> {
    let scale = 1.0 / (dsize as f64 / ssize as f64);
    (0..dsize)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i32;
            let c = interpolate_lanczos4(f - s as f32);
            let w = c.map(|c| i32::from(sat_i16(cv_round_f32(c * INTER_RESIZE_COEF_SCALE as f32))));
            (s, w)
        })
        .collect()
}

/// `HResizeLanczos4<uchar, int, short>` (imgproc/src/resize.cpp) on one row of `CN` channels:
/// for each destination pixel `Σⱼ S[sx − 3 + j]·αⱼ` in `i32`, source columns clamped to the row
/// (OpenCV moves an outside index back by whole pixels, which is the replicated edge).
fn hresize_lanczos4<const CN: usize>(s: &[u8], xt: &[(i32, [i32; 8])]) -> Vec<i32> {
    let sw = (s.len() / CN) as i32;
    let mut out = vec![0i32; xt.len() * CN];
    for (o, &(sx, w)) in out.chunks_exact_mut(CN).zip(xt) {
        let mut v = [0i32; CN];
        if sx >= 3 && sx + 5 <= sw {
            let start = (sx - 3) as usize * CN;
            for (px, &wj) in s[start..start + 8 * CN].chunks_exact(CN).zip(&w) {
                for (v, &p) in v.iter_mut().zip(px) {
                    *v += i32::from(p) * wj;
                }
            }
        } else {
            for (j, &wj) in w.iter().enumerate() {
                let col = (sx - 3 + j as i32).clamp(0, sw - 1) as usize * CN;
                for (v, &p) in v.iter_mut().zip(&s[col..col + CN]) {
                    *v += i32::from(p) * wj;
                }
            }
        }
        o.copy_from_slice(&v);
    }
    out
}

/// `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LANCZOS4)` on `CV_8U` images with
/// `channels` interleaved channels (1 to 4): LatentSync's `resize(crop, (256, 256),
/// interpolation=INTER_LANCZOS4)` of its 210×280 face crop. Follows OpenCV's own code
/// (imgproc/src/resize.cpp, `hal::resize` → `resizeGeneric_` with `HResizeLanczos4<uchar, int,
/// short>` and `VResizeLanczos4<uchar, int, short, FixedPtCast<int, uchar, 22>, VResizeNoVec>`):
///
/// - same size: a copy (`cv::resize` copies when `dsize == ssize`);
/// - weights: OpenCV's `interpolateLanczos4` at `fx = (dx + 0.5)·(sw/dw) − 0.5` (in double, then
///   `f32`) minus its floor, each rounded to 11 bits (`cvRound(c · 2048)`);
/// - horizontal pass in `i32` over the 8 source columns `sx − 3 … sx + 4`, clamped to the image
///   (OpenCV steps an outside index back by whole pixels: the replicated edge);
/// - vertical pass over the 8 rows `sy − 3 … sy + 4`, clamped, in `i32` (no SIMD kernel for
///   `uchar` Lanczos, so the sums are exact integers), `(Σ Sᵢ·βᵢ + 2²¹) >> 22` saturated to
///   `0 … 255`.
///
/// The `cv2` wheel's IPP path does not change the result: OpenCV offers the job to IPP first,
/// and the golden script checks, for every stored case (including 210×280 → 256×256), that the
/// output is the same with `cv2.ipp.setUseIPP(False)`. So unlike [`resize_cubic_u8`] this is
/// bit-exact to what `cv2.resize` returns by default.
///
/// # Panics
/// If `src.len() != sw * sh * channels`, a size is zero, or `channels` is not 1 to 4.
pub fn resize_lanczos4_u8(
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    check_resize("resize_lanczos4_u8 src", src, sw, sh, channels, dw, dh);
    if sw == dw && sh == dh {
        return src.to_vec();
    }
    let cn = channels;
    let xt = lanczos4_taps(sw, dw);
    let yt = lanczos4_taps(sh, dh);
    let width = dw * cn;
    let swidth = sw * cn;
    let clamp_y = |y: i32| y.clamp(0, sh as i32 - 1) as usize;
    // Horizontal pass, once per source row that some output row reads.
    let hrows = horizontal_rows(
        src,
        sh,
        swidth,
        yt.iter().map(|&(sy, _)| sy - 3),
        8,
        |s| match cn {
            1 => hresize_lanczos4::<1>(s, &xt),
            2 => hresize_lanczos4::<2>(s, &xt),
            3 => hresize_lanczos4::<3>(s, &xt),
            _ => hresize_lanczos4::<4>(s, &xt),
        },
    );
    // Vertical pass. C `int` arithmetic: |Σ| stays below 2^31 (at most about 2.11e9, for 0/255
    // edges: the 11-bit taps sum to at most 2780 positive, 732 negative); `wrapping_*` mirrors
    // C, and the integer sum does not depend on the order, so it is accumulated row by row.
    let mut dst = vec![0u8; width * dh];
    let mut acc = vec![0i32; width];
    for (out, &(sy, beta)) in dst.chunks_exact_mut(width).zip(&yt) {
        acc.fill(1 << (2 * INTER_RESIZE_COEF_BITS - 1));
        for (k, &b) in beta.iter().enumerate() {
            let row = hrows[clamp_y(sy - 3 + k as i32)]
                .as_deref()
                .expect("row computed above");
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(v.wrapping_mul(b));
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = sat_u8((a >> (2 * INTER_RESIZE_COEF_BITS)).into());
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bilinear_table_cells_sum_to_one() {
        let t = bilinear_tables();
        assert_eq!(t.int[0], [32767, 0, 0, 1]);
        for cell in &t.int {
            assert_eq!(cell.iter().sum::<i32>(), INTER_REMAP_COEF_SCALE);
        }
        // Cell (fy = 8/32, fx = 16/32).
        assert_eq!(t.int[8 * 32 + 16], [12288, 12288, 4096, 4096]);
        assert_eq!(t.float[8 * 32 + 16], [0.375, 0.375, 0.125, 0.125]);
    }

    #[test]
    fn lanczos4_table_cells_sum_to_one() {
        // At 0 the centre tap's 1e30 swamps the rest: 1.0 and seven values of about 1e-30.
        let c0 = interpolate_lanczos4(0.0);
        assert_eq!(c0[3], 1.0);
        assert!(
            c0.iter()
                .enumerate()
                .all(|(i, c)| i == 3 || c.abs() < 1e-29),
            "{c0:?}"
        );
        let t = lanczos4_table();
        assert_eq!(t.len(), INTER_TAB_SIZE2);
        for cell in t {
            assert_eq!(
                cell.iter().map(|&w| i32::from(w)).sum::<i32>(),
                INTER_REMAP_COEF_SCALE
            );
        }
        // Cell 0: the centre's 1.0 saturates to 32767, the fix-up puts the missing 1 on (4, 4).
        let mut want = [0i16; 64];
        want[3 * 8 + 3] = 32767;
        want[4 * 8 + 4] = 1;
        assert_eq!(t[0], want);
        // Half a pixel both ways: symmetric about the centre, largest in the middle, except that
        // the rounding remainder (+4 here) lands on (4, 4).
        let c = &t[16 * 32 + 16];
        assert_eq!((c[3 * 8 + 3], c[4 * 8 + 4]), (12550, 12554), "{c:?}");
        for i in (0..64).filter(|&i| i != 3 * 8 + 3 && i != 4 * 8 + 4) {
            assert_eq!(c[i], c[63 - i], "{c:?}");
            assert!(c[i] <= 12550);
        }
    }

    #[test]
    fn reflect101_matches_opencv() {
        let got: Vec<usize> = (-6..10).map(|p| reflect101(p, 4)).collect();
        // OpenCV: gfedcb|abcdefgh|gfedcba on "abcd": ... 2 1 | 0 1 2 3 | 2 1 0 1 2 3 ...
        assert_eq!(got, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        assert_eq!(reflect101(-3, 1), 0);
    }

    #[test]
    fn cv_round_is_ties_to_even_and_int_min_out_of_range() {
        assert_eq!(cv_round(2.5), 2);
        assert_eq!(cv_round(3.5), 4);
        assert_eq!(cv_round(-2.5), -2);
        assert_eq!(cv_round(1e12), i32::MIN);
        assert_eq!(cv_round(f64::NAN), i32::MIN);
    }

    #[test]
    fn fill_convex_poly_square_and_triangle() {
        let (w, h) = (8, 6);
        let mut img = vec![0f32; w * h];
        fill_convex_poly(&mut img, w, h, &[[1, 1], [4, 1], [4, 3], [1, 3]], 1.0);
        let rows: Vec<String> = img
            .chunks(w)
            .map(|r| r.iter().map(|&v| if v > 0.0 { '#' } else { '.' }).collect())
            .collect();
        assert_eq!(
            rows,
            [
                "........", ".####...", ".####...", ".####...", "........", "........"
            ]
        );
        let mut img = vec![0f32; w * h];
        fill_convex_poly(&mut img, w, h, &[[0, 0], [7, 0], [0, 5]], 2.0);
        let count = img.iter().filter(|&&v| v == 2.0).count();
        // Includes the outline: more than half the 8x6 box, fewer than all.
        assert!(count > 24 && count < 48, "{count}");
    }

    #[test]
    fn convex_hull_drops_interior_and_collinear_points() {
        let pts = [[0, 0], [2, 0], [4, 0], [4, 4], [2, 2], [0, 4]];
        let hull = convex_hull_i32(&pts);
        let mut sorted = hull.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [[0, 0], [0, 4], [4, 0], [4, 4]]);
    }

    proptest! {
        #[test]
        fn identity_warp_returns_input(
            w in 1usize..20, h in 1usize..20, cn in 1usize..5, seed in any::<u64>(),
            replicate in any::<bool>(),
        ) {
            let src: Vec<u8> = (0..w * h * cn)
                .map(|i| (seed.wrapping_mul(6364136223846793005).wrapping_add((i as u64).wrapping_mul(1442695040888963407)) >> 56) as u8)
                .collect();
            let border = if replicate { Border::Replicate } else { Border::Constant(7.0) };
            let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
            prop_assert_eq!(&warp_affine_u8(&src, w, h, cn, id, false, w, h, border), &src);
            prop_assert_eq!(&warp_affine_lanczos4_u8(&src, w, h, cn, id, false, w, h, border), &src);
            let srcf: Vec<f32> = src.iter().map(|&v| f32::from(v) / 255.0).collect();
            prop_assert_eq!(&warp_affine_f32(&srcf[..w * h], w, h, id, true, w, h, border), &srcf[..w * h]);
        }

        #[test]
        fn integer_translation_shifts_pixels(
            w in 2usize..16, h in 2usize..16, tx in -5i32..5, ty in -5i32..5,
        ) {
            let src: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
            let m = [[1.0, 0.0, f64::from(tx)], [0.0, 1.0, f64::from(ty)]];
            let out = warp_affine_u8(&src, w, h, 1, m, false, w, h, Border::Constant(0.0));
            for y in 0..h as i32 {
                for x in 0..w as i32 {
                    let (sx, sy) = (x - tx, y - ty);
                    let want = if (0..w as i32).contains(&sx) && (0..h as i32).contains(&sy) {
                        src[sy as usize * w + sx as usize]
                    } else {
                        0
                    };
                    prop_assert_eq!(out[y as usize * w + x as usize], want);
                }
            }
        }

        #[test]
        fn hull_is_a_subset_and_idempotent_and_fills_without_panicking(
            pts in proptest::collection::vec((-40i32..80, -40i32..80), 1..40),
        ) {
            let pts: Vec<[i32; 2]> = pts.into_iter().map(|(x, y)| [x, y]).collect();
            let hull = convex_hull_i32(&pts);
            prop_assert!(!hull.is_empty() && hull.iter().all(|p| pts.contains(p)));
            let mut again = convex_hull_i32(&hull);
            let mut sorted = hull.clone();
            again.sort_unstable();
            sorted.sort_unstable();
            prop_assert_eq!(again, sorted);
            let mut img = vec![0f32; 40 * 30];
            fill_convex_poly(&mut img, 40, 30, &hull, 1.0);
            let inside = hull.iter().filter(|p| (0..40).contains(&p[0]) && (0..30).contains(&p[1]));
            for p in inside {
                prop_assert_eq!(img[p[1] as usize * 40 + p[0] as usize], 1.0, "vertex {:?}", p);
            }
        }

        #[test]
        fn invert_affine_round_trips(
            s in 0.3f64..3.0, a in -0.3f64..0.3, tx in -100.0f64..100.0, ty in -100.0f64..100.0,
        ) {
            let (sn, cs) = a.sin_cos();
            let m = [[s * cs, -s * sn, tx], [s * sn, s * cs, ty]];
            let back = invert_affine(invert_affine(m));
            for r in 0..2 { for c in 0..3 {
                prop_assert!((back[r][c] - m[r][c]).abs() < 1e-9);
            }}
            let wi = warp_affine_inverse(m);
            let ia = invert_affine(m);
            prop_assert_eq!(wi, [ia[0][0], ia[0][1], ia[0][2], ia[1][0], ia[1][1], ia[1][2]]);
        }

        #[test]
        fn gaussian_rect_equals_full(
            w in 1usize..24, h in 1usize..24, sigma in 0.3f64..4.0,
            x0 in 0usize..24, y0 in 0usize..24, rw in 0usize..24, rh in 0usize..24,
        ) {
            let src: Vec<f32> = (0..w * h).map(|i| ((i * 37 % 101) as f32) / 100.0).collect();
            let full = gaussian_blur_f32(&src, w, h, sigma);
            let x = x0.min(w - 1);
            let y = y0.min(h - 1);
            let rect = Rect { x, y, width: rw.min(w - x), height: rh.min(h - y) };
            let part = gaussian_blur_f32_rect(&src, w, h, sigma, rect);
            for r in 0..rect.height {
                for c in 0..rect.width {
                    prop_assert_eq!(part[r * rect.width + c].to_bits(), full[(y + r) * w + x + c].to_bits());
                }
            }
        }

        #[test]
        fn gaussian_preserves_constants(w in 1usize..30, h in 1usize..30, sigma in 0.3f64..6.0) {
            let src = vec![0.5f32; w * h];
            for v in gaussian_blur_f32(&src, w, h, sigma) {
                prop_assert!((v - 0.5).abs() < 1e-6, "{}", v);
            }
            let k = gaussian_kernel_f32(gaussian_ksize_f32(sigma), sigma);
            let sum: f64 = k.iter().map(|&v| f64::from(v)).sum();
            prop_assert!((sum - 1.0).abs() < 1e-6);
        }

        #[test]
        fn resizes_of_constant_images_are_constant(
            sw in 1usize..40, sh in 1usize..40, dw in 1usize..40, dh in 1usize..40,
            cn in 1usize..5, v in any::<u8>(),
        ) {
            let src = vec![v; sw * sh * cn];
            let area = resize_area_u8(&src, sw, sh, cn, dw, dh);
            prop_assert!(area.iter().all(|&o| o == v), "area {:?}", &area[..area.len().min(8)]);
            let cubic = resize_cubic_u8(&src, sw, sh, cn, dw, dh);
            prop_assert!(cubic.iter().all(|&o| o.abs_diff(v) <= 1), "cubic {:?}", &cubic[..cubic.len().min(8)]);
            // Lanczos-4's 11-bit taps need not sum to 2048 either.
            let l4 = resize_lanczos4_u8(&src, sw, sh, cn, dw, dh);
            prop_assert!(l4.iter().all(|&o| o.abs_diff(v) <= 1), "lanczos4 {:?}", &l4[..l4.len().min(8)]);
        }
    }
}
