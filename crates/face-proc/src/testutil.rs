//! Test helpers: the committed test photo and synthetic frames.

use frame::{Affine2, Frame};

pub(crate) use test_kit::{astronaut, solvay_row};

/// Renders `src` through the similarity `t` (source → output) into a `w`×`h` frame of grey 90,
/// with the same bilinear sampling as the CPU warp.
pub(crate) fn place(src: &Frame, t: &Affine2, w: u32, h: u32) -> Frame {
    crate::warp::render(src, t, w, h, crate::warp::Border::Value(90.0))
        .expect("invertible placement")
}
