//! A `nats-server -js` child process on a loopback port, for the queue's tests and benchmarks.
//! Killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nats-server` is not installed.
    #[error(
        "nats-server is not installed: `apt-get install nats-server` (Debian; `cargo xtask test` does it)"
    )]
    Missing,
    /// It is installed and did not start (the reason, with its log when it exited).
    #[error("cannot start a local nats-server: {0}")]
    Start(String),
}

/// Where `nats-server` is: on the `PATH`, else `/usr/sbin` (Debian's package puts it there,
/// which is not on every user's `PATH`).
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from("/usr/sbin/nats-server");
        p.is_file().then_some(p)
    })
}

/// A running `nats-server -js -a 127.0.0.1 -p <port> -sd <store> [-c <config>]`.
#[derive(Debug)]
pub struct LocalServer {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    config: Option<ServerConfig>,
}

/// A nats-server configuration for [`LocalServer::start_configured`]: accounts, users,
/// permissions, TLS (the port, address and JetStream store are set on the command line).
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// The configuration file's text. It may use `$NAME` variables (nats-server takes them
    /// from its environment).
    pub text: String,
    /// Environment variables for the server (the values of those `$NAME`s).
    pub env: Vec<(String, String)>,
}

impl LocalServer {
    /// Starts a server with JetStream storing in `store`, on a free loopback port, and waits
    /// until it accepts connections.
    pub fn start(store: &Path) -> Result<Self, Error> {
        Self::launch(store, None)
    }

    /// Starts a server as [`start`](Self::start) does, with `config` (written next to the
    /// store as `<store>.conf`).
    pub fn start_configured(store: &Path, config: &ServerConfig) -> Result<Self, Error> {
        Self::launch(store, Some(config.clone()))
    }

    fn launch(store: &Path, config: Option<ServerConfig>) -> Result<Self, Error> {
        let binary = binary().ok_or(Error::Missing)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::Start(format!("no free loopback port: {e}")))?
            .port();
        let mut server = Self {
            child: None,
            binary,
            port,
            store: store.to_path_buf(),
            config,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `tls://127.0.0.1:<port>`, for a server configured with TLS.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, as a service manager would; SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server and starts it again on the same port and store.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.store)
            .map_err(|e| Error::Start(format!("{}: {e}", self.store.display())))?;
        // The server's log, quoted when it exits at start (a configuration error).
        let log_path = self.store.with_extension("log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| Error::Start(format!("{}: {e}", log_path.display())))?;
        let mut command = Command::new(&self.binary);
        if let Some(config) = &self.config {
            let file = self.store.with_extension("conf");
            std::fs::write(&file, &config.text)
                .map_err(|e| Error::Start(format!("{}: {e}", file.display())))?;
            command.arg("-c").arg(&file);
            command.envs(config.env.iter().map(|(k, v)| (k, v)));
        }
        let mut child = command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Start(format!("{}: {e}", self.binary.display())))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(Error::Start(format!(
                    "nats-server on port {} exited at start ({status}): {}",
                    self.port,
                    log.trim()
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Start(format!(
                    "nats-server on port {} did not accept connections within 10 s",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
