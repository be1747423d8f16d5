//! The run options, written once: their type, spellings, defaults, limits and help.
//!
//! Why one place: the command line, Python (`facesync.run(**options)`), queue jobs (JSON) and
//! the ComfyUI node all take the same options, and each used to spell them, default them and
//! bound them on its own (`steps` had no limit here, 100 in the queue, 200 in the node).
//! [`RunOptions`] is the value (serde, unknown fields refused), [`RunOptions::validate`] holds
//! every limit, and [`RunOptions::SCHEMA`] describes each option (name, kind, default, range,
//! help) for the front ends that build their inputs from it: the CLI's flags, the Python
//! binding's keyword check and the node's widgets. [`RunOptions::set`] is the one parser from
//! a front end's value (text, number) to the field.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Backend, ModelSpec};

/// The most inference steps a run may ask for (the default is 20): past a few dozen DDIM
/// steps nothing visible changes, and a fleet's worker must bound a job's time.
pub const MAX_STEPS: u32 = 100;
/// The largest chunk a run may ask for, in frames (the default is 16): frames in flight, so
/// memory, grow with it.
pub const MAX_CHUNK: usize = 256;

/// What to do with a frame in which no usable face is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoFacePolicy {
    /// Copy the frame through untouched (default).
    #[default]
    Pass,
    /// Stop the run with an error.
    Error,
    /// Give the frame a transform from its neighbours with a face, for gaps of up to 12
    /// frames (longer gaps pass through): blended linearly between the faces on either side
    /// when both are in the same chunk, else the last face's transform held.
    Interpolate,
}

/// How video and audio lengths are reconciled; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthPolicy {
    /// Output as long as the audio: a shorter video plays ping-pong, a longer one is cut.
    #[default]
    Loop,
    /// Output as long as the shorter of video and audio.
    Trim,
}

/// Names, `Display` and `FromStr` (case-insensitive, blanks around ignored) for an option enum:
/// one spelling per variant, shared by every front end.
macro_rules! option_names {
    ($ty:ident, $option:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in the order of `NAMES`.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// The accepted spellings: what `Display` prints and `FromStr` reads.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name `Display` prints and `FromStr` reads back.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = ParseOptionError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| ParseOptionError {
                        option: $option,
                        value: s.to_owned(),
                        accepted: Self::NAMES,
                    })
            }
        }
    };
}

option_names!(NoFacePolicy, "no-face policy", { Pass = "pass", Error = "error", Interpolate = "interpolate" });
option_names!(LengthPolicy, "length policy", { Loop = "loop", Trim = "trim" });

/// The silence gate's threshold ([`infer::SilenceGate`]): frames whose speech-band level (mel
/// bands of 300–3000 Hz, in dBFS: a full-scale sine is 0) stays below it, a one-frame lead and
/// a 0.2 s hang-over aside, get the model's own silence input: FaceFusion's empty audio frame
/// for Wav2Lip and EDTalk, a closed (untouched) mouth for the built-in model. LatentSync is not
/// gated. Text: a number (`-50`) or `off`; JSON: a number or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SilenceThreshold {
    /// No gate: every frame's audio goes to the model as it is.
    Off,
    /// The level in dBFS, from [`MIN_SILENCE_DBFS`] to 0.
    Dbfs(f32),
}

/// The default silence threshold: below speech at any usual recording level (−35 to −15 dBFS
/// in the speech band), above a quiet room's noise floor (−60 and lower).
pub const DEFAULT_SILENCE_DBFS: f32 = -50.0;
/// The lowest threshold accepted (lower levels are digital silence).
pub const MIN_SILENCE_DBFS: f32 = -100.0;

impl Default for SilenceThreshold {
    fn default() -> Self {
        SilenceThreshold::Dbfs(DEFAULT_SILENCE_DBFS)
    }
}

impl fmt::Display for SilenceThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SilenceThreshold::Off => f.write_str("off"),
            SilenceThreshold::Dbfs(v) => write!(f, "{v}"),
        }
    }
}

/// A string that is not one of an option's names (see [`NoFacePolicy`], [`LengthPolicy`];
/// [`Backend`] has [`crate::ParseBackendError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {option} {value:?}: expected one of {}", accepted.join(", "))]
pub struct ParseOptionError {
    /// Which option (`"no-face policy"`, `"length policy"`).
    pub option: &'static str,
    /// The rejected text, as given.
    pub value: String,
    /// The accepted names.
    pub accepted: &'static [&'static str],
}

/// The options of a run that every front end takes (CLI flags, Python keywords, a queue job's
/// `options`, the ComfyUI node's inputs); see the module docs. In JSON every field is
/// optional (its default is used) and an unknown one is refused; the enums and the model
/// travel as their names (`"interpolate"`, `"wav2lip:/models/wav2lip_96.onnx"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunOptions {
    /// Face crop size: 256 or 512. Wav2Lip and EDTalk always get FaceFusion's 512 crop.
    pub resolution: u32,
    /// Refinement steps of the inference model: 1 to [`MAX_STEPS`].
    pub steps: u32,
    /// Frames per chunk (the unit of streaming, inference and cancellation): 1 to
    /// [`MAX_CHUNK`].
    pub chunk: usize,
    /// Frames without a face.
    #[serde(with = "as_text")]
    pub no_face: NoFacePolicy,
    /// Compute device. With `auto`, `FACESYNC_BACKEND` decides (see
    /// [`gpu::GpuOptions::resolve`]).
    #[serde(with = "as_text")]
    pub backend: Backend,
    /// Video/audio length policy.
    #[serde(with = "as_text")]
    pub length: LengthPolicy,
    /// The lip-sync model (default: the built-in one); in JSON its spec string, the path as
    /// the process that runs it sees it.
    #[serde(with = "as_text")]
    pub model: ModelSpec,
    /// The learned lip-sync model's lip strength, 0 to 1 (default 0.5), as FaceFusion's
    /// `--lip-syncer-weight`: Wav2Lip's mel is scaled by `weight × 2` (unchanged at 0.5),
    /// EDTalk gets it as its `weight` input; the built-in model and LatentSync ignore it.
    pub model_weight: f32,
    /// The silence gate (default −50 dBFS); see [`SilenceThreshold`].
    #[serde(with = "silence_json")]
    pub silence_threshold: SilenceThreshold,
}

const DEFAULT_RESOLUTION: u32 = 256;
const DEFAULT_STEPS: u32 = 20;
const DEFAULT_CHUNK: usize = 16;
const DEFAULT_MODEL_WEIGHT: f32 = 0.5;

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            resolution: DEFAULT_RESOLUTION,
            steps: DEFAULT_STEPS,
            chunk: DEFAULT_CHUNK,
            no_face: NoFacePolicy::Pass,
            backend: Backend::Auto,
            length: LengthPolicy::Loop,
            model: ModelSpec::Builtin,
            model_weight: DEFAULT_MODEL_WEIGHT,
            silence_threshold: SilenceThreshold::default(),
        }
    }
}

/// One option as the front ends show it: see [`RunOptions::SCHEMA`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionInfo {
    /// The name in JSON, Python and the node (`no_face`); the CLI flag is the same with `-`
    /// for `_` (`--no-face`).
    pub name: &'static str,
    /// What a value looks like, for a command line's help (`256|512`, `N`).
    pub value_name: &'static str,
    /// One paragraph for help texts and tooltips (without the default).
    pub help: &'static str,
    /// The kind of value, its default and its limits.
    pub kind: OptionKind,
}

/// The value of an option: kind, default and limits (see [`OptionInfo`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OptionKind {
    /// A whole number from `min` to `max`; when `only` is not empty, one of those values.
    Int {
        /// The default.
        default: i64,
        /// The smallest value.
        min: i64,
        /// The largest value.
        max: i64,
        /// The only values accepted (empty: all of `min..=max`).
        only: &'static [i64],
    },
    /// A number from `min` to `max`.
    Float {
        /// The default.
        default: f64,
        /// The smallest value.
        min: f64,
        /// The largest value.
        max: f64,
    },
    /// One of a few names.
    Choice {
        /// The default.
        default: &'static str,
        /// The accepted names.
        choices: &'static [&'static str],
    },
    /// Text with a syntax of its own (the model spec).
    Text {
        /// The default.
        default: &'static str,
    },
    /// A number from `min` to `max`, or the word `off` (the silence threshold).
    Level {
        /// The default.
        default: f64,
        /// The smallest value.
        min: f64,
        /// The largest value.
        max: f64,
        /// The word that turns it off.
        off: &'static str,
    },
}

impl OptionKind {
    /// The default as text (what `--help` shows and [`RunOptions::set`] reads back).
    pub fn default_text(&self) -> String {
        match *self {
            OptionKind::Int { default, .. } => default.to_string(),
            OptionKind::Float { default, .. } | OptionKind::Level { default, .. } => {
                default.to_string()
            }
            OptionKind::Choice { default, .. } | OptionKind::Text { default } => default.into(),
        }
    }
}

/// A value for [`RunOptions::set`], as a front end has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionValue<'a> {
    /// Text: a command line's argument, a Python `str`. Numbers are parsed from it.
    Text(&'a str),
    /// A whole number (a Python `int`).
    Int(i64),
    /// A number (a Python `float`); a whole-number option takes it only when it is whole.
    Float(f64),
}

impl fmt::Display for OptionValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Text(s) => write!(f, "{s:?}"),
            OptionValue::Int(v) => write!(f, "{v}"),
            OptionValue::Float(v) => write!(f, "{v}"),
        }
    }
}

/// An option that is unknown, cannot be read, or is out of its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionsError {
    /// The option's name ([`OptionInfo::name`]), or the unknown name as given.
    pub option: String,
    /// Whether the name itself is unknown (a front end may answer it as a misspelt keyword).
    pub unknown: bool,
    message: String,
}

impl OptionsError {
    fn new(option: &str, message: String) -> Self {
        Self {
            option: option.into(),
            unknown: false,
            message,
        }
    }

    fn range(info: &OptionInfo, value: impl fmt::Display) -> Self {
        let limits = match info.kind {
            OptionKind::Int { only, .. } if !only.is_empty() => {
                let names: Vec<String> = only.iter().map(i64::to_string).collect();
                return Self::new(
                    info.name,
                    format!(
                        "{} {value} is not supported ({})",
                        info.name,
                        names.join(" or ")
                    ),
                );
            }
            OptionKind::Int { min, max, .. } => format!("{min} to {max}"),
            OptionKind::Float { min, max, .. } => format!("{min} to {max}"),
            OptionKind::Level { min, max, off, .. } => format!("{min} to {max}, or {off}"),
            OptionKind::Choice { .. } | OptionKind::Text { .. } => String::new(),
        };
        Self::new(
            info.name,
            format!(
                "{} {value} is out of range ({limits})",
                info.name.replace('_', " ")
            ),
        )
    }
}

impl RunOptions {
    /// Every option, in the order front ends list them.
    pub const SCHEMA: &'static [OptionInfo] = &[
        OptionInfo {
            name: "resolution",
            value_name: "256|512",
            help: "Face crop size: 512 keeps more detail and is slower; Wav2Lip and EDTalk always \
                   get FaceFusion's 512 crop",
            kind: OptionKind::Int {
                default: DEFAULT_RESOLUTION as i64,
                min: 256,
                max: 512,
                only: &[256, 512],
            },
        },
        OptionInfo {
            name: "steps",
            value_name: "N",
            help: "Refinement steps of the mouth model (LatentSync: DDIM steps): more steps, \
                   smoother mouths, longer runs",
            kind: OptionKind::Int {
                default: DEFAULT_STEPS as i64,
                min: 1,
                max: MAX_STEPS as i64,
                only: &[],
            },
        },
        OptionInfo {
            name: "chunk",
            value_name: "N",
            help: "Frames per chunk, the unit of streaming and cancellation (LatentSync: 16 or \
                   less)",
            kind: OptionKind::Int {
                default: DEFAULT_CHUNK as i64,
                min: 1,
                max: MAX_CHUNK as i64,
                only: &[],
            },
        },
        OptionInfo {
            name: "no_face",
            value_name: "pass|error|interpolate",
            help: "Frames without a face: pass (copied untouched), error (stop the run), \
                   interpolate (the transform of the faces either side, for gaps up to 12 \
                   frames)",
            kind: OptionKind::Choice {
                default: NoFacePolicy::Pass.as_str(),
                choices: NoFacePolicy::NAMES,
            },
        },
        OptionInfo {
            name: "backend",
            value_name: "auto|gpu|cpu",
            help: "Compute device: auto (a hardware GPU when there is one, else the CPU; \
                   FACESYNC_BACKEND may choose), gpu (any adapter, a software one included), \
                   cpu",
            kind: OptionKind::Choice {
                default: Backend::Auto.as_str(),
                choices: &Backend::NAMES,
            },
        },
        OptionInfo {
            name: "length",
            value_name: "loop|trim",
            help: "Video/audio length: loop (as long as the audio; a shorter video plays \
                   forwards then backwards), trim (the shorter of the two)",
            kind: OptionKind::Choice {
                default: LengthPolicy::Loop.as_str(),
                choices: LengthPolicy::NAMES,
            },
        },
        OptionInfo {
            name: "model",
            value_name: "builtin|wav2lip:PATH|edtalk:PATH|latentsync:DIR",
            help: "The lip-sync model: builtin, wav2lip:PATH or edtalk:PATH (FaceFusion's \
                   wav2lip_96.onnx / wav2lip_gan_96.onnx / edtalk_256.onnx), or latentsync:DIR \
                   (LatentSync's ONNX export: whisper_tiny, vae_encoder, vae_decoder, unet + \
                   unet_weights.pb; resolution 256, chunk 16 or less). Learned models run on \
                   ONNX Runtime, on CUDA when the backend allows a GPU and the library has it, \
                   else on the CPU",
            kind: OptionKind::Text { default: "builtin" },
        },
        OptionInfo {
            name: "model_weight",
            value_name: "W",
            help: "Lip strength of a learned model, 0 to 1, as FaceFusion's \
                   --lip-syncer-weight: Wav2Lip's mel scaled by 2×W, EDTalk's weight input",
            kind: OptionKind::Float {
                default: DEFAULT_MODEL_WEIGHT as f64,
                min: 0.0,
                max: 1.0,
            },
        },
        OptionInfo {
            name: "silence_threshold",
            value_name: "DBFS|off",
            help: "Silence gate: frames whose speech-band level stays below this many dBFS \
                   (with a 0.2 s hang-over) get the model's own silence input, a closed mouth \
                   (Wav2Lip/EDTalk: FaceFusion's empty audio frame; LatentSync is not gated); \
                   off to disable",
            kind: OptionKind::Level {
                default: DEFAULT_SILENCE_DBFS as f64,
                min: MIN_SILENCE_DBFS as f64,
                max: 0.0,
                off: "off",
            },
        },
    ];

    /// The schema entry of the option `name`.
    pub fn info(name: &str) -> Option<&'static OptionInfo> {
        Self::SCHEMA.iter().find(|info| info.name == name)
    }

    /// Sets the option `name` from a front end's value: text is parsed as the option's type
    /// (the one parser of every option string), numbers are taken as they are; the value's
    /// limits are checked at once (a refused value changes nothing). An unknown name is an error with [`OptionsError::unknown`]
    /// set; the error names the option and the problem.
    pub fn set(&mut self, name: &str, value: OptionValue<'_>) -> Result<(), OptionsError> {
        let info = Self::info(name).ok_or_else(|| OptionsError {
            option: name.into(),
            unknown: true,
            message: format!(
                "unknown option `{name}` (known: {})",
                Self::SCHEMA
                    .iter()
                    .map(|info| info.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        // Set on a copy: a refused value leaves the options as they were.
        let mut next = self.clone();
        match info.name {
            "resolution" => next.resolution = int(info, value)?,
            "steps" => next.steps = int(info, value)?,
            "chunk" => next.chunk = int(info, value)?,
            "no_face" => next.no_face = parse(info, value)?,
            "backend" => next.backend = parse(info, value)?,
            "length" => next.length = parse(info, value)?,
            "model" => next.model = parse(info, value)?,
            "model_weight" => next.model_weight = float(info, value)? as f32,
            "silence_threshold" => {
                next.silence_threshold = match value {
                    OptionValue::Text(s) if s.trim().eq_ignore_ascii_case("off") => {
                        SilenceThreshold::Off
                    }
                    other => SilenceThreshold::Dbfs(float(info, other)? as f32),
                }
            }
            _ => unreachable!("every schema entry has a field: {name}"),
        }
        next.check(info)?;
        *self = next;
        Ok(())
    }

    /// Checks every limit (the schema's ranges): what a front end checks before any work.
    /// [`crate::run`] and [`crate::run_with`] check it again.
    pub fn validate(&self) -> Result<(), OptionsError> {
        Self::SCHEMA.iter().try_for_each(|info| self.check(info))
    }

    /// Checks one option's limits.
    fn check(&self, info: &OptionInfo) -> Result<(), OptionsError> {
        let in_range = |value: f64| match info.kind {
            OptionKind::Int { min, max, only, .. } => {
                (min as f64..=max as f64).contains(&value)
                    && (only.is_empty() || only.iter().any(|&v| v as f64 == value))
            }
            OptionKind::Float { min, max, .. } | OptionKind::Level { min, max, .. } => {
                (min..=max).contains(&value)
            }
            OptionKind::Choice { .. } | OptionKind::Text { .. } => true,
        };
        let ok = match info.name {
            "resolution" => in_range(f64::from(self.resolution)),
            "steps" => in_range(f64::from(self.steps)),
            "chunk" => in_range(self.chunk as f64),
            "model_weight" => in_range(f64::from(self.model_weight)),
            "silence_threshold" => match self.silence_threshold {
                SilenceThreshold::Off => true,
                SilenceThreshold::Dbfs(v) => in_range(f64::from(v)),
            },
            _ => true,
        };
        if ok {
            return Ok(());
        }
        Err(match info.name {
            "resolution" => OptionsError::range(info, self.resolution),
            "steps" => OptionsError::range(info, self.steps),
            "chunk" => OptionsError::range(info, self.chunk),
            "silence_threshold" => OptionsError::range(info, self.silence_threshold),
            _ => OptionsError::range(info, self.model_weight),
        })
    }
}

/// A whole-number option's value (range checked by [`RunOptions::check`], except what does not
/// fit the field's type).
fn int<T: TryFrom<i64>>(info: &OptionInfo, value: OptionValue<'_>) -> Result<T, OptionsError> {
    let whole = match value {
        OptionValue::Int(v) => v,
        OptionValue::Float(v) if v.fract() == 0.0 && v.abs() < 1e15 => v as i64,
        OptionValue::Text(s) => s.trim().parse::<i64>().map_err(|_| {
            OptionsError::new(
                info.name,
                format!("{}: {s:?} is not a whole number", info.name),
            )
        })?,
        OptionValue::Float(v) => {
            return Err(OptionsError::new(
                info.name,
                format!("{}: {v} is not a whole number", info.name),
            ));
        }
    };
    T::try_from(whole).map_err(|_| OptionsError::range(info, whole))
}

/// A number option's value.
fn float(info: &OptionInfo, value: OptionValue<'_>) -> Result<f64, OptionsError> {
    let number = match value {
        OptionValue::Int(v) => v as f64,
        OptionValue::Float(v) => v,
        OptionValue::Text(s) => s.trim().parse::<f64>().map_err(|_| {
            OptionsError::new(info.name, format!("{}: {s:?} is not a number", info.name))
        })?,
    };
    if number.is_finite() {
        Ok(number)
    } else {
        Err(OptionsError::range(info, number))
    }
}

/// A named or text option's value, through its type's `FromStr`: only text is accepted.
fn parse<T>(info: &OptionInfo, value: OptionValue<'_>) -> Result<T, OptionsError>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let problem = match value {
        OptionValue::Text(s) => match s.parse() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        },
        other => format!("expected text, got {other}"),
    };
    Err(OptionsError::new(
        info.name,
        format!("{}: {problem}", info.name),
    ))
}

/// Serde through the options' own `Display`/`FromStr` (this module owns the spellings), so JSON
/// reads the same names as the command line and Python.
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Serde of [`SilenceThreshold`]: a number of dBFS, or `"off"` (a number as text is read too).
mod silence_json {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use super::SilenceThreshold;

    pub(super) fn serialize<S: Serializer>(v: &SilenceThreshold, s: S) -> Result<S::Ok, S::Error> {
        match *v {
            SilenceThreshold::Off => s.serialize_str("off"),
            SilenceThreshold::Dbfs(db) => s.serialize_f32(db),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<SilenceThreshold, D::Error> {
        let mut options = super::RunOptions::default();
        let value = match Value::deserialize(d)? {
            Value::Number(n) => options.set("silence_threshold", super::OptionValue::Float(n)),
            Value::Text(t) => options.set("silence_threshold", super::OptionValue::Text(&t)),
        };
        value.map_err(D::Error::custom)?;
        Ok(options.silence_threshold)
    }
}

#[cfg(test)]
mod tests;
