//! Test helpers: the committed test photo and synthetic frames.

use frame::{Affine2, Frame};

/// `crates/pipeline/assets/astronaut.png` (512×512 RGB8, public domain).
pub(crate) fn astronaut() -> Frame {
    rgb_png(include_bytes!("../../pipeline/assets/astronaut.png"))
}

/// `test-data/solvay-1927-row.png` (1020×200 RGB8): the front row of the 1927 Solvay group
/// photo with rustface's red face boxes (see `test-data/README.md`).
pub(crate) fn solvay_row() -> Frame {
    rgb_png(include_bytes!("../../../test-data/solvay-1927-row.png"))
}

fn rgb_png(bytes: &[u8]) -> Frame {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
    let info = reader.next_frame(&mut buf).expect("png pixels");
    assert_eq!(info.color_type, png::ColorType::Rgb, "test photos are RGB8");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "test photos are RGB8");
    buf.truncate(info.buffer_size());
    Frame::new(info.width, info.height, buf).expect("test photo frame")
}

/// Renders `src` through the similarity `t` (source → output) into a `w`×`h` frame of grey 90,
/// with the same bilinear sampling as the CPU warp.
pub(crate) fn place(src: &Frame, t: &Affine2, w: u32, h: u32) -> Frame {
    crate::warp::render(src, t, w, h, crate::warp::Border::Value(90.0))
        .expect("invertible placement")
}
