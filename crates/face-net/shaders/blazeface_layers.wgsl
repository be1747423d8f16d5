// BlazeFace layers for `face-proc`'s GPU detector (crates/face-proc/src/blazeface_gpu.rs).
//
// Layout: every activation is NHWC f32, frames packed one after another (batch = N frames).
// One invocation computes one output element; the 1D element index is spread over a 2D
// grid of 64-wide workgroups so no dimension exceeds 65535 workgroups.
//
// Entry points:
// - `conv`: general KxK convolution (groups = 1), bias, optional ReLU (the stem conv).
// - `depthwise`: KxK depthwise convolution (groups = channels), bias (zeros when absent).
// - `pointwise`: 1x1 convolution + bias, then optionally + residual (zero-padded in
//   channels, optionally 2x2/2 max-pooled) and ReLU: one BlazeBlock tail in one pass.
//
// Weights (one buffer for the whole model), layouts prepared on the CPU:
// - conv: [ky][kx][ci][co], depthwise: [ky][kx][c], pointwise: [ci][co]; bias at `b_off`.

struct Params {
    n: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    kernel: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    w_off: u32,
    b_off: u32,
    // bit 0: ReLU, bit 1: residual add, bit 2: residual is 2x2/2 max-pooled.
    flags: u32,
    // Channels of the residual source; output channels >= res_c get + 0 (channel padding).
    res_c: u32,
    // Floats per frame in `dst` and the offset of this layer's output within a frame
    // (the heads write straight into the concatenated score / regressor outputs).
    dst_stride: u32,
    dst_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 64u;
const FLAG_RELU: u32 = 1u;
const FLAG_RESIDUAL: u32 = 2u;
const FLAG_POOL: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> res: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

struct Coord {
    frame: u32,
    rem: u32,
    oy: u32,
    ox: u32,
    co: u32,
}

// An invocation's place in the dispatch: every entry point's input.
struct Invocation {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
}

fn linear_id(inv: Invocation) -> u32 {
    return (inv.wid.y * inv.nwg.x + inv.wid.x) * WG + inv.lid.x;
}

fn coord(idx: u32) -> Coord {
    let per_frame = p.out_h * p.out_w * p.out_c;
    let rem = idx % per_frame;
    let pix = rem / p.out_c;
    return Coord(idx / per_frame, rem, pix / p.out_w, pix % p.out_w, rem % p.out_c);
}

fn in_bounds(idx: u32) -> bool {
    return idx < p.n * p.out_h * p.out_w * p.out_c;
}

fn residual(c: Coord) -> f32 {
    if (c.co >= p.res_c) {
        return 0.0;
    }
    if ((p.flags & FLAG_POOL) != 0u) {
        let rh = p.out_h * 2u;
        let rw = p.out_w * 2u;
        let base = c.frame * rh * rw * p.res_c;
        let y = c.oy * 2u;
        let x = c.ox * 2u;
        let a = res[base + (y * rw + x) * p.res_c + c.co];
        let b = res[base + (y * rw + x + 1u) * p.res_c + c.co];
        let d = res[base + ((y + 1u) * rw + x) * p.res_c + c.co];
        let e = res[base + ((y + 1u) * rw + x + 1u) * p.res_c + c.co];
        return max(max(a, b), max(d, e));
    }
    let base = c.frame * p.out_h * p.out_w * p.res_c;
    return res[base + (c.oy * p.out_w + c.ox) * p.res_c + c.co];
}

fn store(c: Coord, sum: f32) {
    var v = sum;
    if ((p.flags & FLAG_RESIDUAL) != 0u) {
        v = v + residual(c);
    }
    if ((p.flags & FLAG_RELU) != 0u) {
        v = max(v, 0.0);
    }
    dst[c.frame * p.dst_stride + p.dst_off + c.rem] = v;
}

// Input row/column for output position `o` and kernel tap `k`, or -1 when in the padding.
fn tap(o: u32, k: u32, pad: u32, size: u32) -> i32 {
    let i = i32(o * p.stride + k) - i32(pad);
    if (i < 0 || i >= i32(size)) {
        return -1;
    }
    return i;
}

// The bias plus the KxK window at `c`: every input channel for `conv` (weights
// [ky][kx][ci][co]), channel `c.co` alone for `depthwise` (weights [ky][kx][c]).
fn window(c: Coord, depthwise: bool) -> f32 {
    let in_base = c.frame * p.in_h * p.in_w * p.in_c;
    var acc = weights[p.b_off + c.co];
    for (var ky = 0u; ky < p.kernel; ky++) {
        let iy = tap(c.oy, ky, p.pad_top, p.in_h);
        if (iy < 0) {
            continue;
        }
        for (var kx = 0u; kx < p.kernel; kx++) {
            let ix = tap(c.ox, kx, p.pad_left, p.in_w);
            if (ix < 0) {
                continue;
            }
            let s = in_base + (u32(iy) * p.in_w + u32(ix)) * p.in_c;
            let k = ky * p.kernel + kx;
            if (depthwise) {
                acc = acc + src[s + c.co] * weights[p.w_off + k * p.out_c + c.co];
            } else {
                let wb = p.w_off + k * p.in_c * p.out_c + c.co;
                for (var ci = 0u; ci < p.in_c; ci++) {
                    acc = acc + src[s + ci] * weights[wb + ci * p.out_c];
                }
            }
        }
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv(inv: Invocation) {
    let idx = linear_id(inv);
    if (!in_bounds(idx)) {
        return;
    }
    let c = coord(idx);
    store(c, window(c, false));
}

@compute @workgroup_size(64)
fn depthwise(inv: Invocation) {
    let idx = linear_id(inv);
    if (!in_bounds(idx)) {
        return;
    }
    let c = coord(idx);
    store(c, window(c, true));
}

@compute @workgroup_size(64)
fn pointwise(inv: Invocation) {
    let idx = linear_id(inv);
    if (!in_bounds(idx)) {
        return;
    }
    let c = coord(idx);
    let s = (c.frame * p.out_h * p.out_w + c.oy * p.out_w + c.ox) * p.in_c;
    var acc = weights[p.b_off + c.co];
    for (var ci = 0u; ci < p.in_c; ci++) {
        acc = acc + src[s + ci] * weights[p.w_off + ci * p.out_c + c.co];
    }
    store(c, acc);
}
