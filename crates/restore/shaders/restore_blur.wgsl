// restore_blur.wgsl: the feather of restore (crates/restore), step 3 of 4.
//
// Prologue: restore_common.wgsl (`Face`, `Info`, bindings 0 and 1, `has_pixel`,
// `region_index`, `in_bbox`; the batching over the faces' regions and the dispatch), which
// crates/restore/src/wgsl.rs prepends to this file.
//
// A separable Gaussian blur of the centre mask over each face's region. The kernel of a face
// is `weights[koff .. koff + 2·w_edge + 1]` (cv2.getGaussianKernel, computed once on the CPU so
// both paths use the same taps); borders are BORDER_REFLECT_101 at the frame edges.
// - `blur_rows`: along x; the centre mask is zero outside the face's bounding box.
// - `blur_cols`: along y over the row-blurred mask, zero outside the region (the row-blurred
//   mask is zero there because the centre mask is).
// Taps are accumulated in the CPU path's order.

@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

// OpenCV BORDER_REFLECT_101 of index i into 0..n.
fn reflect101(i: i32, n: i32) -> i32 {
    if (n == 1) { return 0; }
    var j = i;
    loop {
        if (j < 0) { j = -j; }
        if (j >= n) { j = 2 * (n - 1) - j; }
        if (j >= 0 && j < n) { break; }
    }
    return j;
}

@compute @workgroup_size(8, 8, 1)
fn blur_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (!has_pixel(gid)) { return; }
    let f = faces[gid.z];
    let i = region_index(f, gid.x, gid.y);
    let x = i32(f.rx0 + gid.x);
    let y = i32(f.ry0 + gid.y);
    let rad = i32(f.w_edge);
    var acc = 0.0;
    for (var t = 0; t <= 2 * rad; t++) {
        let sx = reflect101(x + t - rad, i32(f.frame_w));
        var v = 0.0;
        if (in_bbox(f, sx, y)) {
            v = src[region_index(f, u32(sx - i32(f.rx0)), u32(y - i32(f.ry0)))];
        }
        acc += weights[f.koff + u32(t)] * v;
    }
    dst[i] = acc;
}

@compute @workgroup_size(8, 8, 1)
fn blur_cols(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (!has_pixel(gid)) { return; }
    let f = faces[gid.z];
    let i = region_index(f, gid.x, gid.y);
    let lx = gid.x;
    let y = i32(f.ry0 + gid.y);
    let rad = i32(f.w_edge);
    var acc = 0.0;
    for (var t = 0; t <= 2 * rad; t++) {
        let sy = reflect101(y + t - rad, i32(f.frame_h)) - i32(f.ry0);
        var v = 0.0;
        if (sy >= 0 && sy < i32(f.rh)) {
            v = src[region_index(f, lx, u32(sy))];
        }
        acc += weights[f.koff + u32(t)] * v;
    }
    dst[i] = acc;
}
