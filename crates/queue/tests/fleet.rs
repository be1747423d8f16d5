//! A fleet that lets only the right people in, against real `nats-server` processes (one per
//! test, loopback ports, `cargo xtask test` installs the server) configured with
//! `crates/queue/fleet.conf` — the file the README tells users to run — and certificates made
//! here. Workers run in this process (`Queue::run_worker` on a thread).

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use facesync_queue as queue;
use facesync_tests::listing;
use queue::{
    Auth, Backend, CancelToken, ClientCert, Job, JobOutcome, NatsConfig, PathPolicy, PathRoots,
    Queue, QueueError, RunOptions, Secret, TlsConfig, WorkerConfig, WorkerStats,
};
use test_kit::nats::{LocalServer, ServerConfig};

use queue::FLEET_CONF;
const TIMEOUT: Duration = Duration::from_secs(120);

/// A CA, a server certificate for 127.0.0.1 signed by it, a client certificate signed by it,
/// and an unrelated CA; PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client: ClientCert,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let fleet_ca = ca("facesync test CA");
    let leaf = |names: Vec<String>, file: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &fleet_ca)
            .unwrap();
        (
            write(&format!("{file}.pem"), cert.pem()),
            write(&format!("{file}-key.pem"), key.serialize_pem()),
        )
    };
    let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "server");
    let (cert, key) = leaf(vec!["worker-7".into()], "client");
    Pki {
        ca: write("ca.pem", fleet_ca.pem()),
        other_ca: write("other-ca.pem", ca("someone else's CA").pem()),
        server_cert,
        server_key,
        client: ClientCert { cert, key },
    }
}

/// A server running `fleet.conf` (with `edit` applied) and the credentials of each role.
struct Fleet {
    dir: tempfile::TempDir,
    server: LocalServer,
    pki: Pki,
    worker_seed: String,
}

const SUBMITTER_PASSWORD: &str = "submitter-secret-1";
const WATCHER_PASSWORD: &str = "watcher-secret-2";

fn fleet_with(edit: impl FnOnce(&str) -> String) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let worker = nkeys::KeyPair::new_user();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let config = ServerConfig {
        text: edit(FLEET_CONF),
        env: vec![
            ("FACESYNC_WORKER_NKEY".into(), worker.public_key()),
            (
                "FACESYNC_SUBMITTER_PASSWORD".into(),
                SUBMITTER_PASSWORD.into(),
            ),
            ("FACESYNC_WATCHER_PASSWORD".into(), WATCHER_PASSWORD.into()),
            ("FACESYNC_TLS_CERT".into(), path(&pki.server_cert)),
            ("FACESYNC_TLS_KEY".into(), path(&pki.server_key)),
            ("FACESYNC_TLS_CA".into(), path(&pki.ca)),
        ],
    };
    let server = match LocalServer::start_configured(&dir.path().join("nats"), &config) {
        Ok(server) => server,
        Err(test_kit::nats::Error::Missing) => panic!(
            "nats-server is not installed; run `cargo xtask test`, which installs it with apt"
        ),
        Err(e) => panic!("{e}"),
    };
    let fleet = Fleet {
        dir,
        server,
        pki,
        worker_seed: worker.seed().unwrap(),
    };
    // Workers create the streams (submitters may not).
    Queue::connect_with(&fleet.worker()).unwrap();
    fleet
}

fn fleet() -> Fleet {
    fleet_with(str::to_string)
}

impl Fleet {
    fn config(&self, auth: Auth) -> NatsConfig {
        NatsConfig {
            url: self.server.tls_url(),
            auth,
            tls: TlsConfig {
                ca_file: Some(self.pki.ca.clone()),
                client_cert: None,
                required: true,
            },
        }
    }

    /// The worker's NKey, and a client certificate (for the mutual-TLS case).
    fn worker(&self) -> NatsConfig {
        let mut config = self.config(Auth::NKey(Secret::new(self.worker_seed.clone())));
        config.tls.client_cert = Some(self.pki.client.clone());
        config
    }

    fn user(&self, user: &str, password: &str) -> NatsConfig {
        self.config(Auth::UserPassword {
            user: user.into(),
            password: Secret::new(password),
        })
    }

    fn submitter(&self) -> NatsConfig {
        self.user("submitter", SUBMITTER_PASSWORD)
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }
}

fn refused(config: &NatsConfig) -> String {
    match Queue::connect_with(config) {
        Ok(_) => panic!("{config:?} connected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn without_credentials_or_with_wrong_ones_the_server_refuses() {
    let f = fleet();
    for (config, secret) in [
        (f.config(Auth::None), None),
        (
            f.user("submitter", "wrong-password-77"),
            Some("wrong-password-77"),
        ),
        (
            f.user("nobody", SUBMITTER_PASSWORD),
            Some(SUBMITTER_PASSWORD),
        ),
        (
            f.config(Auth::NKey(Secret::new(
                nkeys::KeyPair::new_user().seed().unwrap(),
            ))),
            None,
        ),
    ] {
        let err = match Queue::connect_with(&config) {
            Err(e @ QueueError::NotAuthorized { .. }) => e.to_string(),
            other => panic!("{:?}: expected NotAuthorized, got {other:?}", config.auth),
        };
        assert!(err.contains("authorization violation"), "{err}");
        assert!(err.contains(&f.server.tls_url()), "{err}");
        if let Some(secret) = secret {
            assert!(!err.contains(secret), "the error shows the password: {err}");
        }
    }
    // The right ones connect.
    Queue::connect_with(&f.worker()).unwrap();
    Queue::connect_with(&f.submitter()).unwrap();
}

#[test]
fn a_user_without_permission_to_publish_jobs_is_refused_with_a_clear_error() {
    let f = fleet();
    let _worker = Queue::connect_with(&f.worker()).unwrap(); // creates the streams
    let watcher = Queue::connect_with(&f.user("watcher", WATCHER_PASSWORD)).unwrap();
    let job = Job::new(
        "/in/v.y4m",
        "/in/a.wav",
        "/out/o.y4m",
        RunOptions::default(),
    );
    match watcher.submit(&job) {
        Err(e @ QueueError::PermissionDenied { .. }) => {
            let err = e.to_string();
            assert!(
                err.contains("Permissions Violation for Publish to \"facesync.jobs\""),
                "{err}"
            );
            assert!(err.contains("lacks the permission"), "{err}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    let err = watcher.cancel(&job.id).unwrap_err().to_string();
    assert!(err.contains("facesync.cancel."), "{err}");
    assert_eq!(watcher.pending_jobs().unwrap(), 0, "nothing was queued");
    // A submitter may.
    let submitter = Queue::connect_with(&f.submitter()).unwrap();
    submitter.submit(&job).unwrap();
    assert_eq!(watcher.pending_jobs().unwrap(), 1);
}

#[test]
fn tls_verified_by_the_fleet_ca_works_and_another_ca_or_plain_text_is_refused() {
    let f = fleet();
    Queue::connect_with(&f.submitter()).unwrap();
    // The server asks for TLS, so a nats:// URL is upgraded too, and verified.
    let mut upgraded = f.submitter();
    upgraded.url = f.server.url();
    Queue::connect_with(&upgraded).unwrap();

    let mut wrong_ca = f.submitter();
    wrong_ca.tls.ca_file = Some(f.pki.other_ca.clone());
    let err = refused(&wrong_ca);
    assert!(
        err.contains("cannot connect") && err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );

    // A server without TLS is refused when TLS is required.
    let plain = LocalServer::start(&f.d().join("plain")).unwrap();
    let required = NatsConfig {
        url: plain.url(),
        tls: TlsConfig {
            required: true,
            ..TlsConfig::default()
        },
        ..NatsConfig::default()
    };
    let err = refused(&required);
    assert!(err.contains("cannot connect"), "{err}");
    let mut tls_url = required.clone();
    tls_url.url = tls_url.url.replace("nats://", "tls://");
    tls_url.tls.required = false;
    refused(&tls_url);
    // …and works in plain text when not.
    Queue::connect(&plain.url()).unwrap();
}

#[test]
fn mutual_tls_needs_a_client_certificate_signed_by_the_ca() {
    let f = fleet_with(|conf| {
        conf.replace(
            "  timeout = 5\n",
            "  timeout = 5\n  ca_file = $FACESYNC_TLS_CA\n  verify = true\n",
        )
    });
    refused(&f.submitter());
    let mut with_cert = f.submitter();
    with_cert.tls.client_cert = Some(f.pki.client.clone());
    Queue::connect_with(&with_cert).unwrap();
    let mut missing = with_cert.clone();
    missing.tls.client_cert = Some(ClientCert {
        cert: f.d().join("no-such-cert.pem"),
        key: f.pki.client.key.clone(),
    });
    let err = refused(&missing);
    assert!(
        err.contains("the client certificate") && err.contains("no-such-cert.pem"),
        "{err}"
    );
}

#[test]
fn a_token_from_a_file_or_the_url_connects_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        text: "authorization { token = $FACESYNC_TOKEN }\n".into(),
        env: vec![("FACESYNC_TOKEN".into(), "t0ken-s3cret".into())],
    };
    let server = LocalServer::start_configured(&dir.path().join("nats"), &config).unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "t0ken-s3cret\n").unwrap();
    Queue::connect_with(&NatsConfig {
        url: server.url(),
        auth: Auth::Token(Secret::from_file(&file).unwrap()),
        ..NatsConfig::default()
    })
    .unwrap();
    let in_url = server.url().replace("nats://", "nats://t0ken-s3cret@");
    let queue = Queue::connect(&in_url).unwrap();
    assert!(!queue.url().contains("s3cret"), "{}", queue.url());
    let wrong = server.url().replace("nats://", "nats://wrong-t0ken@");
    match Queue::connect(&wrong) {
        Err(e @ QueueError::NotAuthorized { .. }) => {
            assert!(!e.to_string().contains("wrong-t0ken"), "{e}")
        }
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
    assert!(matches!(
        Queue::connect(&server.url()),
        Err(QueueError::NotAuthorized { .. })
    ));
}

/// A worker of this process with `paths`, stopped by the returned token.
fn start_worker(
    config: NatsConfig,
    paths: PathPolicy,
) -> (CancelToken, JoinHandle<Result<WorkerStats, QueueError>>) {
    let stop = CancelToken::new();
    let on = stop.clone();
    let handle = std::thread::spawn(move || {
        let worker = WorkerConfig {
            name: "fleet-test".into(),
            ack_wait: Duration::from_secs(10),
            max_attempts: 2,
            retry_delay: Duration::from_millis(200),
            paths,
            ..WorkerConfig::default()
        };
        Queue::connect_with(&config)?.run_worker(&worker, &on)
    });
    (stop, handle)
}

fn stop(worker: (CancelToken, JoinHandle<Result<WorkerStats, QueueError>>)) -> WorkerStats {
    worker.0.cancel();
    worker.1.join().unwrap().unwrap()
}

fn options() -> RunOptions {
    RunOptions {
        steps: 2,
        chunk: 4,
        backend: Backend::Cpu,
        ..RunOptions::default()
    }
}

fn sample(dir: &Path) -> (PathBuf, PathBuf) {
    let spec = pipeline::sample::SampleSpec {
        width: 64,
        height: 64,
        seconds: 8.0 / 25.0,
        ..Default::default()
    };
    let files = pipeline::sample::write_sample(dir, &spec).unwrap();
    (files.video, files.audio)
}

#[test]
fn a_worker_without_roots_refuses_to_start() {
    let f = fleet();
    let (_, worker) = start_worker(f.worker(), PathPolicy::Unset);
    let err = worker.join().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("no input and output roots are set") && err.contains("--allow-any-path"),
        "{err}"
    );
}

#[test]
fn jobs_outside_the_roots_are_dead_lettered_at_once_with_nothing_written() {
    let f = fleet();
    let d = f.d();
    let (video, audio) = sample(&d.join("in"));
    let (out, secret) = (d.join("out"), d.join("secret"));
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&secret).unwrap();
    std::fs::copy(&video, secret.join("v.y4m")).unwrap();
    std::os::unix::fs::symlink(secret.join("v.y4m"), d.join("in/link.y4m")).unwrap();
    std::os::unix::fs::symlink(&secret, out.join("escape")).unwrap();
    let worker = start_worker(
        f.worker(),
        PathPolicy::Roots(PathRoots {
            inputs: vec![d.join("in")],
            output: out.clone(),
        }),
    );
    let root_in = std::fs::canonicalize(d.join("in")).unwrap();
    let root_out = std::fs::canonicalize(&out).unwrap();
    let real_secret = std::fs::canonicalize(&secret).unwrap();
    let cases = [
        (
            d.join("in/../secret/v.y4m"),
            out.join("a.y4m"),
            format!("outside the input root {}", root_in.display()),
        ),
        (
            d.join("in/link.y4m"),
            out.join("b.y4m"),
            format!(
                "resolves to {}, outside the input root {}",
                real_secret.join("v.y4m").display(),
                root_in.display()
            ),
        ),
        (
            video.clone(),
            out.join("../secret/c.y4m"),
            format!("outside the output root {}", root_out.display()),
        ),
        (
            video.clone(),
            out.join("escape/d.y4m"),
            format!(
                "resolves to {}, outside the output root {}",
                real_secret.join("d.y4m").display(),
                root_out.display()
            ),
        ),
    ];
    let submitter = Queue::connect_with(&f.submitter()).unwrap();
    let mut refused = Vec::new();
    for (video, output, expected) in cases {
        let job = Job::new(&video, &audio, &output, options());
        submitter.submit(&job).unwrap();
        refused.push((job, expected));
    }
    let good = Job::new(&video, &audio, out.join("good.y4m"), options());
    submitter.submit(&good).unwrap();

    for (job, expected) in &refused {
        let result = submitter.wait_result(&job.id, TIMEOUT).unwrap();
        assert_eq!(result.outcome, JobOutcome::Dead, "{result:?}");
        let error = result.error.unwrap();
        assert!(
            error.contains(expected.as_str()),
            "{error}\nexpected: {expected}"
        );
        assert_eq!(result.delivery, 1, "dead-lettered on the first delivery");
    }
    let result = submitter.wait_result(&good.id, TIMEOUT).unwrap();
    assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
    let letters = submitter.dead_letters().unwrap();
    assert_eq!(letters.len(), 4, "{letters:?}");
    assert!(letters.iter().all(|l| l.deliveries == 1), "{letters:?}");
    assert_eq!(
        listing(&secret),
        ["v.y4m"],
        "nothing written outside the roots"
    );
    assert_eq!(listing(&out), ["escape", "good.y4m"]);
    let stats = stop(worker);
    assert_eq!((stats.completed, stats.dead), (1, 4), "{stats:?}");
}

/// Publishes `payload` on the jobs subject as it is, with the submitter's credentials.
fn publish_raw(f: &Fleet, payloads: &[Vec<u8>]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::ConnectOptions::with_user_and_password(
            "submitter".into(),
            SUBMITTER_PASSWORD.into(),
        )
        .add_root_certificates(f.pki.ca.clone())
        .require_tls(true)
        .connect(f.server.tls_url())
        .await
        .unwrap();
        let js = async_nats::jetstream::new(client);
        for payload in payloads {
            js.publish(queue::names::JOBS_SUBJECT, payload.clone().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
}

#[test]
fn hostile_messages_are_dead_lettered_while_a_good_job_completes() {
    let f = fleet();
    let d = f.d();
    let (video, audio) = sample(&d.join("in"));
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let worker = start_worker(
        f.worker(),
        PathPolicy::Roots(PathRoots {
            inputs: vec![d.join("in")],
            output: out.clone(),
        }),
    );
    let job = |id: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","video":"{}","audio":"{}","output":"{}"{extra}}}"#,
            video.display(),
            audio.display(),
            out.join(format!("{id}.y4m")).display()
        )
        .into_bytes()
    };
    let hostile: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not a job message"),
        (Vec::new(), "not a job message: EOF"),
        (b"\xff\xfe\x00garbage".to_vec(), "not a job message"),
        (b"[1,2,3]".to_vec(), "not a job message"),
        (b"{}".to_vec(), "missing field `id`"),
        (
            job("big", &format!(r#","pad":"{}""#, "x".repeat(70_000))),
            "more than the 65536 allowed",
        ),
        (
            job("v2", r#","version":2"#),
            "job message version 2 is newer than this worker's 1",
        ),
        (
            job("vtext", r#","version":"one""#),
            "job message version \"one\": expected a whole number",
        ),
        (job("a.b", ""), "job id \"a.b\": expected"),
        (job(">", ""), "job id \">\": expected"),
        (
            job("steps0", r#","options":{"steps":0}"#),
            "steps 0 is out of range (1 to 100)",
        ),
        (
            job("steps_huge", r#","options":{"steps":4000000000}"#),
            "steps 4000000000 is out of range",
        ),
        (
            job("steps_neg", r#","options":{"steps":-1}"#),
            "invalid value: integer `-1`",
        ),
        (
            job("chunk_huge", r#","options":{"chunk":100000}"#),
            "chunk 100000 is out of range (1 to 256)",
        ),
        (
            job("res300", r#","options":{"resolution":300}"#),
            "resolution 300 is not supported",
        ),
        (
            job("typo", r#","options":{"stepz":3}"#),
            "unknown field `stepz`",
        ),
        (
            job("tpu", r#","options":{"backend":"tpu"}"#),
            "unknown backend \"tpu\": expected one of auto, gpu, cpu",
        ),
        (
            format!(
                r#"{{"id":"deep","video":"/v","audio":"/a","output":"/o","options":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            )
            .into_bytes(),
            "invalid type: sequence, expected u32",
        ),
    ];
    let payloads: Vec<Vec<u8>> = hostile.iter().map(|(p, _)| p.clone()).collect();
    publish_raw(&f, &payloads);
    let submitter = Queue::connect_with(&f.submitter()).unwrap();
    let good = Job::new(&video, &audio, out.join("good.y4m"), options());
    submitter.submit(&good).unwrap();

    let result = submitter.wait_result(&good.id, TIMEOUT).unwrap();
    assert_eq!(result.outcome, JobOutcome::Completed, "{result:?}");
    let letters = submitter.dead_letters().unwrap();
    assert_eq!(letters.len(), hostile.len(), "{letters:#?}");
    for (_, expected) in &hostile {
        assert!(
            letters.iter().any(|l| l.error.contains(expected)),
            "no dead letter says {expected:?}: {:#?}",
            letters.iter().map(|l| &l.error).collect::<Vec<_>>()
        );
    }
    let big = letters.iter().find(|l| l.error.contains("65536")).unwrap();
    assert_eq!(big.id, "unknown", "an oversized message is not parsed");
    assert!(big.payload.as_ref().unwrap().len() <= 4096, "kept short");
    // A hostile message with a usable id ends that job for its watchers.
    let steps0 = submitter.wait_result("steps0", TIMEOUT).unwrap();
    assert_eq!(steps0.outcome, JobOutcome::Dead);
    assert_eq!(listing(&out), ["good.y4m"]);
    let stats = stop(worker);
    assert_eq!(
        (stats.completed, stats.dead),
        (1, hostile.len() as u64),
        "{stats:?}"
    );
}
