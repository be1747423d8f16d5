//! The work queue end to end: a real `nats-server -js` per test (`cargo xtask test` installs
//! it), workers as real `facesync worker` processes (so SIGKILL and "another process" are
//! real), jobs on tiny built-in samples. Every wait is bounded and fails with a message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facesync_tests::output_ok;
use pipeline::ModelSpec;
use pipeline::media_io::{ReaderOptions, VideoReader};
use pipeline::sample::{SampleSpec, write_sample};
use progress_core::{Control, Event};
use queue::{Job, JobOutcome, Queue, RunOptions, WatchEnd};
use test_kit::nats::LocalServer;

const JOB_TIMEOUT: Duration = Duration::from_secs(120);

fn server(dir: &Path) -> LocalServer {
    match LocalServer::start(&dir.join("nats")) {
        Ok(server) => server,
        Err(test_kit::nats::Error::Missing) => panic!(
            "nats-server is not installed; run `cargo xtask test`, which installs it with apt"
        ),
        Err(e) => panic!("{e}"),
    }
}

/// A `facesync worker` process; killed when dropped. Its log (stderr) goes to a file.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn start(url: &str, name: &str, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_facesync"));
        // The tests' ONNX Runtime, for the jobs with a learned model.
        if let Ok(library) = test_kit::models::load_runtime() {
            command.env("ORT_DYLIB_PATH", library);
        }
        let child = command
            .args(["worker", "--nats", url, "--name", name])
            .arg("--input-root")
            .arg(dir)
            .arg("--output-root")
            .arg(dir)
            .args([
                "--ack-wait",
                "3",
                "--max-attempts",
                "2",
                "--retry-delay",
                "0.2",
            ])
            .env("RUST_LOG", "info,async_nats=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start `facesync worker`");
        Self { child, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// Ctrl-C, wait for it to exit (10 s at most), return its log (plain text: the log file
    /// is not a terminal, so it holds no colour codes).
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "worker did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(log.contains(" INFO "), "the worker logged: {log}");
        assert!(!log.contains('\x1b'), "colour codes in a log file: {log}");
        log
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A sample of `frames` frames of `size`² pixels.
fn sample(dir: &Path, size: u32, frames: u32) -> (PathBuf, PathBuf) {
    let spec = SampleSpec {
        width: size,
        height: size,
        seconds: f64::from(frames) / 25.0,
        ..SampleSpec::default()
    };
    let files = write_sample(dir, &spec).unwrap();
    (files.video, files.audio)
}

fn options() -> RunOptions {
    RunOptions {
        steps: 2,
        chunk: 4,
        backend: pipeline::Backend::Cpu,
        ..RunOptions::default()
    }
}

fn frames_in(path: &Path) -> u64 {
    let mut reader = VideoReader::open(path, &ReaderOptions::default()).unwrap();
    let mut n = 0;
    while reader.next_frame().unwrap().is_some() {
        n += 1;
    }
    n
}

fn visible_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Watches `id` until its "Processing faces" phase has made progress (the job is mid-way).
fn wait_until_running(queue: &Queue, id: &str) {
    let mut faces = None;
    let mut sink = move |event: &Event| match event {
        Event::PhaseStarted { id, name, .. } if name == "Processing faces" => {
            faces = Some(*id);
            Control::Continue
        }
        Event::Progress { id, pos, .. } if Some(*id) == faces && *pos > 0 => Control::Cancel,
        _ => Control::Continue,
    };
    let end = queue
        .watch(id, &mut sink, Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(
        end,
        WatchEnd::Stopped,
        "job {id} ended before it was seen running"
    );
}

#[test]
fn three_workers_complete_twelve_jobs_exactly_once_and_a_corrupt_video_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nats = server(d);
    let (video, audio) = sample(&d.join("in"), 64, 8);
    let corrupt = d.join("in/corrupt.y4m");
    let bytes = std::fs::read(&video).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() - 100]).unwrap();
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();

    let queue = Queue::connect(&nats.url()).unwrap();
    let workers: Vec<Worker> = (1..=3)
        .map(|i| Worker::start(&nats.url(), &format!("w{i}"), d))
        .collect();
    let jobs: Vec<Job> = (0..12)
        .map(|i| {
            Job::new(
                &video,
                &audio,
                out.join(format!("out{i:02}.y4m")),
                options(),
            )
        })
        .collect();
    let poisoned = Job::new(&corrupt, &audio, out.join("poisoned.y4m"), options());
    for job in jobs.iter().chain([&poisoned]) {
        queue.submit(job).unwrap();
    }

    let mut by_worker = HashMap::new();
    for job in &jobs {
        let result = queue.wait_result(&job.id, JOB_TIMEOUT).unwrap();
        assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
        assert_eq!(result.output.as_deref(), Some(job.output.as_path()));
        assert_eq!(frames_in(&job.output), 8, "{}", job.output.display());
        *by_worker.entry(result.worker).or_insert(0) += 1;
    }
    let dead = queue.wait_result(&poisoned.id, JOB_TIMEOUT).unwrap();
    assert_eq!(dead.outcome, JobOutcome::Dead, "{dead:?}");
    let error = dead.error.unwrap();
    assert!(
        error.contains("corrupt.y4m: corrupt Y4M: frame 7 is truncated"),
        "the error names the input and the problem: {error}"
    );
    let letters = queue.dead_letters().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].id, poisoned.id);
    assert_eq!(letters[0].job.as_ref(), Some(&poisoned));
    assert_eq!(letters[0].deliveries, 2, "tried max-attempts times");
    assert_eq!(letters[0].error, error);
    assert!(by_worker.len() >= 2, "the jobs were shared: {by_worker:?}");

    // Exactly once: one stored result per job, and each job ran to completion once.
    for job in jobs.iter().chain([&poisoned]) {
        assert_eq!(queue.results(&job.id).unwrap().len(), 1, "job {}", job.id);
    }
    assert_eq!(queue.pending_jobs().unwrap(), 0, "the work queue is empty");
    let logs: String = workers.into_iter().map(Worker::stop).collect();
    for job in &jobs {
        let runs = logs.matches(&format!("completed job {} ", job.id)).count();
        assert_eq!(runs, 1, "job {} completed {runs} times:\n{logs}", job.id);
    }
    let mut expected: Vec<String> = (0..12).map(|i| format!("out{i:02}.y4m")).collect();
    expected.sort();
    assert_eq!(
        visible_files(&out),
        expected,
        "no output for the poisoned job"
    );
}

#[test]
fn a_job_whose_worker_is_killed_is_redelivered_and_completes_with_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nats = server(d);
    let (video, audio) = sample(&d.join("in"), 128, 40);
    let output = d.join("out.y4m");
    let queue = Queue::connect(&nats.url()).unwrap();
    let mut first = Worker::start(&nats.url(), "first", d);
    let job = Job::new(&video, &audio, &output, options());
    queue.submit(&job).unwrap();

    wait_until_running(&queue, &job.id);
    first.kill();
    assert!(!output.exists(), "no output from the killed worker");
    let second = Worker::start(&nats.url(), "second", d);
    let result = queue.wait_result(&job.id, JOB_TIMEOUT).unwrap();
    assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
    assert_eq!((result.worker.as_str(), result.delivery), ("second", 2));
    assert_eq!(frames_in(&output), 40, "the output is complete");
    assert_eq!(queue.results(&job.id).unwrap().len(), 1);
    assert_eq!(queue.pending_jobs().unwrap(), 0);
    drop(second);
}

#[test]
fn workers_reconnect_after_a_server_restart_and_no_job_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut nats = server(d);
    let (video, audio) = sample(&d.join("in"), 96, 24);
    let queue = Queue::connect(&nats.url()).unwrap();
    let workers: Vec<Worker> = (1..=2)
        .map(|i| Worker::start(&nats.url(), &format!("w{i}"), d))
        .collect();
    let job = |i: usize| Job::new(&video, &audio, d.join(format!("out{i}.y4m")), options());
    let mut jobs: Vec<Job> = (0..6).map(job).collect();
    for job in &jobs {
        queue.submit(job).unwrap();
    }
    wait_until_running(&queue, &jobs[0].id);
    nats.restart().unwrap();
    // The same client (it reconnects) queues more work after the restart.
    for i in 6..8 {
        let job = job(i);
        retry(|| queue.submit(&job));
        jobs.push(job);
    }
    for job in &jobs {
        let result = queue.wait_result(&job.id, JOB_TIMEOUT).unwrap();
        assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
        assert_eq!(frames_in(&job.output), 24);
        assert_eq!(queue.results(&job.id).unwrap().len(), 1, "job {}", job.id);
    }
    assert_eq!(queue.pending_jobs().unwrap(), 0);
    let logs: String = workers.into_iter().map(Worker::stop).collect();
    for job in &jobs {
        let runs = logs.matches(&format!("completed job {} ", job.id)).count();
        assert!(runs <= 1, "job {} completed {runs} times:\n{logs}", job.id);
    }
}

/// `f` until it succeeds, for 20 s at most (a client reconnecting after a restart).
fn retry<T, E: std::fmt::Display>(mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f() {
            Ok(v) => return v,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("still failing after 20 s: {e}"),
        }
    }
}

#[test]
fn a_job_cancelled_from_another_process_ends_cancelled_with_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nats = server(d);
    let (long_video, audio) = sample(&d.join("long"), 128, 200);
    let (short_video, short_audio) = sample(&d.join("short"), 64, 4);
    let queue = Queue::connect(&nats.url()).unwrap();
    let worker = Worker::start(&nats.url(), "w", d);
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let running = Job::new(&long_video, &audio, out.join("running.y4m"), options());
    let waiting = Job::new(&long_video, &audio, out.join("waiting.y4m"), options());
    let after = Job::new(&short_video, &short_audio, out.join("after.y4m"), options());
    for job in [&running, &waiting, &after] {
        queue.submit(job).unwrap();
    }
    wait_until_running(&queue, &running.id);

    let cancel = |id: &str| {
        output_ok(Command::new(env!("CARGO_BIN_EXE_facesync")).args([
            "cancel",
            "--nats",
            &nats.url(),
            id,
        ]));
    };
    cancel(&waiting.id); // before it starts: it must never run
    cancel(&running.id);
    for (job, expected) in [
        (&running, "cancelled during"),
        (&waiting, "cancelled before it started"),
    ] {
        let result = queue.wait_result(&job.id, JOB_TIMEOUT).unwrap();
        assert_eq!(result.outcome, JobOutcome::Cancelled, "{result:?}");
        let error = result.error.unwrap();
        assert!(error.contains(expected), "{error}");
    }
    // The worker goes on with the next job.
    let result = queue.wait_result(&after.id, JOB_TIMEOUT).unwrap();
    assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
    assert_eq!(
        visible_files(&out),
        ["after.y4m"],
        "no output for a cancelled job"
    );
    assert!(queue.dead_letters().unwrap().is_empty());
    let log = worker.stop();
    assert!(
        !log.contains(&format!("running job {}", waiting.id)),
        "{log}"
    );
}

#[test]
fn a_worker_runs_learned_model_jobs_and_dead_letters_a_bad_model() {
    let models = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-models");
    let Some(models) = test_kit::or_skip!(test_kit::models::generate(&models)) else {
        return;
    };
    let models = models.dir;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nats = server(d);
    let (video, audio) = sample(&d.join("in"), 96, 8);
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let queue = Queue::connect(&nats.url()).unwrap();
    let worker = Worker::start(&nats.url(), "w", d);
    let with = |model: ModelSpec| RunOptions { model, ..options() };
    let good = Job::new(
        &video,
        &audio,
        out.join("wav2lip.y4m"),
        with(ModelSpec::Wav2Lip(models.join("wav2lip_96.onnx"))),
    );
    let bad = Job::new(
        &video,
        &audio,
        out.join("bad.y4m"),
        with(ModelSpec::EdTalk(models.join("wav2lip_96.onnx"))),
    );
    for job in [&good, &bad] {
        queue.submit(job).unwrap();
    }
    let result = queue.wait_result(&good.id, JOB_TIMEOUT).unwrap();
    assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
    assert_eq!(frames_in(&good.output), 8);
    let dead = queue.wait_result(&bad.id, JOB_TIMEOUT).unwrap();
    assert_eq!(dead.outcome, JobOutcome::Dead, "{dead:?}");
    let error = dead.error.unwrap();
    assert!(
        error.contains("wav2lip_96.onnx: tensor `target`: axis 1 is 6"),
        "the error names the file and the tensor: {error}"
    );
    worker.stop();
    assert_eq!(visible_files(&out), ["wav2lip.y4m"]);
}
