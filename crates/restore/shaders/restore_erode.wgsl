// restore_erode.wgsl: the mask erosions of restore (crates/restore), step 2 of 4.
//
// Prologue: restore_common.wgsl (`Face`, `Info`, bindings 0 and 1, `has_pixel`,
// `region_index`, `in_bbox`; the batching over the faces' regions and the dispatch), which
// crates/restore/src/wgsl.rs prepends to this file.
//
// A separable minimum filter over each face's bounding box (`bx0..by1`). `erode_rows` takes
// the minimum along x, `erode_cols` along y, over offsets lo..=hi:
// - `pass.kind == 0`: the 2×2 erosion of the warped mask (offsets -1..=0 on both axes);
// - `pass.kind == 1`: the centre erosion, a 2·w_edge square (offsets -w_edge..=w_edge-1), or
//   OpenCV's default 3×3 (offsets -1..=1) when w_edge is 0.
// As in cv2.erode, neighbours outside the frame do not take part; neighbours inside the frame
// but outside the bounding box count as 0 (the mask is zero there). Pixels of the region
// outside the bounding box are written as 0. Min is exact, so this equals the CPU path's
// 2-D minimum bit for bit.

struct Pass {
    kind: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(2) var<uniform> pass_info: Pass;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

fn erode(gid: vec3<u32>, dx: i32, dy: i32) {
    if (!has_pixel(gid)) { return; }
    let f = faces[gid.z];
    let i = region_index(f, gid.x, gid.y);
    let x = i32(f.rx0 + gid.x);
    let y = i32(f.ry0 + gid.y);
    if (!in_bbox(f, x, y)) {
        dst[i] = 0.0;
        return;
    }
    var lo = -1;
    var hi = 0;
    if (pass_info.kind == 1u) {
        if (f.w_edge == 0u) {
            hi = 1;
        } else {
            lo = -i32(f.w_edge);
            hi = i32(f.w_edge) - 1;
        }
    }
    var m = 3.4028235e38;
    for (var d = lo; d <= hi; d++) {
        let qx = x + d * dx;
        let qy = y + d * dy;
        if (qx < 0 || qy < 0 || qx >= i32(f.frame_w) || qy >= i32(f.frame_h)) {
            continue;
        }
        var v = 0.0;
        if (in_bbox(f, qx, qy)) {
            v = src[region_index(f, u32(qx - i32(f.rx0)), u32(qy - i32(f.ry0)))];
        }
        m = min(m, v);
    }
    dst[i] = m;
}

@compute @workgroup_size(8, 8, 1)
fn erode_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    erode(gid, 1, 0);
}

@compute @workgroup_size(8, 8, 1)
fn erode_cols(@builtin(global_invocation_id) gid: vec3<u32>) {
    erode(gid, 0, 1);
}
