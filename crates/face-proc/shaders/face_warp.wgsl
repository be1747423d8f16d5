// face_warp.wgsl: one bilinear warp per face, straight from a source frame to an R×R crop.
//
// Batched: `faces` lists every face of the batch (its source frame's byte offset in `src`,
// size, and the crop→source affine map); one invocation computes one output pixel of one
// face. Frames are RGB8 bytes packed four to a u32 (little-endian), each frame starting at a
// 4-byte-aligned offset. Output: one u32 per pixel, R | G << 8 | B << 16.
// Outside the source frame the value is 127 (the reference's border), or the nearest edge
// pixel for faces with `replicate` = 1 (FaceFusion's alignment). Arithmetic order
// matches face-proc's CPU warp (src/warp.rs) so results agree within 1 LSB.
// Dispatch: 2-D grid of 64-wide workgroups, linear index i = gid.x + gid.y * nwg.x * 64.

struct Face {
    m0: f32, m1: f32, m2: f32,
    m3: f32, m4: f32, m5: f32,
    src_offset: u32,
    width: u32,
    height: u32,
    replicate: u32,
}

struct Info {
    r: u32,
    n_faces: u32,
    total: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> faces: array<Face>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<uniform> info: Info;

fn byte_at(i: u32) -> f32 {
    let word = src[i >> 2u];
    return f32((word >> ((i & 3u) * 8u)) & 255u);
}

fn texel(f: Face, x_in: i32, y_in: i32) -> vec3<f32> {
    var x = x_in;
    var y = y_in;
    if (f.replicate != 0u) {
        x = clamp(x, 0, i32(f.width) - 1);
        y = clamp(y, 0, i32(f.height) - 1);
    } else if (x < 0 || y < 0 || x >= i32(f.width) || y >= i32(f.height)) {
        return vec3<f32>(127.0);
    }
    let i = f.src_offset + (u32(y) * f.width + u32(x)) * 3u;
    return vec3<f32>(byte_at(i), byte_at(i + 1u), byte_at(i + 2u));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= info.total) { return; }
    let per_face = info.r * info.r;
    let face = i / per_face;
    let p = i % per_face;
    let f = faces[face];
    let x = f32(p % info.r);
    let y = f32(p / info.r);
    let sx = (f.m0 * x + f.m1 * y) + f.m2;
    let sy = (f.m3 * x + f.m4 * y) + f.m5;
    let x0 = floor(sx);
    let y0 = floor(sy);
    let fx = sx - x0;
    let fy = sy - y0;
    let ix = i32(x0);
    let iy = i32(y0);
    let p00 = texel(f, ix, iy);
    let p10 = texel(f, ix + 1, iy);
    let p01 = texel(f, ix, iy + 1);
    let p11 = texel(f, ix + 1, iy + 1);
    let top = p00 + (p10 - p00) * fx;
    let bot = p01 + (p11 - p01) * fx;
    let v = clamp(floor(top + (bot - top) * fy + vec3<f32>(0.5)), vec3<f32>(0.0), vec3<f32>(255.0));
    let c = vec3<u32>(v);
    dst[i] = c.x | (c.y << 8u) | (c.z << 16u);
}
