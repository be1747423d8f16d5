//! Every stream, consumer and subject name, in one place.
//!
//! ```text
//! submit ──▶ facesync.jobs ──▶ stream FACESYNC_JOBS (work queue) ──▶ consumer facesync-workers
//!                                                                      │ one job per pull
//! workers ──▶ facesync.progress.<job>  (progress-core JSON events)     ▼
//!         ──▶ facesync.result.<job>    (completed | cancelled | dead)  ──▶ stream FACESYNC_EVENTS
//! cancel  ──▶ facesync.cancel.<job>    (the worker's cancel token)     ──▶ (facesync.*.*,
//! workers ──▶ facesync.dead.<job>      (job + error after N failures)  ──▶  kept 7 days)
//! ```
//!
//! One events stream rather than one per kind: nats-server 2.9 lets a consumer filter on one
//! subject only, which must lie inside one of the stream's subjects, and `facesync.*.<job>`
//! (everything about a job, in order, for a watcher) lies inside `facesync.*.*` only.

/// The work-queue stream holding submitted jobs until a worker acknowledges them.
pub const JOBS_STREAM: &str = "FACESYNC_JOBS";
/// The subject jobs are published on.
pub const JOBS_SUBJECT: &str = "facesync.jobs";
/// The durable pull consumer every worker shares.
pub const WORKERS_CONSUMER: &str = "facesync-workers";
/// The stream keeping progress events, results, cancel requests and dead letters, so that a
/// watcher that comes late still sees a job from its start, and a cancel sent before the job
/// starts counts.
pub const EVENTS_STREAM: &str = "FACESYNC_EVENTS";
/// How long [`EVENTS_STREAM`] keeps its messages.
pub const EVENTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The subject of a job's progress events (progress-core's versioned JSON).
pub fn progress_subject(job: &str) -> String {
    format!("facesync.progress.{job}")
}

/// The subject of a job's final result ([`JobResult`](crate::JobResult)).
pub fn result_subject(job: &str) -> String {
    format!("facesync.result.{job}")
}

/// The subject on which anyone may cancel a job.
pub fn cancel_subject(job: &str) -> String {
    format!("facesync.cancel.{job}")
}

/// The subject of a job's dead letter ([`DeadLetter`](crate::DeadLetter)).
pub fn dead_subject(job: &str) -> String {
    format!("facesync.dead.{job}")
}

/// Everything about one job in [`EVENTS_STREAM`]: progress, result and cancel.
pub(crate) fn job_events_filter(job: &str) -> String {
    format!("facesync.*.{job}")
}

pub(crate) const EVENTS_SUBJECTS: &str = "facesync.*.*";
pub(crate) const DEAD_SUBJECTS: &str = "facesync.dead.*";

/// Whether `id` can be one token of a subject: ASCII letters, digits, `-` and `_`, 1 to 64.
pub(crate) fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_single_subject_tokens() {
        for (id, ok) in [
            ("abc-DEF_123", true),
            ("", false),
            ("a.b", false),
            ("a*", false),
            ("a>", false),
            ("a b", false),
            (&"x".repeat(65), false),
        ] {
            assert_eq!(valid_job_id(id), ok, "{id:?}");
        }
    }

    #[test]
    fn the_events_filter_matches_each_subject_of_a_job() {
        let filter = job_events_filter("j1");
        for subject in [
            progress_subject("j1"),
            result_subject("j1"),
            cancel_subject("j1"),
        ] {
            let (f, s): (Vec<_>, Vec<_>) =
                (filter.split('.').collect(), subject.split('.').collect());
            assert_eq!(f.len(), s.len());
            assert!(
                f.iter().zip(&s).all(|(f, s)| *f == "*" || f == s),
                "{subject}"
            );
        }
    }
}
