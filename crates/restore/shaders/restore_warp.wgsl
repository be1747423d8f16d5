// restore_warp.wgsl: the inverse warp of restore (crates/restore), step 1 of 4.
//
// Prologue: restore_common.wgsl (`Face`, `Info`, bindings 0 and 1, `has_pixel`,
// `region_index`, `in_bbox`; the batching over the faces' regions and the dispatch), which
// crates/restore/src/wgsl.rs prepends to this file.
//
// For frame pixel p = (x, y) and q = A·p (frame → face coordinates, `a0..a5`), it writes
// - `mask[i]`: the bilinear sample at q of an R×R image of ones, zero outside it, and zero
//   outside the face's bounding box (`bx0..by1`, where the CPU path stores no values);
// - `warped[i].rgb`: the bilinear sample of the face (RGB8 bytes packed four to a u32 in
//   `face_px`, starting at byte `face_off`) at q, 127 outside the face;
// - `warped[i].a`: the paste mask's weight at q: 1 without a mask (`e_n` = 0), else the
//   distance from q to the nearest of the mask's `e_n` edge lines (`edges[e_off..]`: a corner
//   and the unit vector to the next one; positive inside) times `inv_feather`, clamped to
//   0..1 (crates/restore/src/mask.rs `mask_weight`).
// Arithmetic order matches crates/restore/src/cpu.rs and mask.rs, so results agree with the
// CPU path up to float contraction.

@group(0) @binding(2) var<storage, read> face_px: array<u32>;
@group(0) @binding(3) var<storage, read_write> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> warped: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> edges: array<vec4<f32>>;

fn mask_weight(f: Face, u: f32, v: f32) -> f32 {
    if (f.e_n == 0u) {
        return 1.0;
    }
    var d = 3.4028235e38;
    for (var k = 0u; k < f.e_n; k++) {
        let e = edges[f.e_off + k];
        d = min(d, e.z * (v - e.y) - e.w * (u - e.x));
    }
    return clamp(d * f.inv_feather, 0.0, 1.0);
}

fn ones_weight(u: f32, r: u32) -> f32 {
    let i = floor(u);
    let f = u - i;
    let n = f32(r);
    var w = 0.0;
    if (i >= 0.0 && i < n) {
        w += 1.0 - f;
    }
    if (i + 1.0 >= 0.0 && i + 1.0 < n) {
        w += f;
    }
    return w;
}

fn byte_at(i: u32) -> f32 {
    let word = face_px[i >> 2u];
    return f32((word >> ((i & 3u) * 8u)) & 255u);
}

fn texel(f: Face, x: i32, y: i32) -> vec3<f32> {
    let n = i32(f.r);
    if (x < 0 || y < 0 || x >= n || y >= n) {
        return vec3<f32>(127.0);
    }
    let i = f.face_off + (u32(y) * f.r + u32(x)) * 3u;
    return vec3<f32>(byte_at(i), byte_at(i + 1u), byte_at(i + 2u));
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (!has_pixel(gid)) { return; }
    let f = faces[gid.z];
    let i = region_index(f, gid.x, gid.y);
    let x = f.rx0 + gid.x;
    let y = f.ry0 + gid.y;
    let fx = f32(x);
    let fy = f32(y);
    let u = f.a0 * fx + f.a1 * fy + f.a2;
    let v = f.a3 * fx + f.a4 * fy + f.a5;
    var m = 0.0;
    if (in_bbox(f, i32(x), i32(y))) {
        m = ones_weight(u, f.r) * ones_weight(v, f.r);
    }
    mask[i] = m;
    let x0 = floor(u);
    let y0 = floor(v);
    let wx = u - x0;
    let wy = v - y0;
    let ix = i32(x0);
    let iy = i32(y0);
    let top = texel(f, ix, iy) * (1.0 - wx) + texel(f, ix + 1, iy) * wx;
    let bottom = texel(f, ix, iy + 1) * (1.0 - wx) + texel(f, ix + 1, iy + 1) * wx;
    warped[i] = vec4<f32>(top * (1.0 - wy) + bottom * wy, mask_weight(f, u, v));
}
