//! The silence gate: which video frames have no voice, so that every model gets its own
//! silence input there (a closed mouth) instead of what the noise floor would make of it.
//!
//! Why: a lip-sync model reads any audio as speech. Room noise, breaths and music under a
//! pause move the mouth, and users of every lip-sync tool see mouths chatter through silence.
//!
//! The level: the speech band (mel bands centred in 300–3000 Hz) of the built-in features
//! ([`AudioFeatures`]), in dBFS (a full-scale sine is 0), over each frame's time span. A frame is
//! voiced when the level reaches the threshold in it, in the next frame (the mouth may open
//! one frame before the sound, as it does in speech), or in the frames of the hang-over before
//! it ([`HANG_OVER_SECS`]: short pauses between words keep the mouth's own motion); every
//! other frame is silent.

use crate::AudioFeatures;

/// How long a frame stays voiced after the level last reached the threshold.
pub const HANG_OVER_SECS: f64 = 0.2;

/// Which frames of a clip are silent; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SilenceGate {
    silent: Vec<bool>,
}

impl SilenceGate {
    /// The gate of `audio`'s frames at `threshold_dbfs` (speech-band level in dBFS).
    pub fn new(audio: &AudioFeatures, threshold_dbfs: f32) -> Self {
        Self::from_levels(&audio.speech_db(), audio.fps(), threshold_dbfs)
    }

    /// The gate of frames with speech-band levels `db` (dBFS, one per frame) at `fps`.
    pub fn from_levels(db: &[f32], fps: f64, threshold_dbfs: f32) -> Self {
        let hang = (HANG_OVER_SECS * fps).round().max(0.0) as usize;
        let loud: Vec<bool> = db.iter().map(|&d| d >= threshold_dbfs).collect();
        let silent = (0..loud.len())
            .map(|i| {
                let from = i.saturating_sub(hang);
                let to = (i + 1).min(loud.len() - 1);
                !loud[from..=to].iter().any(|&l| l)
            })
            .collect();
        Self { silent }
    }

    /// Whether video frame `frame` is silent (frames past the clip's are not: the gate knows
    /// nothing of them).
    pub fn is_silent(&self, frame: usize) -> bool {
        self.silent.get(frame).copied().unwrap_or(false)
    }

    /// How many frames are silent.
    pub fn silent_frames(&self) -> usize {
        self.silent.iter().filter(|&&s| s).count()
    }

    /// Frames the gate covers.
    pub fn len(&self) -> usize {
        self.silent.len()
    }

    /// Whether the gate covers no frame.
    pub fn is_empty(&self) -> bool {
        self.silent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(levels: &[f32], fps: f64) -> String {
        let g = SilenceGate::from_levels(levels, fps, -50.0);
        (0..levels.len())
            .map(|i| if g.is_silent(i) { '_' } else { 'V' })
            .collect()
    }

    #[test]
    fn voiced_frames_open_one_frame_early_and_hold_for_the_hang_over() {
        // 25 fps: the hang-over is 5 frames.
        let mut levels = vec![-90.0; 20];
        levels[6] = -30.0;
        assert_eq!(gate(&levels, 25.0), "_____VVVVVVV________");
        levels[8] = -30.0; // a short pause inside the hang-over stays voiced
        assert_eq!(gate(&levels, 25.0), "_____VVVVVVVVV______");
    }

    #[test]
    fn the_threshold_is_inclusive_and_everything_quiet_is_silent() {
        // 2 fps: no hang-over (0.2 s is less than half a frame), only the one-frame lead.
        assert_eq!(gate(&[-90.0, -90.0, -50.0, -50.1, -120.0], 2.0), "_VV__");
        let quiet = SilenceGate::from_levels(&[-60.0; 4], 25.0, -50.0);
        assert_eq!(quiet.silent_frames(), 4);
        assert!(!quiet.is_silent(4)); // past the clip
        assert_eq!(gate(&[], 25.0), "");
    }

    #[test]
    fn real_audio_silence_then_a_tone() {
        // 1 s of digital silence, then 1 s of a 440 Hz tone at -20 dBFS, 16 kHz, 25 fps.
        let rate = 16_000;
        let mut samples = vec![0.0f32; rate];
        let amp = 0.1 * std::f32::consts::SQRT_2;
        samples.extend(
            (0..rate).map(|n| amp * (std::f32::consts::TAU * 440.0 * n as f32 / rate as f32).sin()),
        );
        let audio = AudioFeatures::from_samples(&samples, 1, rate as u32, 25.0, 50).unwrap();
        let g = SilenceGate::new(&audio, -50.0);
        assert_eq!(g.len(), 50);
        // Silent up to the frame before the tone's (it opens one frame early, and the
        // analysis window reaches a little into the tone), voiced from there to the end.
        assert!((0..22).all(|i| g.is_silent(i)), "{g:?}");
        assert!((25..50).all(|i| !g.is_silent(i)), "{g:?}");
        // The same tone below the threshold: all silent.
        assert_eq!(SilenceGate::new(&audio, -10.0).silent_frames(), 50);
    }
}
