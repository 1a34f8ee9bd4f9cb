//! TLS to the source database, with libpq's `sslmode` meanings, so the
//! same URL means the same thing to Lethe and to the `pg_dump` it runs.
//!
//! A remote server (anything but a loopback address or a Unix socket) is
//! only reached over TLS: an unset `sslmode` (or `prefer`/`allow`) becomes
//! `require`, and `disable` is refused. `require` encrypts without checking
//! the certificate (as libpq does), unless `sslrootcert` names a CA file,
//! which makes it `verify-ca`; `verify-ca` checks the chain (against
//! `sslrootcert`, else the system's CAs); `verify-full` also checks the
//! host name. A loopback server gets TLS only when asked for with
//! `require`/`verify-*`. Client certificates (`sslcert`/`sslkey`) are not
//! supported. `PGSSLMODE`/`PGSSLROOTCERT` apply when the URL says nothing.

use super::SourceError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode`, as Lethe applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// `source.url` split for its two readers.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// For tokio-postgres: without the libpq-only TLS parameters.
    pub driver_url: String,
    /// For pg_dump: the URL with `sslmode` set to the mode Lethe applies.
    pub pg_dump_url: String,
    pub mode: Mode,
    pub root_cert: Option<PathBuf>,
}

/// `query_pairs_mut` writes a space as `+` (form encoding), but libpq and
/// tokio-postgres decode only `%XX`: `options=-c%20TimeZone%3DUTC` would
/// reach the server as `-c+TimeZone=UTC`. A literal `+` is written `%2B`,
/// so every `+` left in the query is a space.
fn spaces_as_percent(u: &mut url::Url) {
    if let Some(q) = u.query().filter(|q| q.contains('+')) {
        let q = q.replace('+', "%20");
        u.set_query(Some(&q));
    }
}

/// Works out the TLS mode of `url`.
///
/// # Errors
/// `BadUrl` for an unparsable URL, an unknown `sslmode`, client
/// certificates, or plaintext to a remote host.
pub fn endpoint(url: &str) -> Result<Endpoint, SourceError> {
    let redacted = crate::secrets::redact_url(url);
    let bad = |message: String| SourceError::BadUrl {
        url: redacted.clone(),
        message,
    };
    let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut sslmode = std::env::var("PGSSLMODE").ok().filter(|v| !v.is_empty());
    let mut root_cert = std::env::var_os("PGSSLROOTCERT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut host_param = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    // Decoded as libpq decodes a URI: `%XX` only, a `+` is a plus (form
    // decoding, `query_pairs`, would read it as a space).
    let query = parsed.query().unwrap_or_default().replace('+', "%2B");
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "sslmode" => sslmode = Some(v.to_string()),
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            "sslcert" | "sslkey" => {
                return Err(bad(
                    "client certificates (sslcert/sslkey) are not supported; use password \
                     authentication (PGPASSFILE) over sslmode=verify-full"
                        .into(),
                ));
            }
            _ => {
                if k == "host" {
                    host_param = Some(v.to_string());
                }
                kept.push((k.to_string(), v.to_string()));
            }
        }
    }
    let host = host_param.unwrap_or_else(|| parsed.host_str().unwrap_or("").to_string());
    // A Unix socket directory (`/run/postgresql`, percent-encoded in the
    // authority as `%2Frun…`) is local too.
    let socket =
        host.starts_with('/') || host.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2f"));
    let local = host.is_empty()
        || socket
        || crate::residency::is_loopback_host(host.trim_matches(['[', ']']));
    let mode = match sslmode.as_deref() {
        None | Some("prefer") | Some("allow") => {
            if local {
                Mode::Disable
            } else {
                Mode::Require
            }
        }
        Some("disable") if local => Mode::Disable,
        Some("disable") => {
            return Err(bad(format!(
                "sslmode=disable to the remote host {host}: lethe only reaches a remote database over TLS; \
                 use sslmode=verify-full (or require)"
            )));
        }
        Some("require") if root_cert.is_some() => Mode::VerifyCa,
        Some("require") => Mode::Require,
        Some("verify-ca") => Mode::VerifyCa,
        Some("verify-full") => Mode::VerifyFull,
        Some(other) => {
            return Err(bad(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    let mut driver = parsed.clone();
    driver.query_pairs_mut().clear().extend_pairs(kept.iter());
    if kept.is_empty() {
        driver.set_query(None);
    }
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept.iter())
        .append_pair("sslmode", mode.as_str());
    if let Some(rc) = &root_cert {
        parsed
            .query_pairs_mut()
            .append_pair("sslrootcert", &rc.display().to_string());
    }
    spaces_as_percent(&mut driver);
    spaces_as_percent(&mut parsed);
    Ok(Endpoint {
        driver_url: driver.to_string(),
        pg_dump_url: parsed.to_string(),
        mode,
        root_cert,
    })
}

/// The rustls connector for a TLS mode; `None` for `Disable`.
///
/// # Errors
/// An unreadable `sslrootcert` or no usable CA.
pub fn connector(ep: &Endpoint) -> Result<Option<MakeRustls>, SourceError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls_err = |message: String| SourceError::Connect {
        url: "(TLS set-up)".into(),
        message,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let config = match ep.mode {
        Mode::Disable => return Ok(None),
        Mode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly { provider }))
            .with_no_client_auth(),
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = Arc::new(roots(ep.root_cert.as_ref())?);
            let webpki =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| tls_err(format!("cannot build the certificate verifier: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if ep.mode == Mode::VerifyCa {
                Arc::new(AnyName { inner: webpki })
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(Some(MakeRustls {
        config: Arc::new(config),
    }))
}

fn roots(root_cert: Option<&PathBuf>) -> Result<RootCertStore, SourceError> {
    use rustls::pki_types::pem::PemObject;
    let mut store = RootCertStore::empty();
    let err = |message: String| SourceError::Connect {
        url: "(TLS set-up)".into(),
        message,
    };
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| err(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err(format!(
                    "sslrootcert {} holds no usable CA certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(err(
                    "no system CA certificates found; set sslrootcert=/path/to/ca.pem in source.url".into()
                ));
            }
        }
    }
    Ok(store)
}

/// `sslmode=require`: encryption without certificate checks (libpq's
/// meaning). The handshake signatures are still verified.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted CA; the name may differ.
#[derive(Debug)]
struct AnyName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        mid: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end, mid, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// tokio-postgres glue for rustls (no channel binding: SCRAM runs without
/// `-PLUS`, which PostgreSQL accepts).
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        let name = ServerName::try_from(domain.to_string())?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
        })
    }
}

pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, std::io::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(s))
        })
    }
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
