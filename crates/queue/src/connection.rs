//! How every facesync NATS client (worker, submit, watch, cancel, an embedder) reaches and
//! authenticates to the server: URL, credentials, TLS.
//!
//! Secrets (passwords, tokens, NKey seeds) come from files or environment variables: a
//! command line is visible to every user of the machine (`ps`), so [`NatsConfig::from_env`]
//! and the command-line tools take file paths, never the secret itself. A [`Secret`] never
//! shows in `Debug` output, logs, errors or progress events; a URL is shown without its
//! credentials ([`redact_url`]).

use std::path::{Path, PathBuf};

use crate::QueueError;

/// The URL used when none is given.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// A password, token or NKey seed. Its `Debug` output is `Secret(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret held in memory (e.g. read from an environment variable).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file: its content with surrounding whitespace (a trailing
    /// newline) removed. An empty file is an error, as is a missing one.
    pub fn from_file(path: &Path) -> Result<Self, QueueError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            QueueError::Settings(format!(
                "cannot read the secret file {}: {e}",
                path.display()
            ))
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(QueueError::Settings(format!(
                "the secret file {} is empty",
                path.display()
            )));
        }
        Ok(Self(text.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the client proves who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials, unless the URL carries some (`nats://user:password@host`, or
    /// `nats://token@host`).
    #[default]
    None,
    /// A user name and password (nats-server `authorization.users` or an account's users).
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: Secret,
    },
    /// A token (nats-server `authorization.token`).
    Token(Secret),
    /// An NKey seed (`SU…`): the client signs the server's nonce; the server knows only the
    /// public key.
    NKey(Secret),
    /// A `.creds` file (a user JWT and NKey seed, as `nsc` writes them): decentralised
    /// (operator) authentication.
    CredsFile(PathBuf),
}

/// TLS settings. A `tls://` URL, a CA file or a client certificate turns TLS on; without a
/// CA file the system's roots verify the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities that may sign the server's certificate (only
    /// these are trusted when it is set).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key files of this client, for servers that verify clients
    /// (mutual TLS).
    pub client_cert: Option<ClientCert>,
    /// Refuse to talk to a server that does not use TLS (a plain connection would send the
    /// credentials and jobs in clear).
    pub required: bool,
}

/// A client certificate and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate (chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Everything needed to open a connection: where, who, how.
///
/// ```no_run
/// use facesync_queue::{Auth, NatsConfig, Queue, Secret};
/// let config = NatsConfig {
///     url: "tls://nats.studio.lan:4222".into(),
///     auth: Auth::UserPassword {
///         user: "submitter".into(),
///         password: Secret::from_file("/run/secrets/nats-password".as_ref())?,
///     },
///     ..NatsConfig::default()
/// };
/// let queue = Queue::connect_with(&config)?;
/// # Ok::<(), facesync_queue::QueueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` or `tls://host:port`; credentials in the URL are taken as
    /// [`Auth::UserPassword`] (`user:password@`) or [`Auth::Token`] (`token@`).
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// TLS.
    pub tls: TlsConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.into(),
            auth: Auth::None,
            tls: TlsConfig::default(),
        }
    }
}

/// The environment variables [`NatsConfig::from_env`] reads.
pub mod env {
    /// The server URL (may carry `user:password@` or `token@`).
    pub const URL: &str = "FACESYNC_NATS";
    /// A user name; its password in [`PASSWORD`] or [`PASSWORD_FILE`].
    pub const USER: &str = "FACESYNC_NATS_USER";
    /// The user's password.
    pub const PASSWORD: &str = "FACESYNC_NATS_PASSWORD";
    /// A file holding the user's password.
    pub const PASSWORD_FILE: &str = "FACESYNC_NATS_PASSWORD_FILE";
    /// A token.
    pub const TOKEN: &str = "FACESYNC_NATS_TOKEN";
    /// A file holding a token.
    pub const TOKEN_FILE: &str = "FACESYNC_NATS_TOKEN_FILE";
    /// A file holding an NKey seed.
    pub const NKEY_FILE: &str = "FACESYNC_NATS_NKEY_FILE";
    /// A `.creds` file.
    pub const CREDS: &str = "FACESYNC_NATS_CREDS";
    /// A PEM file of trusted certificate authorities.
    pub const CA: &str = "FACESYNC_NATS_CA";
    /// This client's PEM certificate (mutual TLS; with [`KEY`]).
    pub const CERT: &str = "FACESYNC_NATS_CERT";
    /// This client's PEM private key.
    pub const KEY: &str = "FACESYNC_NATS_KEY";
    /// `1` or `true`: refuse plain connections.
    pub const REQUIRE_TLS: &str = "FACESYNC_NATS_REQUIRE_TLS";
}

impl NatsConfig {
    /// The configuration the `FACESYNC_NATS*` environment variables describe (see [`env`]);
    /// [`DEFAULT_URL`] and no credentials when none is set. Secret files are read now, so
    /// that a missing one is reported before anything connects.
    pub fn from_env() -> Result<Self, QueueError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub(crate) fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, QueueError> {
        let mut auths = Vec::new();
        if let Some(user) = var(env::USER) {
            let password = match (var(env::PASSWORD), var(env::PASSWORD_FILE)) {
                (Some(p), None) => Secret::new(p),
                (None, Some(file)) => Secret::from_file(Path::new(&file))?,
                (Some(_), Some(_)) => {
                    return Err(QueueError::Settings(format!(
                        "set {} or {}, not both",
                        env::PASSWORD,
                        env::PASSWORD_FILE
                    )));
                }
                (None, None) => {
                    return Err(QueueError::Settings(format!(
                        "{} is set but neither {} nor {}",
                        env::USER,
                        env::PASSWORD,
                        env::PASSWORD_FILE
                    )));
                }
            };
            auths.push((env::USER, Auth::UserPassword { user, password }));
        } else if var(env::PASSWORD).is_some() || var(env::PASSWORD_FILE).is_some() {
            return Err(QueueError::Settings(format!(
                "a password is set but no user ({})",
                env::USER
            )));
        }
        if let Some(token) = var(env::TOKEN) {
            auths.push((env::TOKEN, Auth::Token(Secret::new(token))));
        }
        if let Some(file) = var(env::TOKEN_FILE) {
            auths.push((
                env::TOKEN_FILE,
                Auth::Token(Secret::from_file(Path::new(&file))?),
            ));
        }
        if let Some(file) = var(env::NKEY_FILE) {
            auths.push((
                env::NKEY_FILE,
                Auth::NKey(Secret::from_file(Path::new(&file))?),
            ));
        }
        if let Some(file) = var(env::CREDS) {
            auths.push((env::CREDS, Auth::CredsFile(file.into())));
        }
        if auths.len() > 1 {
            let names: Vec<&str> = auths.iter().map(|(name, _)| *name).collect();
            return Err(QueueError::Settings(format!(
                "more than one kind of credentials is set: {}",
                names.join(", ")
            )));
        }
        let client_cert = match (var(env::CERT), var(env::KEY)) {
            (Some(cert), Some(key)) => Some(ClientCert {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            _ => {
                return Err(QueueError::Settings(format!(
                    "{} and {} go together",
                    env::CERT,
                    env::KEY
                )));
            }
        };
        let required = match var(env::REQUIRE_TLS).as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(QueueError::Settings(format!(
                    "{}={other}: expected 1, true, 0 or false",
                    env::REQUIRE_TLS
                )));
            }
        };
        Ok(Self {
            url: var(env::URL).unwrap_or_else(|| DEFAULT_URL.into()),
            auth: auths.pop().map(|(_, auth)| auth).unwrap_or_default(),
            tls: TlsConfig {
                ca_file: var(env::CA).map(PathBuf::from),
                client_cert,
                required,
            },
        })
    }

    /// The URL without its credentials, for logs and errors.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The async-nats options and the URL to connect to (its credentials moved into the
    /// options). Checks every file named, so that a typo is reported with its path.
    pub(crate) async fn client_options(
        &self,
    ) -> Result<(async_nats::ConnectOptions, String), QueueError> {
        let (url, from_url) = split_credentials(&self.url)?;
        let auth = match (from_url, &self.auth) {
            (Some(auth), Auth::None) => auth,
            (Some(_), _) => {
                return Err(QueueError::Settings(format!(
                    "the URL {} carries credentials and others are set too: use one",
                    self.display_url()
                )));
            }
            (None, auth) => auth.clone(),
        };
        let mut options = async_nats::ConnectOptions::new();
        options = match auth {
            Auth::None => options,
            Auth::UserPassword { user, password } => {
                options.user_and_password(user, password.expose().into())
            }
            Auth::Token(token) => options.token(token.expose().into()),
            Auth::NKey(seed) => {
                // Checked here: async-nats only says "failed signing nonce" at connect time.
                nkeys::KeyPair::from_seed(seed.expose()).map_err(|e| {
                    QueueError::Settings(format!("the NKey seed is not a valid seed: {e}"))
                })?;
                options.nkey(seed.expose().into())
            }
            Auth::CredsFile(path) => options.credentials_file(&path).await.map_err(|e| {
                QueueError::Settings(format!("the creds file {}: {e}", path.display()))
            })?,
        };
        let tls = &self.tls;
        if let Some(ca) = &tls.ca_file {
            readable(ca, "CA file")?;
            options = options.add_root_certificates(ca.clone());
        }
        if let Some(ClientCert { cert, key }) = &tls.client_cert {
            readable(cert, "client certificate")?;
            readable(key, "client key")?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        // A server that does not offer TLS is then refused (async-nats does the same for a
        // `tls://` URL by itself).
        options = options.require_tls(tls.required || url.starts_with("tls://"));
        Ok((options, url))
    }
}

fn readable(path: &Path, what: &str) -> Result<(), QueueError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| QueueError::Settings(format!("the {what} {}: {e}", path.display())))
}

/// `url` without its `user:password@` or `token@` part (shown as `***@`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("***");
            parsed.to_string().trim_end_matches('/').to_string()
        }
        _ => match url.rsplit_once('@') {
            // Unparsable but with credentials-like text: keep only the host part.
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

/// Whether `url` carries a password or token (`user:password@` or `token@`).
pub fn url_has_credentials(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
}

/// Splits the credentials off `url`: the plain URL (several may be given, comma-separated,
/// as async-nats takes them: each loses its credentials, which must agree) and the
/// credentials as an [`Auth`].
fn split_credentials(url: &str) -> Result<(String, Option<Auth>), QueueError> {
    let mut plain = Vec::new();
    let mut found: Option<Auth> = None;
    for one in url.split(',').map(str::trim) {
        let Ok(mut parsed) = url::Url::parse(one) else {
            plain.push(one.to_string());
            continue;
        };
        let user = decode(parsed.username());
        let password = parsed.password().map(decode);
        let auth = match (user.is_empty(), password) {
            (true, None) => None,
            (false, None) => Some(Auth::Token(Secret::new(user))),
            (_, Some(password)) => Some(Auth::UserPassword {
                user,
                password: Secret::new(password),
            }),
        };
        if let Some(auth) = auth {
            if found.as_ref().is_some_and(|f| *f != auth) {
                return Err(QueueError::Settings(format!(
                    "the URLs {} carry different credentials",
                    redact_url(url)
                )));
            }
            found = Some(auth);
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
        }
        plain.push(parsed.to_string().trim_end_matches('/').to_string());
    }
    Ok((plain.join(","), found))
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn credentials_in_the_url_move_into_the_options_and_never_show() {
        for (url, plain, auth) in [
            (
                "nats://alice:s%40cret+1@h:4222",
                "nats://h:4222",
                Some(Auth::UserPassword {
                    user: "alice".into(),
                    password: Secret::new("s@cret+1"),
                }),
            ),
            (
                "tls://tok3n@h:4222",
                "tls://h:4222",
                Some(Auth::Token(Secret::new("tok3n"))),
            ),
            ("nats://h:4222", "nats://h:4222", None),
        ] {
            let (got_plain, got_auth) = split_credentials(url).unwrap();
            assert_eq!((got_plain.as_str(), got_auth), (plain, auth), "{url}");
            assert!(!redact_url(url).contains("cret"), "{}", redact_url(url));
            assert!(!redact_url(url).contains("tok3n"), "{}", redact_url(url));
        }
        assert_eq!(redact_url("nats://a:b@h:1"), "nats://***@h:1");
        assert!(url_has_credentials("nats://a:b@h:1"));
        assert!(!url_has_credentials("nats://h:1"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = NatsConfig {
            url: "nats://u:hunter2@h".into(),
            auth: Auth::Token(Secret::new("hunter3")),
            tls: TlsConfig::default(),
        };
        let debug = format!("{config:?}");
        assert!(debug.contains("Secret(<redacted>)"), "{debug}");
        assert!(!debug.contains("hunter3"), "{debug}");
        assert!(!config.display_url().contains("hunter2"));
    }

    #[test]
    fn the_environment_gives_one_kind_of_credentials_and_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let file = file.to_str().unwrap();
        let c = NatsConfig::from_lookup(vars(&[
            (env::USER, "bob"),
            (env::PASSWORD_FILE, file),
            (env::URL, "tls://h:1"),
            (env::CA, "/ca.pem"),
            (env::REQUIRE_TLS, "1"),
        ]))
        .unwrap();
        assert_eq!(
            c.auth,
            Auth::UserPassword {
                user: "bob".into(),
                password: Secret::new("from-file")
            }
        );
        assert_eq!(c.url, "tls://h:1");
        assert_eq!(c.tls.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        assert!(c.tls.required);
        assert_eq!(
            NatsConfig::from_lookup(vars(&[])).unwrap(),
            NatsConfig::default()
        );

        for (pairs, expected) in [
            (
                vec![(env::TOKEN, "t"), (env::NKEY_FILE, file)],
                "more than one kind of credentials is set: FACESYNC_NATS_TOKEN, FACESYNC_NATS_NKEY_FILE",
            ),
            (
                vec![(env::USER, "bob")],
                "FACESYNC_NATS_USER is set but neither",
            ),
            (vec![(env::PASSWORD, "p")], "a password is set but no user"),
            (
                vec![(env::CERT, "c.pem")],
                "FACESYNC_NATS_CERT and FACESYNC_NATS_KEY go together",
            ),
            (
                vec![(env::REQUIRE_TLS, "yes")],
                "FACESYNC_NATS_REQUIRE_TLS=yes: expected",
            ),
            (
                vec![(env::TOKEN_FILE, "/no/such/file")],
                "cannot read the secret file /no/such/file",
            ),
        ] {
            let err = NatsConfig::from_lookup(vars(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn an_empty_secret_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty");
        std::fs::write(&file, "\n").unwrap();
        let err = Secret::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("is empty") && err.contains("empty"), "{err}");
    }
}
