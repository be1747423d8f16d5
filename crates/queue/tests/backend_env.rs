//! A queue job left at `backend: auto` runs on the backend the worker's `FACESYNC_BACKEND`
//! names: the override is resolved inside the pipeline, the same way for every caller. Needs
//! `nats-server` (`cargo xtask test` installs it).
//!
//! The worker must see the variable from its start, and setting a process's environment from
//! Rust is `unsafe` (other threads may read it): the test runs itself again as a child process
//! with the variable set, and the child does the work.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facesync_queue as queue;
use pipeline::sample::{SampleSpec, write_sample};
use progress_core::{CancelToken, Control, Event};
use queue::{Backend, Job, JobOutcome, PathPolicy, Queue, RunOptions, WatchEnd, WorkerConfig};
use test_kit::nats::LocalServer;

/// Set in the child process: it runs the test's body.
const CHILD: &str = "FACESYNC_TEST_BACKEND_ENV_CHILD";

#[test]
fn a_job_left_at_auto_runs_on_the_backend_facesync_backend_names() {
    if std::env::var_os(CHILD).is_some() {
        return worker_on_auto();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_job_left_at_auto_runs_on_the_backend_facesync_backend_names",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("FACESYNC_BACKEND", "cpu")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran no test:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn worker_on_auto() {
    assert_eq!(std::env::var("FACESYNC_BACKEND").as_deref(), Ok("cpu"));
    let dir = tempfile::tempdir().unwrap();
    let mut server = match LocalServer::start(&dir.path().join("nats")) {
        Ok(server) => server,
        Err(test_kit::nats::Error::Missing) => panic!(
            "nats-server is not installed; run `cargo xtask test`, which installs it with apt"
        ),
        Err(e) => panic!("{e}"),
    };
    let spec = SampleSpec {
        width: 128,
        height: 128,
        seconds: 0.16,
        ..SampleSpec::default()
    };
    let files = write_sample(dir.path(), &spec).unwrap();
    let options = RunOptions {
        steps: 1,
        chunk: 4,
        ..RunOptions::default()
    };
    assert_eq!(options.backend, Backend::Auto);
    let job = Job::new(
        files.video,
        files.audio,
        dir.path().join("out.y4m"),
        options,
    );
    let queue = Queue::connect(&server.url()).unwrap();
    queue.submit(&job).unwrap();
    let worker = WorkerConfig {
        max_jobs: Some(1),
        paths: PathPolicy::AnyPath,
        ..WorkerConfig::default()
    };
    queue.run_worker(&worker, &CancelToken::new()).unwrap();

    let texts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&texts);
    let mut sink = move |event: &Event| {
        if let Event::Message { text, .. } = event {
            seen.lock().unwrap().push(text.clone());
        }
        Control::Continue
    };
    let end = queue
        .watch(&job.id, &mut sink, Some(Duration::from_secs(30)))
        .unwrap();
    let WatchEnd::Finished(result) = end else {
        panic!("job {} did not finish: {end:?}", job.id);
    };
    assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
    let texts = texts.lock().unwrap();
    assert!(
        texts
            .iter()
            .any(|t| t == "compute: cpu (backend cpu from FACESYNC_BACKEND)"),
        "{texts:?}"
    );
    server.stop();
}
