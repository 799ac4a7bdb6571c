//! TLS settings, the same on every network backend.
//!
//! One vocabulary in URLs, read by [`TlsSettings::from_url`]:
//!
//! | parameter | meaning |
//! |---|---|
//! | `tls` | `true`: connect with TLS, verifying the server against the system roots (or `ca`). `rediss://` implies it |
//! | `ca` (legacy `cacert`) | a PEM file of the CA certificate(s) to verify the server against, instead of the system roots; implies `tls` |
//! | `cert`, `key` | a PEM client certificate (chain) and its PEM private key, for servers that ask for client certificates (mutual TLS); both or neither; imply `tls` |
//! | `danger_accept_invalid_certs` | `true`: accept any server certificate. **For tests only**: anyone between the client and the server can read and change the traffic. Only where the client library offers it |
//!
//! The server's name is always verified against its certificate unless
//! `danger_accept_invalid_certs` is set. Builders say the same with
//! [`TlsSettings::new`] and its `with_*` setters.
//!
//! The settings hold paths only. [`TlsSettings::load`] reads the files when
//! a backend connects; its errors name the file and what is wrong with it,
//! never its contents, and [`TlsFiles`] never shows a private key in
//! `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::backend_url::BackendUrl;
use crate::error::{LockError, Result};

/// How to speak TLS to a backend's servers: which CA to trust, which client
/// certificate to present, and whether to skip verification (tests only).
///
/// ```
/// use distlock_core::{BackendUrl, TlsSettings};
/// let mut url = BackendUrl::parse("etcd://h:2379?ca=/etc/ca.pem&cert=/etc/c.pem&key=/etc/c.key")?;
/// let from_url = TlsSettings::from_url(&mut url, false)?.expect("TLS is on");
/// let by_hand = TlsSettings::new()
///     .with_ca("/etc/ca.pem")
///     .with_client_cert("/etc/c.pem", "/etc/c.key");
/// assert_eq!(from_url, by_hand);
/// assert!(!by_hand.accepts_invalid_certs());
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
    accept_invalid_certs: bool,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca", &self.ca)
            .field("cert", &self.client.as_ref().map(|(cert, _)| cert))
            .field("key", &self.client.as_ref().map(|(_, key)| key))
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish()
    }
}

impl TlsSettings {
    /// TLS verified against the system's root certificates, with no client
    /// certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies the server against the CA certificate(s) in this PEM file
    /// instead of the system roots.
    pub fn with_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.ca = Some(ca.into());
        self
    }

    /// Presents this client certificate (a PEM file, chain allowed) signed
    /// for the private key in the PEM file `key`, for servers that ask for
    /// client certificates.
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// Accepts any server certificate: expired, self-signed, for another
    /// name. **For tests only**: anyone on the path can then read and change
    /// the traffic. Backends whose client library cannot do this refuse the
    /// settings ([`require_verification`](Self::require_verification)).
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.accept_invalid_certs = true;
        self
    }

    /// The CA file, if one replaces the system roots.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The client certificate and key files, if any.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        self.client
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()))
    }

    /// True when server certificates are not verified (tests only).
    pub fn accepts_invalid_certs(&self) -> bool {
        self.accept_invalid_certs
    }

    /// Refuses settings that contradict themselves: a CA to verify against
    /// together with no verification at all.
    pub fn check(&self) -> Result<()> {
        match self.problem() {
            None => Ok(()),
            Some(why) => Err(LockError::invalid_config(why)),
        }
    }

    /// `InvalidConfig` when these settings skip certificate verification and
    /// `backend`'s client library cannot: it always verifies.
    pub fn require_verification(&self, backend: &str) -> Result<()> {
        if self.accept_invalid_certs {
            return Err(LockError::invalid_config(format!(
                "the {backend} client always verifies the server's certificate: \
                 `danger_accept_invalid_certs` is not available there (give the server's CA with `ca`)"
            )));
        }
        Ok(())
    }

    /// Takes `tls`, `ca` (legacy `cacert`), `cert`, `key` and
    /// `danger_accept_invalid_certs` from `url`: `Some` when TLS is on,
    /// because `scheme_means_tls` (`rediss://`) or because a parameter says
    /// so.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` naming the URL (redacted) for `tls=false` together
    /// with the scheme or with any other TLS parameter, `cert` without `key`
    /// (or the reverse), or a CA together with `danger_accept_invalid_certs`.
    pub fn from_url(url: &mut BackendUrl, scheme_means_tls: bool) -> Result<Option<Self>> {
        let tls = url.boolean("tls")?;
        let ca = url.string_any(&["ca", "cacert"])?.map(PathBuf::from);
        let cert = url.string("cert").map(PathBuf::from);
        let key = url.string("key").map(PathBuf::from);
        let insecure = url.boolean("danger_accept_invalid_certs")?;
        let client = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(url.error(
                "`cert` and `key` go together: give both (the client certificate and its private key) or neither",
            )),
        };
        let settings = TlsSettings {
            ca,
            client,
            accept_invalid_certs: insecure == Some(true),
        };
        let asked = settings != TlsSettings::default() || insecure.is_some();
        match tls {
            Some(false) if scheme_means_tls => {
                Err(url.error("the scheme means TLS: `tls=false` contradicts it"))
            }
            Some(false) if asked => Err(url.error(
                "`ca`, `cert`, `key` and `danger_accept_invalid_certs` configure TLS: they cannot go with `tls=false`",
            )),
            Some(false) => Ok(None),
            _ if !(scheme_means_tls || asked || tls == Some(true)) => Ok(None),
            _ => match settings.problem() {
                Some(why) => Err(url.error(&why)),
                None => Ok(Some(settings)),
            },
        }
    }

    fn problem(&self) -> Option<String> {
        (self.accept_invalid_certs && self.ca.is_some()).then(|| {
            "`ca` verifies the server and `danger_accept_invalid_certs` skips verification: give one"
                .to_string()
        })
    }

    /// Reads the CA, certificate and key files, checking that each holds
    /// what it should.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` naming the file: it cannot be read, is not text, or
    /// holds no PEM certificate (no PEM private key, for the key file). The
    /// message never shows the file's contents.
    pub fn load(&self) -> Result<TlsFiles> {
        let ca = self
            .ca
            .as_deref()
            .map(|path| read_certificates(path, "CA certificate"))
            .transpose()?;
        let client = self
            .client
            .as_ref()
            .map(|(cert, key)| {
                Ok::<_, LockError>((
                    read_certificates(cert, "client certificate")?,
                    read_private_key(key)?,
                ))
            })
            .transpose()?;
        Ok(TlsFiles { ca, client })
    }
}

/// The contents of the files a [`TlsSettings`] names, checked to be PEM.
/// `Debug` shows sizes only, never a key.
#[derive(Clone, Default)]
pub struct TlsFiles {
    ca: Option<String>,
    client: Option<(String, String)>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |pem: &String| format!("{} bytes of PEM", pem.len());
        f.debug_struct("TlsFiles")
            .field("ca", &self.ca.as_ref().map(size))
            .field("cert", &self.client.as_ref().map(|(cert, _)| size(cert)))
            .field("key", &self.client.as_ref().map(|_| "***"))
            .finish()
    }
}

impl TlsFiles {
    /// The CA certificate(s), PEM.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_deref()
    }

    /// The client certificate (chain) and its private key, PEM.
    pub fn client_pem(&self) -> Option<(&str, &str)> {
        self.client
            .as_ref()
            .map(|(cert, key)| (cert.as_str(), key.as_str()))
    }
}

/// rustls needs one process-wide crypto provider; installs ring's unless
/// the application already installed one. Call it before building a rustls
/// client configuration.
#[cfg(feature = "rustls")]
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another installer is fine: some provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn read_pem(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::InvalidData => "it is not PEM text".to_string(),
            _ => e.to_string(),
        };
        LockError::invalid_config(format!(
            "cannot read the {what} file `{}`: {why}",
            path.display()
        ))
    })
}

fn read_certificates(path: &Path, what: &str) -> Result<String> {
    let pem = read_pem(path, what)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    if certs.is_empty() || certs.iter().any(|c| c.is_err()) {
        return Err(LockError::invalid_config(format!(
            "the {what} file `{}` holds no well-formed PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        )));
    }
    Ok(pem)
}

fn read_private_key(path: &Path) -> Result<String> {
    let pem = read_pem(path, "private key")?;
    if PrivateKeyDer::from_pem_slice(pem.as_bytes()).is_err() {
        return Err(LockError::invalid_config(format!(
            "the private key file `{}` holds no well-formed PEM private key (PKCS#8, PKCS#1 or SEC1)",
            path.display()
        )));
    }
    Ok(pem)
}

#[cfg(feature = "rustls")]
mod probe;
#[cfg(feature = "rustls")]
pub use probe::{diagnose, DIAGNOSE_WITHIN};

#[cfg(test)]
mod tests;
