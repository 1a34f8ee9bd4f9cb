//! Binding the API address safely and the accept loop (hyper http1 with a
//! header-read timeout; every connection task awaited on shutdown).

use super::{ApiState, Endpoint, ServeError, Timeouts, parse_listen, router};
use crate::erasure::config::ApiConfig;
use crate::erasure::store::ErasureStore;
use crate::storage::Storage;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

enum Listener {
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
        inode: u64,
    },
    Tcp {
        listener: tokio::net::TcpListener,
        token: Arc<str>,
    },
}

/// A bound, not yet serving, API address.
pub struct ApiServer {
    listener: Listener,
    listen: String,
    timeouts: Timeouts,
    pause: Option<crate::pause_switch::PauseSwitch>,
    leaks: Option<crate::leak_state::LeakState>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("listen", &self.listen)
            .finish()
    }
}

/// Whether `path` may be taken: `Ok(None)` nothing is there, `Ok(Some(inode))`
/// a stale socket (connecting is refused: its server is gone). A socket
/// that answers, one whose state cannot be told, and anything that is not a
/// socket are refused.
fn vacancy(listen: &str, path: &Path) -> Result<Option<u64>, ServeError> {
    use std::os::unix::fs::FileTypeExt;
    let err = |m: String| ServeError::Bind {
        listen: listen.to_string(),
        message: m,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(format!("cannot inspect {}: {e}", path.display()))),
    };
    if !meta.file_type().is_socket() {
        return Err(err(format!(
            "{} exists and is not a socket; remove it or choose another api.listen",
            path.display()
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(err(format!(
            "another process (another lethe daemon?) already serves the API at {}; two daemons cannot share a socket: give each daemon's config its own api.listen, e.g. \"unix:/run/lethe/<database>.sock\"",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(Some(meta.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(format!(
            "cannot tell whether a server still listens at {} ({e}); if none does, remove it, else give this daemon its own api.listen",
            path.display()
        ))),
    }
}

/// Binds a Unix socket at `path` with mode 0660: bound under a temporary
/// name, chmod-ed, then hard-linked into place, so it is never reachable
/// with looser permissions and never replaces a socket that appeared in the
/// meantime (the link fails if the name exists). An existing socket that
/// still answers is refused (another server runs); one that does not is
/// stale and replaced (`api.stale_socket`). Anything else at the path is
/// left alone and refused.
fn bind_unix(listen: &str, path: &Path) -> Result<Listener, ServeError> {
    let err = |m: String| ServeError::Bind {
        listen: listen.to_string(),
        message: m,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            err(format!(
                "cannot create the socket {}: its directory {} does not exist and cannot be created ({e}); {}",
                path.display(),
                parent.display(),
                DIR_HINT
            ))
        })?;
    }
    // Refuse a live server before creating anything.
    vacancy(listen, path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "api.sock".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(|e| err(bind_failed(path, &e)))?;
    // The socket's inode: shutdown removes the path only while it is ours.
    let inode = std::fs::metadata(&tmp).map(|m| m.ino()).unwrap_or(0);
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err(format!("cannot set the mode of {}: {e}", tmp.display())))
        .and_then(|()| place(listen, &tmp, path));
    let _ = std::fs::remove_file(&tmp);
    placed?;
    Ok(Listener::Unix {
        listener,
        path: path.to_path_buf(),
        inode,
    })
}

/// What to do when the socket's directory is missing or not writable.
const DIR_HINT: &str = "create the directory, writable by the user lethe runs as (under systemd, \
     RuntimeDirectory=lethe in the unit provides /run/lethe), fix its permissions, or choose another api.listen";

/// Why the socket could not be created at `path` (it is bound under a
/// temporary name in the same directory first: the message names the
/// configured path and its directory, not the temporary file).
fn bind_failed(path: &Path, e: &std::io::Error) -> String {
    let dir = path.parent().unwrap_or(Path::new("/"));
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => format!(
            "cannot create the socket {}: its directory {} is not writable by this process ({e}); {DIR_HINT}",
            path.display(),
            dir.display()
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => format!(
            "cannot create the socket {}: its directory {} does not exist ({e}); {DIR_HINT}",
            path.display(),
            dir.display()
        ),
        std::io::ErrorKind::InvalidInput => format!(
            "cannot create the socket {}: {e}; a Unix socket path must stay under about 100 bytes \
             (lethe adds a temporary suffix while binding): choose a shorter api.listen, e.g. unix:/run/lethe/api.sock",
            path.display()
        ),
        _ => format!(
            "cannot create the socket {} in {} ({e}); {DIR_HINT}",
            path.display(),
            dir.display()
        ),
    }
}

/// Links the bound socket `tmp` to `path`, removing a stale socket there
/// (only if it is still the same file when removed).
fn place(listen: &str, tmp: &Path, path: &Path) -> Result<(), ServeError> {
    let err = |m: String| ServeError::Bind {
        listen: listen.to_string(),
        message: m,
    };
    for _ in 0..5 {
        match std::fs::hard_link(tmp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(stale) = vacancy(listen, path)? {
                    let same = std::fs::symlink_metadata(path).map(|m| m.ino()).ok() == Some(stale);
                    if same {
                        tracing::info!(
                            event = "api.stale_socket",
                            path = %path.display(),
                            "a socket no server answers on (left by a process that died) is replaced"
                        );
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
            // A file system without hard links: rename, if the path is free.
            Err(_) if vacancy(listen, path)?.is_none() => {
                return std::fs::rename(tmp, path).map_err(|e| {
                    err(format!(
                        "cannot put the socket in place at {}: {e}",
                        path.display()
                    ))
                });
            }
            Err(e) => {
                return Err(err(format!(
                    "cannot put the socket in place at {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Err(err(format!(
        "{} keeps reappearing; is another daemon starting with the same api.listen?",
        path.display()
    )))
}

impl ApiServer {
    /// Binds `api.listen`; for TCP, reads the bearer token from
    /// `api.token_file` (refused when group/world readable or empty).
    ///
    /// # Errors
    /// See [`super::serve`].
    pub async fn bind(api: &ApiConfig) -> Result<ApiServer, ServeError> {
        let listener = match parse_listen(api)? {
            Endpoint::Unix(path) => bind_unix(&api.listen, &path)?,
            Endpoint::Tcp(addr) => {
                let file = api.token_file.as_deref().ok_or_else(|| {
                    ServeError::Token("a TCP listener needs api.token_file".into())
                })?;
                let token = crate::secrets::read_secret_file(file).map_err(ServeError::Token)?;
                let token = token.trim();
                if token.len() < 16 {
                    return Err(ServeError::Token(format!(
                        "{} holds a token shorter than 16 characters",
                        file.display()
                    )));
                }
                let listener =
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| ServeError::Bind {
                            listen: api.listen.clone(),
                            message: format!("cannot bind: {e}"),
                        })?;
                Listener::Tcp {
                    listener,
                    token: Arc::from(token),
                }
            }
        };
        Ok(ApiServer {
            listener,
            listen: api.listen.clone(),
            timeouts: Timeouts::default(),
            pause: None,
            leaks: None,
        })
    }

    /// Replaces the default client timeouts (10 s headers, 30 s body).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Serves the `schedule` routes with the daemon's switch.
    pub fn with_pause(mut self, pause: crate::pause_switch::PauseSwitch) -> Self {
        self.pause = Some(pause);
        self
    }

    /// Reports the daemon's last leak check on the `schedule` routes.
    pub fn with_leaks(mut self, leaks: crate::leak_state::LeakState) -> Self {
        self.leaks = Some(leaks);
        self
    }

    /// The address actually bound (useful with `tcp:127.0.0.1:0` in tests).
    pub fn local_addr(&self) -> String {
        match &self.listener {
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
            Listener::Tcp { listener, .. } => listener
                .local_addr()
                .map(|a| format!("tcp:{a}"))
                .unwrap_or_else(|_| self.listen.clone()),
        }
    }

    /// Serves the API (only: see [`super::serve`] for API plus journal
    /// worker) until `shutdown` is cancelled; then drains connections (10 s
    /// at most) and removes the socket.
    pub async fn run(
        self,
        store: Arc<ErasureStore>,
        storage: Arc<dyn Storage>,
        shutdown: CancellationToken,
    ) {
        let serves = super::Serves::of_server(&store, storage.as_ref());
        let state = Arc::new(ApiState {
            body_timeout: self.timeouts.body,
            store,
            storage,
            serves,
            pause: self.pause.clone(),
            leaks: self.leaks.clone(),
        });
        let header_timeout = self.timeouts.header;
        let token = match &self.listener {
            Listener::Tcp { token, .. } => Some(Arc::clone(token)),
            Listener::Unix { .. } => None,
        };
        tracing::info!(
            event = "api.listening",
            listen = %self.local_addr(),
            erasure_path = %state.serves.path.display(),
            storage = state.serves.storage.as_deref().unwrap_or(""),
        );
        let app = router(state, token);
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let accepted: std::io::Result<Box<dyn IoBox>> = tokio::select! {
                () = shutdown.cancelled() => break,
                r = accept(&self.listener) => r,
            };
            match accepted {
                Ok(io) => {
                    let svc = TowerToHyperService::new(app.clone());
                    let stop = shutdown.clone();
                    conns.spawn(async move {
                        let mut builder = hyper::server::conn::http1::Builder::new();
                        builder
                            .timer(TokioTimer::new())
                            .header_read_timeout(header_timeout);
                        let conn = builder.serve_connection(TokioIo::new(io), svc);
                        tokio::pin!(conn);
                        tokio::select! {
                            r = conn.as_mut() => { let _ = r; }
                            () = stop.cancelled() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(super::DRAIN_TIMEOUT, conn).await;
                            }
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(event = "api.accept_failed", error = %e);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            while conns.try_join_next().is_some() {}
        }
        let _ = tokio::time::timeout(
            super::DRAIN_TIMEOUT + std::time::Duration::from_secs(1),
            async { while conns.join_next().await.is_some() {} },
        )
        .await;
        conns.abort_all();
        if let Listener::Unix { path, inode, .. } = &self.listener {
            // Only remove the socket if it is still ours.
            if std::fs::metadata(path).map(|m| m.ino()).ok() == Some(*inode) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

trait IoBox: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> IoBox for T {}

async fn accept(l: &Listener) -> std::io::Result<Box<dyn IoBox>> {
    match l {
        Listener::Unix { listener, .. } => listener
            .accept()
            .await
            .map(|(s, _)| Box::new(s) as Box<dyn IoBox>),
        Listener::Tcp { listener, .. } => listener.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            Box::new(s) as Box<dyn IoBox>
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_whose_directory_cannot_exist_names_api_listen_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the directory should be: no user can create it.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let path = dir.path().join("file/sub/api.sock");
        let listen = format!("unix:{}", path.display());
        let Err(err) = bind_unix(&listen, &path) else {
            panic!("bound under a file")
        };
        let err = err.to_string();
        assert!(err.starts_with(&format!("api.listen = {listen}:")), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("RuntimeDirectory=lethe"), "{err}");
        assert!(
            !err.contains(".api.sock."),
            "names no temporary file: {err}"
        );
    }

    #[test]
    fn binding_in_a_directory_that_is_not_writable_names_the_path_not_the_temporary_file() {
        let path = Path::new("/run/lethe-test/api.sock");
        let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let m = bind_failed(path, &e);
        assert!(
            m.contains("/run/lethe-test/api.sock")
                && m.contains("directory /run/lethe-test is not writable")
                && m.contains("RuntimeDirectory=lethe")
                && m.contains("fix its permissions"),
            "{m}"
        );
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(bind_failed(path, &e).contains("does not exist"));
    }

    /// The check before binding and the placement are not atomic: a server
    /// that takes the path in between must not be replaced (a rename would
    /// have), while a socket nobody answers on still is.
    #[test]
    fn placing_never_replaces_a_socket_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listen = format!("unix:{}", path.display());
        let tmp = dir.path().join(".api.sock.tmp");
        let ours = std::os::unix::net::UnixListener::bind(&tmp).unwrap();
        ours.set_nonblocking(true).unwrap();
        // Another server bound the path after our check.
        let theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
        theirs.set_nonblocking(true).unwrap();
        let err = place(&listen, &tmp, &path).unwrap_err().to_string();
        assert!(
            err.contains("already serves") && err.contains("api.listen"),
            "{err}"
        );
        let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert!(theirs.accept().is_ok(), "the other server keeps its socket");
        assert!(ours.accept().is_err());
        // It went away without removing its socket: stale, replaced.
        drop(theirs);
        place(&listen, &tmp, &path).unwrap();
        let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert!(ours.accept().is_ok(), "the path is ours now");
    }
}
