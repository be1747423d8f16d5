// restore_common.wgsl: the prologue of the per-face shaders of restore (crates/restore).
//
// Not a shader on its own: crates/restore/src/wgsl.rs prepends this file to
// restore_warp.wgsl, restore_erode.wgsl and restore_blur.wgsl, and both the pipelines and the
// naga validation test compile the joined sources. Those files start their own bindings at 2.
//
// Batched over the faces of a chunk. Every face owns a rectangle of frame pixels, its region
// (the warped face's bounding box padded by the blur radius, clipped to the frame); the
// regions of all faces are laid end to end in the per-pixel buffers (`Face.base` is the first
// pixel of a face's region, rows of `Face.rw` pixels, `region_index`). One invocation handles
// one region pixel.
// Dispatch: one 8×8 workgroup tile grid per face, gid.z = face, (gid.x, gid.y) = pixel of the
// face's region (the grid covers the largest region; invocations past a face's region return:
// `has_pixel`); its pixel index in the per-pixel buffers is i = region_index(f, gid.x, gid.y).
//
// `Face` mirrors `FaceParams` and `Info` mirrors `Info` in crates/restore/src/wgsl.rs (same
// fields in the same order): change them together.

struct Face {
    a0: f32, a1: f32, a2: f32,
    a3: f32, a4: f32, a5: f32,
    r: u32,
    face_off: u32,
    base: u32,
    frame_w: u32,
    frame_h: u32,
    rx0: u32,
    ry0: u32,
    rw: u32,
    rh: u32,
    bx0: u32,
    by0: u32,
    bx1: u32,
    by1: u32,
    w_edge: u32,
    koff: u32,
    e_off: u32,
    e_n: u32,
    inv_feather: f32,
}

struct Info {
    n_faces: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> faces: array<Face>;
@group(0) @binding(1) var<uniform> info: Info;

// Whether invocation `gid` has a pixel to handle: gid.z is a face of the batch and
// (gid.x, gid.y) lies in that face's region.
fn has_pixel(gid: vec3<u32>) -> bool {
    return gid.z < info.n_faces && gid.x < faces[gid.z].rw && gid.y < faces[gid.z].rh;
}

// Index in the per-pixel buffers of the pixel (lx, ly) of a face's region (region-local
// coordinates).
fn region_index(f: Face, lx: u32, ly: u32) -> u32 {
    return f.base + ly * f.rw + lx;
}

// Whether frame pixel (x, y) lies in the face's bounding box (`bx0..by1`).
fn in_bbox(f: Face, x: i32, y: i32) -> bool {
    return x >= i32(f.bx0) && x < i32(f.bx1) && y >= i32(f.by0) && y < i32(f.by1);
}
