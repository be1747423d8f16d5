// restore_blur.wgsl: the feather of restore (crates/restore), step 3 of 4.
//
// A separable Gaussian blur of the centre mask over each face's region, batched like
// restore_warp.wgsl (same `Face`/`Info` layout, region addressing and dispatch). The kernel of a face
// is `weights[koff .. koff + 2·w_edge + 1]` (cv2.getGaussianKernel, computed once on the CPU so
// both paths use the same taps); borders are BORDER_REFLECT_101 at the frame edges.
// - `blur_rows`: along x; the centre mask is zero outside the face's bounding box.
// - `blur_cols`: along y over the row-blurred mask, zero outside the region (the row-blurred
//   mask is zero there because the centre mask is).
// Taps are accumulated in the CPU path's order.
// Dispatch: one 8×8 workgroup tile grid per face, gid.z = face, (gid.x, gid.y) = pixel of the
// face's region (the grid covers the largest region; invocations past a face's region return);
// its pixel index in the per-pixel buffers is i = base + gid.y * rw + gid.x.

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
    if (gid.z >= info.n_faces) { return; }
    let f = faces[gid.z];
    if (gid.x >= f.rw || gid.y >= f.rh) { return; }
    let i = f.base + gid.y * f.rw + gid.x;
    let x = i32(f.rx0 + gid.x);
    let y = i32(f.ry0 + gid.y);
    let rad = i32(f.w_edge);
    let inside_rows = y >= i32(f.by0) && y < i32(f.by1);
    var acc = 0.0;
    for (var t = 0; t <= 2 * rad; t++) {
        let sx = reflect101(x + t - rad, i32(f.frame_w));
        var v = 0.0;
        if (inside_rows && sx >= i32(f.bx0) && sx < i32(f.bx1)) {
            v = src[f.base + u32(y - i32(f.ry0)) * f.rw + u32(sx - i32(f.rx0))];
        }
        acc += weights[f.koff + u32(t)] * v;
    }
    dst[i] = acc;
}

@compute @workgroup_size(8, 8, 1)
fn blur_cols(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.z >= info.n_faces) { return; }
    let f = faces[gid.z];
    if (gid.x >= f.rw || gid.y >= f.rh) { return; }
    let i = f.base + gid.y * f.rw + gid.x;
    let lx = gid.x;
    let y = i32(f.ry0 + gid.y);
    let rad = i32(f.w_edge);
    var acc = 0.0;
    for (var t = 0; t <= 2 * rad; t++) {
        let sy = reflect101(y + t - rad, i32(f.frame_h)) - i32(f.ry0);
        var v = 0.0;
        if (sy >= 0 && sy < i32(f.rh)) {
            v = src[f.base + u32(sy) * f.rw + lx];
        }
        acc += weights[f.koff + u32(t)] * v;
    }
    dst[i] = acc;
}
