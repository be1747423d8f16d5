//! The LatentSync chunk loop, independent of the runtime: what goes into the four graphs and
//! what comes out, the DDIM loop with guidance, previews and the final blend. [`Graphs`] is
//! the runtime (ONNX Runtime sessions in `session.rs`).

use std::time::{Duration, Instant};

use frame::Frame;
use half::f16;
use half::slice::HalfFloatSliceExt;
use infer::FrameFeatures;

use super::LatentSyncError;
use super::ddim::{Ddim, guided_step};
use super::mask::{LATENT, MouthMask, SIZE};
use super::mel::{
    EMBED_DIM, EMBED_LAYERS, N_MELS, SEGMENT_COLUMNS, SEGMENT_EMBEDDINGS, WINDOW_ROWS, WhisperMel,
    window_indices,
};
use super::noise::{INITIAL_LATENTS, Noise, vae_stream};
use super::tensor::{Buffer, Float};
use super::vae::{LATENT_CHANNELS, SCALING, from_unit, sample_latents, to_unit};

/// Frames per UNet call (the export's fixed frame axis).
pub(crate) const FRAMES: usize = 16;
/// UNet input channels: noisy latents 4 ‖ mask 1 ‖ masked-face latents 4 ‖ reference latents 4.
pub(crate) const UNET_CHANNELS: usize = 13;
const HW: usize = LATENT * LATENT;
/// One batch item's latents: `[4, 16, 32, 32]`.
const LATENT_LEN: usize = LATENT_CHANNELS * FRAMES * HW;
/// One batch item of the UNet input: `[13, 16, 32, 32]`.
const SAMPLE_LEN: usize = UNET_CHANNELS * FRAMES * HW;
/// One chunk of faces in the VAE's layout: `[16, 3, 256, 256]`.
const PIXELS_LEN: usize = FRAMES * 3 * SIZE * SIZE;
/// One frame's conditioning: `[50, 384]`.
const EHS_FRAME: usize = WINDOW_ROWS * EMBED_DIM;
/// One segment's encoder output: `[5, 1500, 384]`.
pub(crate) const WHISPER_OUT: usize = EMBED_LAYERS * SEGMENT_EMBEDDINGS * EMBED_DIM;

/// The runtime behind the four graphs. Every buffer is f32 except the UNet's, which are in
/// the element types the UNet file declares (the per-step path converts only the latents).
pub(crate) trait Graphs: std::fmt::Debug {
    /// `vae_encoder`: `[16, 3, 256, 256]` in [−1, 1] → moments `[16, 8, 32, 32]`.
    fn encode(&mut self, pixels: &[f32]) -> Result<Vec<f32>, LatentSyncError>;
    /// `vae_decoder`: latents `[16, 4, 32, 32]` (already divided by 0.18215) →
    /// `[16, 3, 256, 256]`.
    fn decode(&mut self, latents: &[f32]) -> Result<Vec<f32>, LatentSyncError>;
    /// The element types of the UNet's `sample` and `encoder_hidden_states`.
    fn unet_types(&self) -> (Float, Float);
    /// `unet`: `sample [batch, 13, 16, 32, 32]`, `timestep`, `encoder_hidden_states
    /// [16·batch, 50, 384]` → noise `[batch, 4, 16, 32, 32]` written into `out` as f32.
    fn unet(
        &mut self,
        sample: &Buffer,
        batch: usize,
        timestep: i64,
        hidden: &Buffer,
        out: &mut [f32],
    ) -> Result<(), LatentSyncError>;
}

/// How the model denoises.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentSyncConfig {
    /// Classifier-free guidance scale (default 1.5); at 1.0 the UNet runs one batch item.
    pub guidance: f32,
    /// Seed of the initial noise and of the VAE sampling (default 1247, LatentSync's
    /// default seed); the same seed gives the same video.
    pub seed: u64,
    /// Largest share of the compute time intermediate previews may take (default 0.1): a
    /// preview decodes all 16 faces, so it is skipped while the last decode took longer than
    /// this share of the time since the last preview.
    pub preview_budget: f64,
}

impl Default for LatentSyncConfig {
    fn default() -> Self {
        Self {
            guidance: 1.5,
            seed: 1247,
            preview_budget: 0.1,
        }
    }
}

/// A clip's Whisper embeddings (`[frames, 5, 384]`, stored as f16: 1920 bytes per 10 ms),
/// computed segment by segment when the audio's features are finished; the per-frame
/// `[50, 384]` windows the UNet takes are read from them.
#[derive(Debug)]
pub(crate) struct WhisperEmbeddings {
    emb: Vec<f16>,
    len: usize,
    fps: f64,
}

impl WhisperEmbeddings {
    /// Runs `whisper` over every 30 s segment of `mel` (`whisper` maps a segment `[80, 3000]`
    /// to `[5, 1500, 384]`).
    pub(crate) fn compute(
        mel: &WhisperMel,
        fps: f64,
        mut whisper: impl FnMut(&[f32]) -> Result<Vec<f32>, LatentSyncError>,
    ) -> Result<Self, LatentSyncError> {
        let len = mel.n_embeddings();
        if len == 0 {
            return Err(LatentSyncError::Audio(format!(
                "the audio gives no whisper frames ({} mel columns; at least 20 ms are needed)",
                mel.n_columns()
            )));
        }
        let row = EMBED_LAYERS * EMBED_DIM;
        let mut emb = vec![f16::ZERO; len * row];
        let mut input = vec![0.0f32; N_MELS * SEGMENT_COLUMNS];
        let mut k = 0;
        while k * SEGMENT_EMBEDDINGS < len {
            mel.segment(k, &mut input);
            let out = whisper(&input)?;
            let n = (len - k * SEGMENT_EMBEDDINGS).min(SEGMENT_EMBEDDINGS);
            // [5, 1500, 384] → frames [n, 5, 384].
            for e in 0..n {
                for l in 0..EMBED_LAYERS {
                    let src = &out[(l * SEGMENT_EMBEDDINGS + e) * EMBED_DIM..][..EMBED_DIM];
                    let dst = &mut emb
                        [((k * SEGMENT_EMBEDDINGS + e) * EMBED_LAYERS + l) * EMBED_DIM..]
                        [..EMBED_DIM];
                    dst.convert_from_f32_slice(src);
                }
            }
            k += 1;
        }
        Ok(Self { emb, len, fps })
    }
}

impl FrameFeatures for WhisperEmbeddings {
    fn window_len(&self) -> usize {
        EHS_FRAME
    }

    /// Rows: the 10 embedding frames around the video frame, then the 5 layers.
    fn window_into(&self, frame: usize, out: &mut [f32]) {
        let row = EMBED_LAYERS * EMBED_DIM;
        for (r, e) in window_indices(frame, self.fps, self.len)
            .into_iter()
            .enumerate()
        {
            self.emb[e * row..][..row].convert_to_f32_slice(&mut out[r * row..][..row]);
        }
    }
}

/// One chunk's working state.
#[derive(Debug)]
pub(crate) struct ChunkState {
    /// Real faces in the chunk (the rest, up to 16, repeat the last one and are dropped).
    real: usize,
    /// The faces in [−1, 1], `[16, 3, 256, 256]`.
    original: Vec<f32>,
    /// The noisy latents `[4, 16, 32, 32]`.
    latents: Vec<f32>,
    /// The latest step's predicted clean latents (for previews).
    x0: Vec<f32>,
    x0_valid: bool,
    /// UNet input, constant channels filled in once.
    sample: Buffer,
    hidden: Buffer,
    noise: Vec<f32>,
    batch: usize,
}

/// Denoising steps and timing of the whole run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timing {
    /// UNet calls so far.
    pub(crate) unet_calls: u64,
    /// Time inside the UNet calls.
    pub(crate) unet: Duration,
    /// Time of the whole steps (UNet call + everything else per step).
    pub(crate) steps: Duration,
    /// Time between consecutive steps of a chunk outside the model (the scheduler: cancel
    /// check, progress), previews excluded.
    pub(crate) between: Duration,
    /// The last full decode (16 faces).
    pub(crate) last_decode: Option<Duration>,
}

/// The runtime-independent LatentSync model.
#[derive(Debug)]
pub(crate) struct Engine {
    graphs: Box<dyn Graphs + Send>,
    pub(crate) config: LatentSyncConfig,
    mask: MouthMask,
    /// One frame's initial noise `[4, 32, 32]`, repeated over every frame of every chunk.
    initial: Vec<f32>,
    ddim: Option<(usize, Ddim)>,
    pub(crate) timing: Timing,
    /// Compute time since the last intermediate preview.
    since_preview: Duration,
    /// When the last step (or preview) of the current chunk ended.
    last_step_end: Option<Instant>,
}

impl Engine {
    pub(crate) fn new(graphs: Box<dyn Graphs + Send>, config: LatentSyncConfig) -> Self {
        let mut initial = vec![0.0; LATENT_CHANNELS * HW];
        Noise::new(config.seed, INITIAL_LATENTS).fill(&mut initial);
        Self {
            graphs,
            config,
            mask: MouthMask::load(),
            initial,
            ddim: None,
            timing: Timing::default(),
            since_preview: Duration::ZERO,
            last_step_end: None,
        }
    }

    /// The regenerated region (1) of a 256×256 face.
    pub(crate) fn regenerated(&self) -> Vec<u8> {
        self.mask.regenerated()
    }

    fn batch(&self) -> usize {
        if self.config.guidance == 1.0 { 1 } else { 2 }
    }

    /// Prepares a chunk: faces `faces` are video frames `first_frame ..`; at most 16, each
    /// 256×256. Encodes the masked and the reference faces, gathers the audio windows, and
    /// starts from the run's initial noise.
    pub(crate) fn begin(
        &mut self,
        faces: &[Frame],
        first_frame: usize,
        audio: &dyn FrameFeatures,
    ) -> Result<ChunkState, LatentSyncError> {
        if audio.window_len() != EHS_FRAME {
            return Err(LatentSyncError::Input(format!(
                "audio features of {} values per frame; latentsync takes its own ({EHS_FRAME})",
                audio.window_len()
            )));
        }
        if faces.is_empty() || faces.len() > FRAMES {
            return Err(LatentSyncError::Input(format!(
                "a chunk has {} faces; latentsync takes 1 to {FRAMES}",
                faces.len()
            )));
        }
        if let Some((i, f)) = faces
            .iter()
            .enumerate()
            .find(|(_, f)| f.width() as usize != SIZE || f.height() as usize != SIZE)
        {
            return Err(LatentSyncError::Input(format!(
                "face {} is {}x{}; the latentsync export takes {SIZE}x{SIZE} faces",
                first_frame + i,
                f.width(),
                f.height()
            )));
        }
        let real = faces.len();
        // Pixels [16, 3, 256, 256] in [−1, 1]; the tail repeats the last face.
        let mut original = vec![0.0f32; PIXELS_LEN];
        let plane = SIZE * SIZE;
        for f in 0..FRAMES {
            let face = &faces[f.min(real - 1)];
            let dst = &mut original[f * 3 * plane..][..3 * plane];
            for (p, rgb) in face.data().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    dst[c * plane + p] = to_unit(rgb[c]);
                }
            }
        }
        let mut masked = original.clone();
        for f in 0..FRAMES {
            for c in 0..3 {
                let dst = &mut masked[(f * 3 + c) * plane..][..plane];
                for (v, m) in dst.iter_mut().zip(&self.mask.pixels) {
                    *v *= m;
                }
            }
        }
        let enc_len = FRAMES * 2 * LATENT_CHANNELS * HW;
        let check = |v: &Vec<f32>, what: &str| {
            if v.len() == enc_len {
                Ok(())
            } else {
                Err(LatentSyncError::Runtime {
                    file: "vae_encoder.onnx".into(),
                    message: format!("{what}: {} values, expected {enc_len}", v.len()),
                })
            }
        };
        let m_masked = self.graphs.encode(&masked)?;
        check(&m_masked, "output for the masked faces")?;
        let m_ref = self.graphs.encode(&original)?;
        check(&m_ref, "output for the reference faces")?;
        let mut eps = vec![0.0f32; LATENT_LEN];
        let mut masked_latents = vec![0.0f32; LATENT_LEN];
        Noise::new(self.config.seed, vae_stream(first_frame, false)).fill(&mut eps);
        sample_latents(&m_masked, FRAMES, HW, &eps, &mut masked_latents);
        let mut ref_latents = vec![0.0f32; LATENT_LEN];
        Noise::new(self.config.seed, vae_stream(first_frame, true)).fill(&mut eps);
        sample_latents(&m_ref, FRAMES, HW, &eps, &mut ref_latents);

        let batch = self.batch();
        let (sample_ty, hidden_ty) = self.graphs.unet_types();
        let mut sample = Buffer::zeros(sample_ty, batch * SAMPLE_LEN);
        let fhw = FRAMES * HW;
        for b in 0..batch {
            let base = b * SAMPLE_LEN;
            for f in 0..FRAMES {
                sample.write(base + 4 * fhw + f * HW, &self.mask.latent);
            }
            sample.write(base + 5 * fhw, &masked_latents);
            sample.write(base + 9 * fhw, &ref_latents);
        }
        // Conditioning: [16·batch, 50, 384], the unconditional (zero) half first.
        let mut cond = vec![0.0f32; FRAMES * EHS_FRAME];
        for (f, out) in cond.chunks_exact_mut(EHS_FRAME).enumerate() {
            audio.window_into(first_frame + f, out);
        }
        let mut hidden = Buffer::zeros(hidden_ty, batch * FRAMES * EHS_FRAME);
        hidden.write((batch - 1) * FRAMES * EHS_FRAME, &cond);

        let mut latents = vec![0.0f32; LATENT_LEN];
        for c in 0..LATENT_CHANNELS {
            for f in 0..FRAMES {
                latents[(c * FRAMES + f) * HW..][..HW]
                    .copy_from_slice(&self.initial[c * HW..][..HW]);
            }
        }
        Ok(ChunkState {
            real,
            original,
            latents,
            x0: vec![0.0; LATENT_LEN],
            x0_valid: false,
            sample,
            hidden,
            noise: vec![0.0; batch * LATENT_LEN],
            batch,
        })
    }

    /// Runs denoising step `step` of `n_steps` (one UNet call).
    pub(crate) fn step(
        &mut self,
        state: &mut ChunkState,
        step: usize,
        n_steps: usize,
    ) -> Result<(), LatentSyncError> {
        let t0 = Instant::now();
        if let Some(end) = self.last_step_end.take()
            && step > 0
        {
            self.timing.between += t0 - end;
        }
        if self.ddim.as_ref().is_none_or(|(n, _)| *n != n_steps) {
            self.ddim = Some((n_steps, Ddim::new(n_steps)));
        }
        let coeff = *self
            .ddim
            .as_ref()
            .and_then(|(_, d)| d.steps().get(step))
            .ok_or_else(|| {
                LatentSyncError::Input(format!("step {step} of {n_steps} does not exist"))
            })?;
        for b in 0..state.batch {
            state.sample.write(b * SAMPLE_LEN, &state.latents);
        }
        let u0 = Instant::now();
        self.graphs.unet(
            &state.sample,
            state.batch,
            coeff.timestep,
            &state.hidden,
            &mut state.noise,
        )?;
        let unet = u0.elapsed();
        let (uncond, cond) = if state.batch == 2 {
            let (u, c) = state.noise.split_at(LATENT_LEN);
            (Some(u), c)
        } else {
            (None, &state.noise[..])
        };
        guided_step(
            &coeff,
            self.config.guidance,
            &mut state.latents,
            cond,
            uncond,
            Some(&mut state.x0),
        );
        state.x0_valid = true;
        let all = t0.elapsed();
        self.since_preview += all;
        self.timing.unet_calls += 1;
        self.timing.unet += unet;
        self.timing.steps += all;
        self.last_step_end = Some(Instant::now());
        Ok(())
    }

    /// Whether an intermediate preview fits the budget now: the last decode is known and took
    /// at most `preview_budget` of the compute time since the last preview.
    pub(crate) fn preview_due(&self, state: &ChunkState) -> bool {
        state.x0_valid
            && self.timing.last_decode.is_some_and(|d| {
                d.as_secs_f64() <= self.config.preview_budget * self.since_preview.as_secs_f64()
            })
    }

    /// Face `index` of the chunk from the latest predicted clean latents.
    pub(crate) fn preview(
        &mut self,
        state: &ChunkState,
        index: usize,
    ) -> Result<Frame, LatentSyncError> {
        let src = if state.x0_valid {
            &state.x0
        } else {
            &state.latents
        };
        let index = index.min(state.real - 1);
        let faces = self.decode(src, &state.original, index..index + 1)?;
        self.since_preview = Duration::ZERO;
        self.last_step_end = Some(Instant::now());
        Ok(faces.into_iter().next().expect("one face decoded"))
    }

    /// The chunk's faces: decode, `decoded·(1 − mask) + original·mask`, padding dropped.
    pub(crate) fn finish(&mut self, state: ChunkState) -> Result<Vec<Frame>, LatentSyncError> {
        self.last_step_end = None;
        self.decode(&state.latents, &state.original, 0..state.real)
    }

    /// Decodes latents `[4, 16, 32, 32]` and blends faces `range` with the originals.
    fn decode(
        &mut self,
        latents: &[f32],
        original: &[f32],
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Frame>, LatentSyncError> {
        let t0 = Instant::now();
        // [4, 16, h, w] / 0.18215 → [16, 4, h, w].
        let mut input = vec![0.0f32; LATENT_LEN];
        for c in 0..LATENT_CHANNELS {
            for f in 0..FRAMES {
                let src = &latents[(c * FRAMES + f) * HW..][..HW];
                let dst = &mut input[(f * LATENT_CHANNELS + c) * HW..][..HW];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s / SCALING;
                }
            }
        }
        let decoded = self.graphs.decode(&input)?;
        if decoded.len() != PIXELS_LEN {
            return Err(LatentSyncError::Runtime {
                file: "vae_decoder.onnx".into(),
                message: format!("{} output values, expected {PIXELS_LEN}", decoded.len()),
            });
        }
        let plane = SIZE * SIZE;
        let faces = range
            .map(|f| {
                let mut data = vec![0u8; 3 * plane];
                for c in 0..3 {
                    let d = &decoded[(f * 3 + c) * plane..][..plane];
                    let o = &original[(f * 3 + c) * plane..][..plane];
                    for (p, ((&d, &o), &m)) in d.iter().zip(o).zip(&self.mask.pixels).enumerate() {
                        data[p * 3 + c] = from_unit(d * (1.0 - m) + o * m);
                    }
                }
                Frame::new(SIZE as u32, SIZE as u32, data).expect("256×256×3 bytes")
            })
            .collect();
        self.timing.last_decode = Some(t0.elapsed());
        Ok(faces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whisper stand-in whose output value at (segment, layer, frame, d) encodes where it is.
    fn code(segment: usize, layer: usize, frame: usize, d: usize) -> f32 {
        // Exact in f16: below 256 the spacing is 1/8.
        let _ = d;
        ((segment * 1500 + frame) % 200) as f32 + [0.0, 0.25, 0.5, 0.75, 0.125][layer]
    }

    #[test]
    fn windows_read_frames_then_layers_across_segments_and_clamp_at_both_ends() {
        // 3000 + 200 columns: 1500 + 100 embedding frames, two segments.
        let mel = WhisperMel::constant(3200, 0.0);
        let mut calls = 0;
        let emb = WhisperEmbeddings::compute(&mel, 25.0, |_| {
            let k = calls;
            calls += 1;
            let mut out = vec![0.0f32; WHISPER_OUT];
            for l in 0..EMBED_LAYERS {
                for e in 0..SEGMENT_EMBEDDINGS {
                    for d in 0..EMBED_DIM {
                        out[(l * SEGMENT_EMBEDDINGS + e) * EMBED_DIM + d] = code(k, l, e, d);
                    }
                }
            }
            Ok(out)
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(emb.len, 1600);
        let mut w = vec![0.0f32; EHS_FRAME];
        let rows = |emb: &WhisperEmbeddings, frame: usize, w: &mut Vec<f32>| {
            emb.window_into(frame, w);
            (0..WINDOW_ROWS)
                .map(|r| w[r * EMBED_DIM])
                .collect::<Vec<f32>>()
        };
        let expect = |idx: [usize; 10]| {
            idx.iter()
                .flat_map(|&e| (0..EMBED_LAYERS).map(move |l| code(e / 1500, l, e % 1500, 0)))
                .collect::<Vec<f32>>()
        };
        // Frame 0: centre 0, rows −4..−1 clamp to 0.
        assert_eq!(
            rows(&emb, 0, &mut w),
            expect([0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
        );
        // Frame 749: centre 1498, the window crosses into the second segment.
        assert_eq!(
            rows(&emb, 749, &mut w),
            expect([1494, 1495, 1496, 1497, 1498, 1499, 1500, 1501, 1502, 1503])
        );
        // Past the audio: every row is the last embedding frame.
        assert_eq!(rows(&emb, 900, &mut w), expect([1599; 10]));
    }

    /// Graphs of the right sizes that compute nothing (for the engine's bookkeeping).
    #[derive(Debug)]
    struct Zeros;

    impl Graphs for Zeros {
        fn encode(&mut self, _: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
            Ok(vec![0.0; FRAMES * 8 * HW])
        }
        fn decode(&mut self, _: &[f32]) -> Result<Vec<f32>, LatentSyncError> {
            Ok(vec![0.0; PIXELS_LEN])
        }
        fn unet_types(&self) -> (Float, Float) {
            (Float::F16, Float::F32)
        }
        fn unet(
            &mut self,
            sample: &Buffer,
            batch: usize,
            _: i64,
            hidden: &Buffer,
            out: &mut [f32],
        ) -> Result<(), LatentSyncError> {
            assert!(matches!(sample, Buffer::F16(v) if v.len() == batch * SAMPLE_LEN));
            assert!(matches!(hidden, Buffer::F32(v) if v.len() == batch * FRAMES * EHS_FRAME));
            out.fill(0.0);
            Ok(())
        }
    }

    #[test]
    fn previews_wait_until_a_decode_fits_the_budget() {
        let mel = WhisperMel::constant(400, 0.0);
        let audio = WhisperEmbeddings::compute(&mel, 25.0, |_| Ok(vec![0.0; WHISPER_OUT])).unwrap();
        let mut engine = Engine::new(Box::new(Zeros), LatentSyncConfig::default());
        let faces = vec![Frame::filled(256, 256, [9, 9, 9]); 5];
        let mut state = engine.begin(&faces, 0, &audio).unwrap();
        assert!(!engine.preview_due(&state), "no step yet");
        engine.step(&mut state, 0, 20).unwrap();
        assert!(!engine.preview_due(&state), "no decode measured yet");
        engine.timing.last_decode = Some(Duration::from_millis(10));
        engine.since_preview = Duration::from_millis(50);
        assert!(
            !engine.preview_due(&state),
            "10 ms is more than 10 % of 50 ms"
        );
        engine.since_preview = Duration::from_millis(200);
        assert!(engine.preview_due(&state));
        let face = engine.preview(&state, 0).unwrap();
        assert_eq!((face.width(), face.height()), (256, 256));
        assert!(
            !engine.preview_due(&state),
            "the budget restarts after a preview"
        );
        let out = engine.finish(state).unwrap();
        assert_eq!(out.len(), 5, "the padding is dropped");
    }

    #[test]
    fn too_little_audio_is_an_error() {
        let e = WhisperEmbeddings::compute(&WhisperMel::constant(1, 0.0), 25.0, |_| {
            Ok(vec![0.0; WHISPER_OUT])
        })
        .unwrap_err();
        assert!(e.to_string().contains("no whisper frames"), "{e}");
    }
}
