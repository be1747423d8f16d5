//! Test helpers: the committed test photo and the golden inputs' resampling.

use frame::Frame;

pub(crate) use test_kit::astronaut;

/// The square (`x0`, `y0`, `side`) of `img` resampled (nearest) to the 128×128 network input,
/// optionally mirrored, in [-1, 1]: input pixel (x, y) samples source
/// (x0 + (x' · side + side / 2) / 128, y0 + (y · side + side / 2) / 128), x' = 127 − x when
/// mirrored (integer division). `tests/golden/make_golden.py` builds the same inputs.
pub(crate) fn nearest_crop(img: &Frame, x0: u32, y0: u32, side: u32, mirror: bool) -> Vec<f32> {
    const SIDE: u32 = crate::blazeface::INPUT_SIDE as u32;
    let mut out = Vec::with_capacity(crate::blazeface::INPUT_LEN);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let xs = if mirror { SIDE - 1 - x } else { x };
            let sx = (x0 + (xs * side + side / 2) / SIDE).min(img.width() - 1);
            let sy = (y0 + (y * side + side / 2) / SIDE).min(img.height() - 1);
            out.extend(img.pixel(sx, sy).map(|v| f32::from(v) / 127.5 - 1.0));
        }
    }
    out
}
