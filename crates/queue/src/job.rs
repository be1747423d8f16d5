//! What travels on the subjects: jobs, results and dead letters (JSON).

use std::path::PathBuf;

use pipeline::{Backend, LengthPolicy, NoFacePolicy, PipelineConfig};
use serde::{Deserialize, Serialize};

use crate::QueueError;

/// One lip-sync job: inputs, output and options. Paths are as every worker sees them (absolute
/// paths on storage shared by the fleet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id, one subject token (letters, digits, `-`, `_`).
    pub id: String,
    /// The video input.
    pub video: PathBuf,
    /// The audio input.
    pub audio: PathBuf,
    /// Where the output goes (written under a temporary name, renamed when complete).
    pub output: PathBuf,
    /// The pipeline's options.
    #[serde(default)]
    pub options: JobOptions,
}

impl Job {
    /// A job with a fresh unique id.
    pub fn new(
        video: impl Into<PathBuf>,
        audio: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        options: JobOptions,
    ) -> Self {
        Self {
            id: nuid::next().to_string(),
            video: video.into(),
            audio: audio.into(),
            output: output.into(),
            options,
        }
    }

    /// Checks what can be checked before a worker runs it: the id and the options.
    pub fn validate(&self) -> Result<(), QueueError> {
        if !crate::names::valid_job_id(&self.id) {
            return Err(QueueError::InvalidJob(format!(
                "job id {:?}: expected 1 to 64 ASCII letters, digits, '-' or '_'",
                self.id
            )));
        }
        self.options
            .config()
            .validate()
            .map_err(|e| QueueError::InvalidJob(format!("job {}: {e}", self.id)))
    }
}

/// The pipeline options a job carries: the serialisable part of [`PipelineConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobOptions {
    /// Face crop size: 256 or 512.
    pub resolution: u32,
    /// Inference refinement steps.
    pub steps: u32,
    /// Frames per chunk.
    pub chunk: usize,
    /// Frames without a face (`"pass"`, `"error"`, `"interpolate"` in JSON).
    #[serde(with = "as_text")]
    pub no_face: NoFacePolicy,
    /// Compute device (`"auto"`, `"gpu"`, `"cpu"`). With `auto`, the worker's
    /// `FACESYNC_BACKEND` decides (see `pipeline`'s precedence rule).
    #[serde(with = "as_text")]
    pub backend: Backend,
    /// Video/audio length policy (`"loop"`, `"trim"`).
    #[serde(with = "as_text")]
    pub length: LengthPolicy,
}

/// Serde through the options' own `Display`/`FromStr` (pipeline owns the spellings), so a job's
/// JSON reads the same names as the command line and Python.
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

impl Default for JobOptions {
    fn default() -> Self {
        let c = PipelineConfig::default();
        Self {
            resolution: c.resolution,
            steps: c.steps,
            chunk: c.chunk,
            no_face: c.no_face,
            backend: c.backend,
            length: c.length,
        }
    }
}

impl JobOptions {
    /// The pipeline configuration these options stand for.
    pub fn config(&self) -> PipelineConfig {
        PipelineConfig {
            resolution: self.resolution,
            steps: self.steps,
            chunk: self.chunk,
            no_face: self.no_face,
            backend: self.backend,
            length: self.length,
            ..PipelineConfig::default()
        }
    }
}

/// How a job ended, for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobOutcome {
    /// The output file is complete at the job's output path.
    Completed,
    /// Cancelled on `facesync.cancel.<job>`; no output.
    Cancelled,
    /// Failed on every allowed delivery; the job is on its dead-letter subject. No output.
    Dead,
}

/// The final word on a job, published once on `facesync.result.<job>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's id.
    pub job: String,
    /// How it ended.
    pub outcome: JobOutcome,
    /// Why, for [`JobOutcome::Dead`] (and the cancelled phase for a cancellation).
    pub error: Option<String>,
    /// The output file, for [`JobOutcome::Completed`].
    pub output: Option<PathBuf>,
    /// Frames written, for [`JobOutcome::Completed`].
    pub frames: Option<u64>,
    /// Which delivery of the job this was (1 = first).
    pub delivery: u64,
    /// The worker that ran it.
    pub worker: String,
    /// Seconds the last attempt ran.
    pub elapsed: f64,
}

/// A job given up after failing on every allowed delivery, on `facesync.dead.<job>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The job's id (`unknown` when the message was not a job at all).
    pub id: String,
    /// The job, when the message was one.
    pub job: Option<Job>,
    /// The message's text when it was not a job.
    pub payload: Option<String>,
    /// The last error.
    pub error: String,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The worker that gave up on it.
    pub worker: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips_through_json_and_missing_options_take_their_defaults() {
        let job = Job::new(
            "/in/v.y4m",
            "/in/a.wav",
            "/out/o.mp4",
            JobOptions {
                steps: 3,
                backend: Backend::Cpu,
                length: LengthPolicy::Trim,
                ..JobOptions::default()
            },
        );
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        let minimal: Job = serde_json::from_str(
            r#"{"id":"j1","video":"v.y4m","audio":"a.wav","output":"o.y4m","options":{"steps":2}}"#,
        )
        .unwrap();
        assert_eq!(minimal.options.steps, 2);
        assert_eq!(minimal.options.resolution, 256);
        assert_eq!(minimal.options.no_face, NoFacePolicy::Pass);
    }

    #[test]
    fn options_map_onto_the_pipeline_config() {
        let options = JobOptions {
            resolution: 512,
            steps: 4,
            chunk: 8,
            no_face: NoFacePolicy::Interpolate,
            backend: Backend::Gpu,
            length: LengthPolicy::Trim,
        };
        let c = options.config();
        assert_eq!((c.resolution, c.steps, c.chunk), (512, 4, 8));
        assert_eq!(c.no_face, NoFacePolicy::Interpolate);
        assert_eq!(c.backend, Backend::Gpu);
        assert_eq!(c.length, LengthPolicy::Trim);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut job = Job::new("v", "a", "o", JobOptions::default());
        assert!(job.validate().is_ok());
        job.options.resolution = 300;
        let err = job.validate().unwrap_err().to_string();
        assert!(err.contains("resolution 300 is not supported"), "{err}");
        job.options.resolution = 256;
        job.id = "a.b".into();
        let err = job.validate().unwrap_err().to_string();
        assert!(err.contains("job id \"a.b\""), "{err}");
    }

    #[test]
    fn options_travel_as_their_names_and_bad_names_are_refused() {
        let options = JobOptions {
            no_face: NoFacePolicy::Interpolate,
            backend: Backend::Cpu,
            length: LengthPolicy::Trim,
            ..JobOptions::default()
        };
        let json = serde_json::to_value(&options).unwrap();
        assert_eq!(json["no_face"], "interpolate");
        assert_eq!(json["backend"], "cpu");
        assert_eq!(json["length"], "trim");
        // The names older submitters wrote still read back.
        let old: JobOptions =
            serde_json::from_str(r#"{"no_face":"error","backend":"gpu","length":"loop"}"#).unwrap();
        assert_eq!(
            (old.no_face, old.backend, old.length),
            (NoFacePolicy::Error, Backend::Gpu, LengthPolicy::Loop)
        );
        let err = serde_json::from_str::<JobOptions>(r#"{"backend":"tpu"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown backend \"tpu\": expected one of auto, gpu, cpu"),
            "{err}"
        );
    }
}
