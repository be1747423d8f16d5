// Poisson blending for the infer crate's built-in mouth model: red-black SOR sweeps and a
// residual reduction, batched over the frames of a chunk. Same arithmetic, in the same order,
// as crates/infer/src/poisson.rs (the CPU path).
//
// Layout: `f` and `b` hold n_frames × 3 planes of width×height f32 (planar RGB per frame);
// `mask` holds width×height u32 (1 = unknown). Only the mask's bounding box
// (x0, y0, bw, bh) is visited. Masked pixels never touch the crop border.

struct Params {
    width: u32,
    height: u32,
    x0: u32,
    y0: u32,
    bw: u32,
    bh: u32,
    n_frames: u32,
    parity: u32,
    omega: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> f: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

const WG: u32 = 256u;

// One half-sweep: one invocation per (frame, bbox row, pixel of colour `parity`).
@compute @workgroup_size(256)
fn sor(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let half = (p.bw + 1u) / 2u;
    let per_frame = half * p.bh;
    if (i >= per_frame * p.n_frames) {
        return;
    }
    let frame = i / per_frame;
    let rem = i % per_frame;
    let y = p.y0 + rem / half;
    let x = p.x0 + 2u * (rem % half) + ((p.x0 + y + p.parity) % 2u);
    if (x >= p.x0 + p.bw) {
        return;
    }
    let w = p.width;
    let pix = y * w + x;
    if (mask[pix] == 0u) {
        return;
    }
    let plane = w * p.height;
    for (var c = 0u; c < 3u; c = c + 1u) {
        let k = (frame * 3u + c) * plane + pix;
        let s = ((f[k - w] + f[k + w]) + (f[k - 1u] + f[k + 1u])) + b[k];
        let cur = f[k];
        f[k] = cur + p.omega * (s * 0.25 - cur);
    }
}

var<workgroup> acc: array<f32, 256>;

// Squared residual summed over 3 channels, one invocation per (frame, bbox pixel); each
// workgroup writes its partial sum to partial[workgroup index].
@compute @workgroup_size(256)
fn residual(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let per_frame = p.bw * p.bh;
    var sum = 0.0;
    if (i < per_frame * p.n_frames) {
        let frame = i / per_frame;
        let rem = i % per_frame;
        let y = p.y0 + rem / p.bw;
        let x = p.x0 + rem % p.bw;
        let w = p.width;
        let pix = y * w + x;
        if (mask[pix] != 0u) {
            let plane = w * p.height;
            for (var c = 0u; c < 3u; c = c + 1u) {
                let k = (frame * 3u + c) * plane + pix;
                let s = ((f[k - w] + f[k + w]) + (f[k - 1u] + f[k + 1u])) + b[k];
                let r = s - 4.0 * f[k];
                sum = sum + r * r;
            }
        }
    }
    acc[lid] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            acc[lid] = acc[lid] + acc[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        partial[wid.x + wid.y * nwg.x] = acc[0];
    }
}
