// restore_blend.wgsl: the blend of restore (crates/restore), step 4 of 4.
//
// Per region pixel (batched like restore_warp.wgsl; no per-face data is needed here):
// s = soft·m, m the paste mask's weight that restore_warp.wgsl left in `warped[i].a`;
// out = round(s·face' + (1−s)·frame) per channel, round half up (not truncated),
// clamped to 0..=255; where soft <= 0 the frame pixel is kept bit for bit. `frame` holds the
// regions' frame pixels as R | G << 8 | B << 16 and is updated in place.
// Dispatch: 2-D grid of 64-wide workgroups, linear index i = gid.x + gid.y * nwg.x * 64.

struct Info {
    n_faces: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> soft: array<f32>;
@group(0) @binding(2) var<storage, read> warped: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> frame: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= info.total) { return; }
    let s0 = soft[i];
    if (s0 <= 0.0) { return; }
    let s = s0 * warped[i].a;
    if (s <= 0.0) { return; }
    let word = frame[i];
    let old = vec3<f32>(vec3<u32>(word & 255u, (word >> 8u) & 255u, (word >> 16u) & 255u));
    let o = s * warped[i].rgb + (1.0 - s) * old;
    let c = vec3<u32>(clamp(floor(o + vec3<f32>(0.5)), vec3<f32>(0.0), vec3<f32>(255.0)));
    frame[i] = c.x | (c.y << 8u) | (c.z << 16u);
}
