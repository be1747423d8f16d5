//! Alignment: the canonical template, a closed-form 2-D Umeyama similarity, the composition
//! with the crop → R×R scale, and temporal smoothing (One-Euro filter on the landmarks).

use frame::Affine2;

/// Width and height of the reference crop in template units (LatentSync's `(75, 100)·ratio`;
/// the ratio cancels once the crop is scaled to R×R, so we work in units of `ratio`).
pub(crate) const CROP_W: f64 = 75.0;
/// See [`CROP_W`].
pub(crate) const CROP_H: f64 = 100.0;

/// Canonical positions (template units, in the 75×100 reference crop) of BlazeFace's first
/// four keypoints: eye on the image left, eye on the image right, nose tip, mouth centre.
///
/// Derivation: LatentSync places the brow centres at (17, 20) and (58, 20) and the nose at
/// (37.5, 40) (mean of four 106-landmark nose points). We have eyes/nose tip/mouth instead,
/// so we take the standard ArcFace 5-point face (eyes (38.29, 51.70), (73.53, 51.50), nose tip
/// (56.03, 71.74), mouth corners averaged (56.14, 92.28), 112×112), symmetrise it about its
/// eye midpoint, and place it with a similarity so that the inter-ocular distance is 38 units
/// (0.93 × the reference's brow-centre spacing of 41: brow centres sit slightly outside the
/// pupils) and the eye line is 8 units below the reference brow line (y = 28), centred at
/// x = 37.5. Scale 38 / 35.24 = 1.0783: nose tip 21.72 units and mouth 43.94 units below the
/// eyes. This frames the face like the reference crop (forehead from y ≈ 0, chin near the
/// bottom edge) up to the anthropometric approximation stated here.
pub(crate) const TEMPLATE: [[f64; 2]; 4] = [
    [18.5, 28.0],
    [56.5, 28.0],
    [37.5, 28.0 + 21.72],
    [37.5, 28.0 + 43.94],
];

/// The least-squares similarity `dst ≈ s·R·src + t` (Umeyama 1991, no reflection) in closed
/// form for 2-D: with centred points `p`, `q`: `a = Σ p·q`, `b = Σ p×q`, rotation
/// `atan2(b, a)`, scale `√(a²+b²) / Σ|p|²`. This is the reference's SVD recipe (normalising by
/// the global std cancels out of the result) specialised to 2×2. `None` for degenerate input
/// (fewer than 2 points or all source points equal).
pub(crate) fn umeyama(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Affine2> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let mean = |pts: &[[f64; 2]]| {
        let s = pts[..n]
            .iter()
            .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
        [s[0] / n as f64, s[1] / n as f64]
    };
    let (cs, cd) = (mean(src), mean(dst));
    let (mut a, mut b, mut var) = (0.0, 0.0, 0.0);
    for (p, q) in src[..n].iter().zip(&dst[..n]) {
        let p = [p[0] - cs[0], p[1] - cs[1]];
        let q = [q[0] - cd[0], q[1] - cd[1]];
        a += p[0] * q[0] + p[1] * q[1];
        b += p[0] * q[1] - p[1] * q[0];
        var += p[0] * p[0] + p[1] * p[1];
    }
    if var < 1e-12 || !(a.is_finite() && b.is_finite()) {
        return None;
    }
    let norm = (a * a + b * b).sqrt();
    if norm < 1e-12 {
        return None;
    }
    let (s, c) = (b / norm, a / norm);
    let scale = norm / var;
    let (m00, m01, m10, m11) = (scale * c, -scale * s, scale * s, scale * c);
    Some(Affine2 {
        m: [
            [m00, m01, cd[0] - (m00 * cs[0] + m01 * cs[1])],
            [m10, m11, cd[1] - (m10 * cs[0] + m11 * cs[1])],
        ],
    })
}

/// Source frame → R×R crop: the similarity onto [`TEMPLATE`] composed with the (anisotropic,
/// as the reference's resize) scale of the 75×100 crop onto R×R. `None` if the points are
/// degenerate.
pub(crate) fn to_crop(landmarks: &[[f32; 2]], r: u32) -> Option<Affine2> {
    if landmarks.len() < 4 {
        return None;
    }
    let src: Vec<[f64; 2]> = landmarks[..4]
        .iter()
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect();
    let sim = umeyama(&src, &TEMPLATE)?;
    let r = r as f64;
    let scale = Affine2 {
        m: [[r / CROP_W, 0.0, 0.0], [0.0, r / CROP_H, 0.0]],
    };
    Some(scale.after(&sim))
}

/// How the face is aligned to the crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Alignment {
    /// BlazeFace's eyes, nose tip and mouth centre onto [`TEMPLATE`] (default).
    #[default]
    Template,
    /// LatentSync's three points from the face mesh (needs [`crate::FaceConfig::mesh`]): the
    /// two brow means and the nose mean of the mesh's [`landmarks_68`] (points 17–21, 22–26, 27–35)
    /// onto the reference template `[[17, 20], [58, 20], [37.5, 40]]` of the 75×100 crop
    /// (`× R/256 · 2.8` in the reference's crop pixels, its 210×280 crop at R = 256). The LatentSync
    /// model needs this one.
    LatentSync,
    /// FaceFusion's `ffhq_512` warp template (eye centres, nose tip, mouth corners: the five
    /// points of [`landmarks_5_from_68`] from the mesh's [`landmarks_68`]) scaled to R×R, with
    /// a replicated border: what FaceFusion's lip syncer feeds Wav2Lip and EDTalk (needs
    /// [`crate::FaceConfig::mesh`]). The face fills about half the crop's width.
    Ffhq512,
}

impl std::fmt::Display for Alignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Alignment::Template => "template",
            Alignment::LatentSync => "latentsync",
            Alignment::Ffhq512 => "ffhq512",
        })
    }
}

impl std::str::FromStr for Alignment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "template" => Ok(Alignment::Template),
            "latentsync" => Ok(Alignment::LatentSync),
            "ffhq512" => Ok(Alignment::Ffhq512),
            other => Err(format!(
                "unknown alignment {other:?} (expected template, latentsync or ffhq512)"
            )),
        }
    }
}

/// LatentSync's template in the 75×100 crop: left brow, right brow, nose
/// (`affine_transform.py`; the reference multiplies it by `ratio = R/256 · 2.8`, the scale of
/// its `int(75·ratio) × int(100·ratio)` crop, see [`latentsync_to_crop`]).
pub(crate) const LATENTSYNC_TEMPLATE: [[f64; 2]; 3] = [[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]];

/// The 68-point layout of dlib / iBUG 300-W (the one FaceFusion's 2DFAN landmarker and
/// LatentSync's `face_alignment` give) from the 468-point face mesh: for each of the 68 points,
/// the mesh points whose mean stands for it. Index 0 is the jaw's end on the image left (the
/// subject's right), as in dlib.
///
/// Where it comes from: the correspondence published by Peizhi Yan
/// (PeizhiYan/Mediapipe_2_Dlib_Landmarks, 2024: one mesh point per dlib point, or the mean of
/// two where dlib's evenly spaced jaw points fall between mesh points), checked against
/// ros4hri/hri_face_detect's table and the mesh's own contours ([`crate::facemesh::idx`]),
/// with two changes: jaw point 13 is the mean of 361 and 288, the mirror of point 3 (the
/// published table has 361 alone, which made FaceFusion's lower-face mask lopsided), and the
/// nostril corners 31 and 35 are the alar bases 98 and 327, the points dlib annotates there
/// (the table has 75 and 305, higher on the nostril wings). With these points the mesh's
/// five FaceFusion points land on FaceFusion's `ffhq_512` template within a few pixels of
/// 512 (the stage tests). The parity harness (`tests/parity`) feeds the same 68 points to the
/// reference, so this table's choices are not counted in its figures.
pub const MESH_TO_68: [&[usize]; 68] = [
    // Jaw 0–16, image left → chin (8) → image right.
    &[127],
    &[234],
    &[93],
    &[132, 58],
    &[58, 172],
    &[136],
    &[150],
    &[176],
    &[152],
    &[400],
    &[379],
    &[365],
    &[397, 288],
    &[361, 288],
    &[323],
    &[454],
    &[356],
    // Brows 17–21 (image left, outer → inner), 22–26 (image right, inner → outer).
    &[70],
    &[63],
    &[105],
    &[66],
    &[107],
    &[336],
    &[296],
    &[334],
    &[293],
    &[300],
    // Nose bridge 27–30 (top → tip), nostrils 31–35 (image left → right).
    &[168, 6],
    &[197, 195],
    &[5],
    &[4],
    &[98],
    &[97],
    &[2],
    &[326],
    &[327],
    // Eyes 36–41 (image left), 42–47 (image right), from the outer/inner corner clockwise.
    &[33],
    &[160],
    &[158],
    &[133],
    &[153],
    &[144],
    &[362],
    &[385],
    &[387],
    &[263],
    &[373],
    &[380],
    // Outer lips 48–59 (corner on the image left, along the upper lip, back along the lower).
    &[61],
    &[40],
    &[37],
    &[0],
    &[267],
    &[270],
    &[291],
    &[321],
    &[314],
    &[17],
    &[84],
    &[91],
    // Inner lips 60–67.
    &[78],
    &[82],
    &[13],
    &[312],
    &[308],
    &[317],
    &[14],
    &[87],
];

/// The 68 points of [`MESH_TO_68`] from a 468-point mesh (any coordinates); `None` when the
/// mesh is shorter.
pub fn landmarks_68(mesh: &[[f32; 2]]) -> Option<Vec<[f32; 2]>> {
    MESH_TO_68
        .iter()
        .map(|idx| {
            let mut s = [0.0f64; 2];
            for &i in *idx {
                let p = mesh.get(i)?;
                s[0] += f64::from(p[0]);
                s[1] += f64::from(p[1]);
            }
            let n = idx.len() as f64;
            Some([(s[0] / n) as f32, (s[1] / n) as f32])
        })
        .collect()
}

/// FaceFusion's five points from 68 (`face_helper.convert_to_face_landmark_5`): the two eye
/// centres (means of 36–41 and 42–47), the nose tip (30), the mouth corners (48, 54).
pub fn landmarks_5_from_68(lm68: &[[f32; 2]]) -> Option<[[f32; 2]; 5]> {
    if lm68.len() < 68 {
        return None;
    }
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f32;
        let s = lm68[r]
            .iter()
            .fold([0.0f32; 2], |a, p| [a[0] + p[0], a[1] + p[1]]);
        [s[0] / n, s[1] / n]
    };
    Some([mean(36..42), mean(42..48), lm68[30], lm68[48], lm68[54]])
}

/// FaceFusion's `ffhq_512` warp template (`face_helper.WARP_TEMPLATE_SET`), in units of the
/// crop's side: eye centres, nose tip, mouth corners.
pub(crate) const FFHQ_512: [[f64; 2]; 5] = [
    [0.37691676, 0.46864664],
    [0.62285697, 0.46912813],
    [0.50123859, 0.61331904],
    [0.39308822, 0.72541100],
    [0.61150205, 0.72490465],
];

/// Source frame → R×R crop for [`Alignment::Ffhq512`]: the least-squares similarity of the
/// mesh's five FaceFusion points onto [`FFHQ_512`]` × R` (FaceFusion estimates it with
/// `cv2.estimateAffinePartial2D`, RANSAC with a 100 px threshold: every point an inlier, so
/// the same least-squares similarity up to its iterative refinement's precision). `None`
/// without a full mesh or for degenerate points.
pub(crate) fn ffhq_to_crop(mesh: &[[f32; 2]], r: u32) -> Option<Affine2> {
    let lm5 = landmarks_5_from_68(&landmarks_68(mesh)?)?;
    let src: Vec<[f64; 2]> = lm5
        .iter()
        .map(|p| [f64::from(p[0]), f64::from(p[1])])
        .collect();
    let r = f64::from(r);
    let dst: Vec<[f64; 2]> = FFHQ_512.iter().map(|p| [p[0] * r, p[1] * r]).collect();
    umeyama(&src, &dst)
}

/// LatentSync's three points (image-left brow, image-right brow, nose) from the mesh, as the
/// ONNX export's pipeline takes them from 68 landmarks (axinc-ai/ailia-models,
/// diffusion/latentsync: the means of points 17–21, 22–26 and 27–35), here the mesh's
/// [`landmarks_68`]. The reference rounds each to whole pixels; we keep them sub-pixel (the
/// rounding only adds up to half a pixel of jitter).
pub(crate) fn latentsync_points(mesh: &[[f32; 2]]) -> Option<[[f64; 2]; 3]> {
    let lm = landmarks_68(mesh)?;
    let mean = |r: std::ops::Range<usize>| -> [f64; 2] {
        let n = r.len() as f64;
        let s = lm[r].iter().fold([0.0f64; 2], |a, p| {
            [a[0] + f64::from(p[0]), a[1] + f64::from(p[1])]
        });
        [s[0] / n, s[1] / n]
    };
    Some([mean(17..22), mean(22..27), mean(27..36)])
}

/// The reference's crop for [`Alignment::LatentSync`] at R, in its pixels:
/// `(int(75·k), int(100·k))` with `k = R/256 · 2.8` (210×280 at R = 256).
pub(crate) fn latentsync_crop_size(r: u32) -> (u32, u32) {
    let k = f64::from(r) / 256.0 * 2.8;
    ((CROP_W * k) as u32, (CROP_H * k) as u32)
}

/// The reference's resize of its crop to R×R (`cv2.resize`, pixel centres at half pixels): crop
/// pixel `x` → `(x + ½)·R/cw − ½`.
pub(crate) fn latentsync_resize(r: u32) -> Affine2 {
    let (cw, ch) = latentsync_crop_size(r);
    let (sx, sy) = (f64::from(r) / f64::from(cw), f64::from(r) / f64::from(ch));
    Affine2 {
        m: [[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0]],
    }
}

/// LatentSync's similarity (`transformation_from_points` in its `affine_transform.py`): both
/// point sets centred and divided by their global standard deviation, the rotation from the
/// SVD of their product (no reflection check), the scale the ratio of the two deviations — not
/// the least-squares scale of [`umeyama`], about 1 % smaller on faces — and the centroid mapped
/// onto the centroid. `None` for degenerate points.
pub(crate) fn similarity_std(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Affine2> {
    let ls = umeyama(src, dst)?;
    let n = src.len().min(dst.len()) as f64;
    let mean = |pts: &[[f64; 2]]| {
        let s = pts
            .iter()
            .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
        [s[0] / n, s[1] / n]
    };
    let spread = |pts: &[[f64; 2]], c: [f64; 2]| {
        pts.iter()
            .map(|p| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2))
            .sum::<f64>()
    };
    let (cs, cd) = (mean(src), mean(dst));
    let scale = (spread(dst, cd) / spread(src, cs)).sqrt();
    // The least-squares fit's rotation, rescaled.
    let k = scale / ls.scale();
    let (m00, m01, m10, m11) = (
        ls.m[0][0] * k,
        ls.m[0][1] * k,
        ls.m[1][0] * k,
        ls.m[1][1] * k,
    );
    Some(Affine2 {
        m: [
            [m00, m01, cd[0] - (m00 * cs[0] + m01 * cs[1])],
            [m10, m11, cd[1] - (m10 * cs[0] + m11 * cs[1])],
        ],
    })
}

/// Source frame → R×R crop for [`Alignment::LatentSync`]: the reference's similarity
/// ([`similarity_std`]) of the three points of [`latentsync_points`] onto
/// [`LATENTSYNC_TEMPLATE`]` · k` (frame → its `int(75·k) × int(100·k)` crop, `k = R/256 · 2.8`),
/// composed with its resize to R×R ([`latentsync_resize`]). The crop itself is made as the
/// reference makes it, in two Lanczos-4 passes (`warp::warp_latentsync`). `None` without a full
/// mesh or for degenerate points.
pub(crate) fn latentsync_to_crop(mesh: &[[f32; 2]], r: u32) -> Option<Affine2> {
    let src = latentsync_points(mesh)?;
    let sim = similarity_std(&src, &LATENTSYNC_TEMPLATE)?;
    let k = f64::from(r) / 256.0 * 2.8;
    let to_crop = Affine2 {
        m: sim.m.map(|row| row.map(|v| v * k)),
    };
    Some(latentsync_resize(r).after(&to_crop))
}

/// One-Euro filter parameters (Casiez et al. 2012), per landmark coordinate, in pixels and
/// seconds of video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneEuroConfig {
    /// Cut-off frequency at rest, Hz (lower: less jitter, more lag when still).
    pub min_cutoff: f64,
    /// Speed coefficient (higher: less lag when moving).
    pub beta: f64,
    /// Cut-off for the derivative, Hz.
    pub d_cutoff: f64,
    /// Frame rate of the stream, to turn frames into seconds.
    pub fps: f64,
}

impl Default for OneEuroConfig {
    /// `min_cutoff` 3 Hz, `beta` 1.0 s/px, `d_cutoff` 3 Hz at 25 fps. The face-canonical
    /// refinement leaves BlazeFace's keypoints with ~0.2 px of noise, so the filter is tuned to
    /// follow motion rather than to damp hard: alternating ±0.5 px jitter of a still face
    /// stays under 0.3 px and a face moving 10 px per frame lags by under 0.5 px (both checked
    /// by `one_euro_damps_jitter_and_follows_motion`). The former 1 Hz / 0.05 / 1 Hz damped
    /// jitter to 0.07 px but lagged 2.4 px at 10 px per frame, and by up to 8 px in the crop on
    /// a slowly moving head (stage test `one_euro_smoothing_keeps_up_with_the_motion`).
    fn default() -> Self {
        Self {
            min_cutoff: 3.0,
            beta: 1.0,
            d_cutoff: 3.0,
            fps: 25.0,
        }
    }
}

/// How landmarks are smoothed over time before the transform is computed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Smoothing {
    /// No smoothing.
    None,
    /// One-Euro filter on every landmark coordinate (default).
    #[default]
    OneEuro,
    /// The reference's: translation of the transform only, `0.2·prev + 0.8·cur`.
    TranslationEma,
}

#[derive(Debug, Clone, Copy)]
struct OneEuro1 {
    x: f64,
    dx: f64,
}

fn alpha(cutoff: f64, dt: f64) -> f64 {
    let tau = 1.0 / (2.0 * std::f64::consts::PI * cutoff);
    1.0 / (1.0 + tau / dt)
}

/// A bank of One-Euro filters, one per coordinate; resets when the landmark count changes or
/// after [`Smoother::reset`] (a lost face).
#[derive(Debug, Clone, Default)]
pub(crate) struct Smoother {
    state: Vec<OneEuro1>,
    prev_translation: Option<[f64; 2]>,
}

impl Smoother {
    pub(crate) fn reset(&mut self) {
        self.state.clear();
        self.prev_translation = None;
    }

    /// Filters the landmarks in place (One-Euro).
    pub(crate) fn filter_landmarks(&mut self, cfg: &OneEuroConfig, pts: &mut [[f32; 2]]) {
        let n = pts.len() * 2;
        let dt = 1.0 / cfg.fps.max(1e-3);
        if self.state.len() != n {
            self.state = pts
                .iter()
                .flat_map(|p| {
                    p.iter().map(|&v| OneEuro1 {
                        x: v as f64,
                        dx: 0.0,
                    })
                })
                .collect();
            return;
        }
        for (v, st) in pts
            .iter_mut()
            .flat_map(|p| p.iter_mut())
            .zip(&mut self.state)
        {
            let x = *v as f64;
            let dx = (x - st.x) / dt;
            let a_d = alpha(cfg.d_cutoff, dt);
            st.dx += a_d * (dx - st.dx);
            let cutoff = cfg.min_cutoff + cfg.beta * st.dx.abs();
            let a = alpha(cutoff, dt);
            st.x += a * (x - st.x);
            *v = st.x as f32;
        }
    }

    /// The reference's translation EMA on the transform.
    pub(crate) fn filter_translation(&mut self, t: &mut Affine2) {
        let cur = [t.m[0][2], t.m[1][2]];
        if let Some(prev) = self.prev_translation {
            t.m[0][2] = 0.2 * prev[0] + 0.8 * cur[0];
            t.m[1][2] = 0.2 * prev[1] + 0.8 * cur[1];
        }
        self.prev_translation = Some([t.m[0][2], t.m[1][2]]);
    }
}

/// Face-mesh points that move with the head but not with the jaw or the lips: the eye corners
/// and lids, the brows, the nose (bridge, tip, alae), the forehead and the face oval above the
/// cheeks (indices into MediaPipe's 468-point mesh; `facemesh::idx` names some of them). They
/// carry the face's own frame for [`MeshSmoother`].
pub(crate) const MESH_RIGID: [usize; 46] = [
    // eye corners and the middles of the lids
    33, 133, 362, 263, 159, 145, 386, 374, //
    // brows (upper edge)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300, //
    // nose: bridge, tip, alae
    168, 6, 197, 195, 5, 4, 1, 98, 327, //
    // forehead and the face oval down to the eye line
    10, 151, 9, 338, 297, 332, 284, 251, 389, 356, 454, 109, 67, 103, 54, 21, 162, 127, 234,
];

/// Temporal smoothing of a face mesh in the face's own frame. A One-Euro filter on image
/// coordinates lags behind a moving head: its cut-off rises with the speed only after the
/// derivative (itself low-passed) has caught up, so fast sweeps, turns and scale changes leave
/// the points behind by pixels (on the bench's clip: mouth corners 2.5 px off where the
/// unfiltered mesh was within 0.9 px). Here each frame's points are split into
/// - the head's motion: the similarity `S` that best maps the previous smoothed shape onto
///   this frame's points over [`MESH_RIGID`] (least squares over 46 points: per-point noise
///   averages out, and nothing is delayed), and
/// - the shape in the face's frame, `S⁻¹(points)`: still for a still face, moving only with
///   expression and noise. That is what the One-Euro filter smooths.
///
/// The output is `S(smoothed shape)`: the head's motion passes through without lag and the
/// model's jitter is filtered where it shows. Resets with [`MeshSmoother::reset`] (a lost
/// face) or when the point count changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct MeshSmoother {
    local: Smoother,
    /// The last smoothed shape, in the face's frame.
    shape: Vec<[f64; 2]>,
}

impl MeshSmoother {
    pub(crate) fn reset(&mut self) {
        self.local.reset();
        self.shape.clear();
    }

    /// Smooths `pts` (a whole mesh, image pixels) in place.
    pub(crate) fn filter(&mut self, cfg: &OneEuroConfig, pts: &mut [[f32; 2]]) {
        let f64s = |p: &[f32; 2]| [f64::from(p[0]), f64::from(p[1])];
        let rigid_ok = MESH_RIGID.iter().all(|&i| i < pts.len());
        let head = (self.shape.len() == pts.len() && rigid_ok)
            .then(|| {
                let src: Vec<[f64; 2]> = MESH_RIGID.iter().map(|&i| self.shape[i]).collect();
                let dst: Vec<[f64; 2]> = MESH_RIGID.iter().map(|&i| f64s(&pts[i])).collect();
                let s = umeyama(&src, &dst)?;
                Some((s, s.inverse()?))
            })
            .flatten();
        let Some((s, inv)) = head else {
            // A new face (or one without the rigid points): its frame starts as the image's.
            self.local.reset();
            let mut local = pts.to_vec();
            self.local.filter_landmarks(cfg, &mut local);
            self.shape = local.iter().map(f64s).collect();
            return;
        };
        let mut local: Vec<[f32; 2]> = pts
            .iter()
            .map(|p| {
                let q = inv.apply(f64s(p));
                [q[0] as f32, q[1] as f32]
            })
            .collect();
        self.local.filter_landmarks(cfg, &mut local);
        self.shape.clear();
        self.shape.extend(local.iter().map(f64s));
        for (p, l) in pts.iter_mut().zip(&self.shape) {
            let q = s.apply(*l);
            *p = [q[0] as f32, q[1] as f32];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn umeyama_recovers_a_similarity(
            scale in 0.1f64..10.0, angle in -3.1f64..3.1,
            tx in -500f64..500.0, ty in -500f64..500.0,
            pts in proptest::collection::vec((-300f64..300.0, -300f64..300.0), 3..8),
        ) {
            let src: Vec<[f64; 2]> = pts.iter().map(|&(x, y)| [x, y]).collect();
            // Skip near-degenerate point sets (all nearly equal).
            let spread = src.iter().map(|p| (p[0] - src[0][0]).abs() + (p[1] - src[0][1]).abs()).fold(0.0, f64::max);
            prop_assume!(spread > 1.0);
            let t = Affine2::similarity(scale, angle, tx, ty);
            let dst: Vec<[f64; 2]> = src.iter().map(|&p| t.apply(p)).collect();
            let got = umeyama(&src, &dst).unwrap();
            for r in 0..2 { for c in 0..3 {
                let tol = if c == 2 { 1e-6 * (1.0 + scale) * 600.0 } else { 1e-8 * (1.0 + scale) * 10.0 };
                prop_assert!((got.m[r][c] - t.m[r][c]).abs() < tol, "{:?} vs {:?}", got, t);
            }}
        }
    }

    #[test]
    fn template_maps_to_itself_in_crop_units() {
        let pts: Vec<[f32; 2]> = TEMPLATE
            .iter()
            .map(|p| [p[0] as f32, p[1] as f32])
            .collect();
        let t = to_crop(&pts, 256).unwrap();
        let eye = t.apply([18.5, 28.0]);
        assert!((eye[0] - 18.5 * 256.0 / 75.0).abs() < 1e-4);
        assert!((eye[1] - 28.0 * 256.0 / 100.0).abs() < 1e-4);
    }

    #[test]
    fn degenerate_points_give_none() {
        assert_eq!(umeyama(&[[1.0, 1.0]; 4], &TEMPLATE), None);
        assert_eq!(umeyama(&[[1.0, 1.0]], &[[2.0, 2.0]]), None);
    }

    /// A synthetic 468-point "mesh": points spread over a 200 px face (deterministic).
    fn synthetic_mesh() -> Vec<[f64; 2]> {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / f64::from(1u32 << 31)
        };
        (0..468)
            .map(|_| [100.0 * (rnd() - 0.5) * 2.0, 100.0 * (rnd() - 0.5) * 2.0])
            .collect()
    }

    /// Worst distance over a clip between the filtered points and the exact motion of the
    /// shape, for `filter` fed the moving shape plus `jitter(frame, point)`.
    fn worst_lag(
        motion: impl Fn(usize) -> Affine2,
        jitter: impl Fn(usize, usize) -> [f64; 2],
        mut filter: impl FnMut(&mut [[f32; 2]]),
    ) -> f64 {
        let shape = synthetic_mesh();
        let mut worst: f64 = 0.0;
        for k in 0..48 {
            let t = motion(k);
            let exact: Vec<[f64; 2]> = shape.iter().map(|&p| t.apply(p)).collect();
            let mut pts: Vec<[f32; 2]> = exact
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let j = jitter(k, i);
                    [(p[0] + j[0]) as f32, (p[1] + j[1]) as f32]
                })
                .collect();
            filter(&mut pts);
            if k > 4 {
                for (p, e) in pts.iter().zip(&exact) {
                    worst = worst.max((f64::from(p[0]) - e[0]).hypot(f64::from(p[1]) - e[1]));
                }
            }
        }
        worst
    }

    /// The bench's motion (scale 1.0–1.4, roll ±10°, 200 px sweeps; 48 frames a cycle): up to
    /// 26 px and 1.3° per frame.
    fn fast(k: usize) -> Affine2 {
        let a = k as f64 / 48.0 * std::f64::consts::TAU;
        Affine2::similarity(
            1.2 + 0.2 * a.sin(),
            (10.0 * a.cos()).to_radians(),
            640.0 + 200.0 * a.sin(),
            300.0 + 60.0 * (2.0 * a).sin(),
        )
    }

    #[test]
    fn mesh_smoothing_in_the_face_frame_does_not_lag_a_moving_head() {
        let cfg = OneEuroConfig::default();
        let none = |_, _| [0.0, 0.0];
        // In the face's frame: the head's motion passes through (float rounding only).
        let mut face = MeshSmoother::default();
        let lag = worst_lag(fast, none, |p| face.filter(&cfg, p));
        assert!(lag < 0.01, "face-frame smoothing lags {lag} px");
        // The same One-Euro filter on image coordinates (what the mesh had before) lags by
        // pixels on this motion: the reason for the face frame.
        let mut image = Smoother::default();
        let lag = worst_lag(fast, none, |p| image.filter_landmarks(&cfg, p));
        assert!(lag > 2.0, "image-space smoothing lags {lag} px");
    }

    #[test]
    fn mesh_smoothing_in_the_face_frame_damps_jitter() {
        let cfg = OneEuroConfig::default();
        // ±0.5 px on every coordinate, alternating from frame to frame, each point and axis
        // in its own phase, on a still head and on the moving one: what comes out stays within
        // 0.65 of what goes in (measured: 0.40 and 0.42 px of 0.71 px; the image-space filter
        // gives 0.36 px on the still head and 3.1 px on the moving one).
        let jitter = |k: usize, i: usize| {
            let s = |b: usize| {
                if (k + i * 13 / 7 + b).is_multiple_of(2) {
                    0.5
                } else {
                    -0.5
                }
            };
            [s(0), s(1)]
        };
        let still = |_| Affine2::similarity(1.2, 0.1, 640.0, 300.0);
        for (name, motion) in [
            ("still", &still as &dyn Fn(usize) -> Affine2),
            ("fast", &fast),
        ] {
            let mut face = MeshSmoother::default();
            let worst = worst_lag(motion, jitter, |p| face.filter(&cfg, p));
            let raw = worst_lag(motion, jitter, |_| {});
            assert!(
                worst < 0.65 * raw,
                "{name}: {worst} px after the filter, {raw} px before"
            );
        }
    }

    #[test]
    fn one_euro_damps_jitter_and_follows_motion() {
        let cfg = OneEuroConfig::default();
        let mut s = Smoother::default();
        let mut worst: f32 = 0.0;
        for i in 0..50 {
            let jitter = if i % 2 == 0 { 0.5 } else { -0.5 };
            let mut p = [[100.0 + jitter, 50.0]];
            s.filter_landmarks(&cfg, &mut p);
            if i > 10 {
                worst = worst.max((p[0][0] - 100.0).abs());
            }
        }
        assert!(worst < 0.3, "jitter after filter {worst}");
        for i in 0..30 {
            let mut p = [[100.0 + 10.0 * i as f32, 50.0]];
            s.filter_landmarks(&cfg, &mut p);
            if i == 29 {
                let lag = 100.0 + 290.0 - p[0][0];
                assert!(lag < 0.5, "lag {lag}");
            }
        }
    }
}
