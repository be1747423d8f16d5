//! The known-motion clip that `cargo xtask bench face` runs and face-proc's tests measure the
//! mesh on, in one place so that both render the same frames.
//!
//! The 512×512 test photo moves by a similarity that changes every frame (scale 1.0–1.4, roll
//! ±10°, the face sweeping ±200 px × ±60 px: up to 26 px per frame) and is placed
//! nearest-neighbour into a 1280×720 frame; a mesh point's error is its distance from where
//! the exact motion puts frame 0's.

use frame::{Affine2, Frame};

/// The clip's frame width.
pub const WIDTH: u32 = 1280;
/// The clip's frame height.
pub const HEIGHT: u32 = 720;
/// Frames in one cycle of the motion: the clip's distinct frames.
pub const FRAMES: usize = 48;

/// The photo's face centre (from the detector on the unwarped photo, rounded): the motion
/// turns and scales about it.
pub const FACE: [f64; 2] = [222.0, 118.0];

/// The clip's motions (photo → frame), one per frame.
pub fn motions() -> Vec<Affine2> {
    let about = Affine2::similarity(1.0, 0.0, -FACE[0], -FACE[1]);
    (0..FRAMES)
        .map(|i| {
            let a = i as f64 / FRAMES as f64 * std::f64::consts::TAU;
            Affine2::similarity(
                1.2 + 0.2 * a.sin(),
                (10.0 * a.cos()).to_radians(),
                640.0 + 200.0 * a.sin(),
                300.0 + 60.0 * (2.0 * a).sin(),
            )
            .after(&about)
        })
        .collect()
}

/// Places `src` through `t` (photo → frame) into a [`WIDTH`]×[`HEIGHT`] frame of grey 90,
/// nearest neighbour (fast to build).
///
/// # Panics
/// If `t` is not invertible (a motion of [`motions`] always is).
pub fn place_nearest(src: &Frame, t: &Affine2) -> Frame {
    let inv = t.inverse().expect("the motion is invertible").to_f32();
    let (sw, sh) = (src.width() as i32, src.height() as i32);
    let mut out = vec![90u8; (WIDTH * HEIGHT * 3) as usize];
    for (p, px) in out.chunks_exact_mut(3).enumerate() {
        let (x, y) = ((p as u32 % WIDTH) as f32, (p as u32 / WIDTH) as f32);
        let sx = inv[0] * x + inv[1] * y + inv[2];
        let sy = inv[3] * x + inv[4] * y + inv[5];
        let (ix, iy) = (sx.round() as i32, sy.round() as i32);
        if ix >= 0 && iy >= 0 && ix < sw && iy < sh {
            px.copy_from_slice(&src.pixel(ix as u32, iy as u32));
        }
    }
    Frame::new(WIDTH, HEIGHT, out).expect("the frame's size")
}

/// Per frame, the distance (frame pixels) between point `i` of `meshes` (one mesh per frame)
/// and where `motions` (photo → frame) put frame 0's.
///
/// # Panics
/// If `motions[0]` is not invertible, or a mesh has no point `i`.
pub fn point_errors(meshes: &[Vec<[f32; 2]>], motions: &[Affine2], i: usize) -> Vec<f64> {
    let back = motions[0].inverse().expect("motion 0 is invertible");
    let p0 = meshes[0][i];
    let photo = back.apply([f64::from(p0[0]), f64::from(p0[1])]);
    meshes
        .iter()
        .zip(motions)
        .map(|(m, t)| {
            let want = t.apply(photo);
            (f64::from(m[i][0]) - want[0]).hypot(f64::from(m[i][1]) - want[1])
        })
        .collect()
}
