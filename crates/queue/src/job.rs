//! What travels on the subjects: jobs, results and dead letters (JSON).

use std::path::PathBuf;

use pipeline::RunOptions;
use serde::{Deserialize, Serialize};

use crate::QueueError;

/// The version of the job message this build writes and reads. A worker dead-letters a job
/// of a newer version (it cannot know what the new fields mean) rather than guess.
pub const JOB_VERSION: u32 = 1;
/// The largest job message a worker reads, in bytes; a larger one is dead-lettered unread.
pub const MAX_JOB_BYTES: usize = 64 * 1024;
/// One lip-sync job: inputs, output and options. Paths are as every worker sees them (absolute
/// paths on storage shared by the fleet).
///
/// Unknown fields are refused (a misspelt option would otherwise be silently ignored); a
/// message without `version` is version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The message format's version, [`JOB_VERSION`] for the jobs this build writes.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Unique id, one subject token (letters, digits, `-`, `_`).
    pub id: String,
    /// The video input.
    pub video: PathBuf,
    /// The audio input.
    pub audio: PathBuf,
    /// Where the output goes (written under a temporary name, renamed when complete).
    pub output: PathBuf,
    /// The pipeline's options (limits: [`RunOptions::validate`]).
    #[serde(default)]
    pub options: RunOptions,
}

impl Job {
    /// A job with a fresh unique id.
    pub fn new(
        video: impl Into<PathBuf>,
        audio: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        options: RunOptions,
    ) -> Self {
        Self {
            version: JOB_VERSION,
            id: nuid::next().to_string(),
            video: video.into(),
            audio: audio.into(),
            output: output.into(),
            options,
        }
    }

    /// Reads a job message as a worker does: at most [`MAX_JOB_BYTES`], JSON, a version
    /// this build knows, no unknown field, then [`validate`](Self::validate). Every refusal
    /// says what is wrong; nothing in the message can make it panic.
    pub fn decode(payload: &[u8]) -> Result<Self, QueueError> {
        if payload.len() > MAX_JOB_BYTES {
            return Err(QueueError::InvalidJob(format!(
                "the job message has {} bytes, more than the {MAX_JOB_BYTES} allowed",
                payload.len()
            )));
        }
        #[derive(Deserialize)]
        struct Head {
            version: Option<serde_json::Value>,
        }
        let json_error = |source| QueueError::Json {
            what: "not a job message".into(),
            source,
        };
        let head: Head = serde_json::from_slice(payload).map_err(json_error)?;
        if let Some(version) = head.version {
            match version.as_u64() {
                Some(v) if (1..=u64::from(JOB_VERSION)).contains(&v) => {}
                Some(v) if v > u64::from(JOB_VERSION) => {
                    return Err(QueueError::InvalidJob(format!(
                        "job message version {v} is newer than this worker's {JOB_VERSION}: \
                         upgrade the worker"
                    )));
                }
                _ => {
                    return Err(QueueError::InvalidJob(format!(
                        "job message version {version}: expected a whole number from 1 to \
                         {JOB_VERSION}"
                    )));
                }
            }
        }
        let job: Self = serde_json::from_slice(payload).map_err(json_error)?;
        job.validate()?;
        Ok(job)
    }

    /// Checks what can be checked before a worker runs it: the version, the id and the
    /// options (their limits: [`RunOptions::validate`]).
    pub fn validate(&self) -> Result<(), QueueError> {
        if !crate::names::valid_job_id(&self.id) {
            return Err(QueueError::InvalidJob(format!(
                "job id {:?}: expected 1 to 64 ASCII letters, digits, '-' or '_'",
                self.id
            )));
        }
        if !(1..=JOB_VERSION).contains(&self.version) {
            return Err(QueueError::InvalidJob(format!(
                "job {}: version {} (this build knows 1 to {JOB_VERSION})",
                self.id, self.version
            )));
        }
        for (what, path) in [
            ("video", &self.video),
            ("audio", &self.audio),
            ("output", &self.output),
        ] {
            if path.as_os_str().is_empty() {
                return Err(QueueError::InvalidJob(format!(
                    "job {}: the {what} path is empty",
                    self.id
                )));
            }
        }
        self.options
            .validate()
            .map_err(|source| QueueError::InvalidOptions {
                job: self.id.clone(),
                source,
            })
    }
}

fn first_version() -> u32 {
    1
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
    use pipeline::{Backend, LengthPolicy, ModelSpec, NoFacePolicy};

    use super::*;

    #[test]
    fn a_job_round_trips_through_json_and_missing_options_take_their_defaults() {
        let job = Job::new(
            "/in/v.y4m",
            "/in/a.wav",
            "/out/o.mp4",
            RunOptions {
                steps: 3,
                backend: Backend::Cpu,
                length: LengthPolicy::Trim,
                ..RunOptions::default()
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
        assert_eq!(minimal.options.model, ModelSpec::Builtin);
    }

    #[test]
    fn the_model_travels_as_its_spec_string() {
        let options = RunOptions {
            model: ModelSpec::Wav2Lip("/models/wav2lip_96.onnx".into()),
            ..RunOptions::default()
        };
        let json = serde_json::to_value(&options).unwrap();
        assert_eq!(json["model"], "wav2lip:/models/wav2lip_96.onnx");
        assert_eq!(serde_json::from_value::<RunOptions>(json).unwrap(), options);
        let bad = serde_json::from_str::<RunOptions>(r#"{"model":"sadtalker:x"}"#).unwrap_err();
        assert!(
            bad.to_string().contains("unknown model `sadtalker:x`"),
            "{bad}"
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let mut job = Job::new("v", "a", "o", RunOptions::default());
        assert!(job.validate().is_ok());
        job.options.resolution = 300;
        let err = job.validate().unwrap_err();
        assert!(
            matches!(&err, QueueError::InvalidOptions { source, .. } if source.option == "resolution"),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(err.contains("resolution 300 is not supported"), "{err}");
        job.options.resolution = 256;
        job.id = "a.b".into();
        let err = job.validate().unwrap_err().to_string();
        assert!(err.contains("job id \"a.b\""), "{err}");
    }

    #[test]
    fn the_decoder_refuses_hostile_messages_with_the_reason() {
        let ok = r#"{"id":"j1","video":"/v","audio":"/a","output":"/o"}"#;
        assert_eq!(Job::decode(ok.as_bytes()).unwrap().version, 1);
        let with = |extra: &str| ok.replace('}', &format!(",{extra}}}"));
        for (payload, expected) in [
            (String::new(), "not a job message: EOF"),
            ("null".into(), "not a job message"),
            ("{\"id\":\"j\"".into(), "not a job message: EOF"),
            (with(r#""version":0"#), "job message version 0: expected"),
            (
                with(r#""version":1.5"#),
                "job message version 1.5: expected",
            ),
            (
                with(r#""version":7"#),
                "version 7 is newer than this worker's 1",
            ),
            (with(r#""extra":1"#), "unknown field `extra`"),
            (
                with(r#""options":{"chunk":0}"#),
                "chunk 0 is out of range (1 to 256)",
            ),
            (
                with(r#""options":{"steps":101}"#),
                "steps 101 is out of range (1 to 100)",
            ),
            (ok.replace("\"/v\"", "\"\""), "the video path is empty"),
            (ok.replace("j1", "j 1"), "job id \"j 1\""),
            (
                with(&format!(r#""pad":"{}""#, "x".repeat(MAX_JOB_BYTES))),
                "more than the 65536 allowed",
            ),
        ] {
            let err = Job::decode(payload.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{payload:.80}: {err}");
        }
    }

    #[test]
    fn options_travel_as_their_names_and_bad_names_are_refused() {
        let options = RunOptions {
            no_face: NoFacePolicy::Interpolate,
            backend: Backend::Cpu,
            length: LengthPolicy::Trim,
            ..RunOptions::default()
        };
        let json = serde_json::to_value(&options).unwrap();
        assert_eq!(json["no_face"], "interpolate");
        assert_eq!(json["backend"], "cpu");
        assert_eq!(json["length"], "trim");
        // The names older submitters wrote still read back.
        let old: RunOptions =
            serde_json::from_str(r#"{"no_face":"error","backend":"gpu","length":"loop"}"#).unwrap();
        assert_eq!(
            (old.no_face, old.backend, old.length),
            (NoFacePolicy::Error, Backend::Gpu, LengthPolicy::Loop)
        );
        let err = serde_json::from_str::<RunOptions>(r#"{"backend":"tpu"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown backend \"tpu\": expected one of auto, gpu, cpu"),
            "{err}"
        );
    }
}
