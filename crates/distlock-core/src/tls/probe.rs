//! Why a TLS connection could not be made.
//!
//! Some client libraries lose the cause of a failed TLS handshake (the
//! ZooKeeper client says "no available hosts"; the etcd client may say only
//! "connection closed" when the server refused our certificate). When a
//! backend cannot connect over TLS, one handshake of our own with the same
//! CA and client certificate finds the cause to report: an unknown issuer,
//! a name the certificate does not cover, a client certificate the server
//! refused.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::{ensure_crypto_provider, TlsFiles, TlsSettings};

/// A bound for [`diagnose`] that suits a failed connect: it runs only
/// after the backend's own attempt failed.
pub const DIAGNOSE_WITHIN: Duration = Duration::from_secs(2);

/// How long the probe waits for a server's verdict on our certificate
/// after the handshake (TLS 1.3 servers send it with their first bytes).
const VERDICT_WAIT: Duration = Duration::from_millis(500);

/// The TLS problem with `host` (`host:port`, IPv6 in brackets), if one
/// handshake with `settings` shows one; `None` when it cannot tell (no
/// problem found, the files cannot be read, no CA to verify against, the
/// host cannot be reached).
///
/// Round trips: a TCP connect and a TLS handshake, then at most
/// [`VERDICT_WAIT`] for an alert, all within `within`.
///
/// # Cancel safety
///
/// Dropping the future closes the probe's connection.
pub async fn diagnose(host: &str, settings: &TlsSettings, within: Duration) -> Option<String> {
    tokio::time::timeout(within, probe(host, settings))
        .await
        .ok()
        .flatten()
}

async fn probe(host: &str, settings: &TlsSettings) -> Option<String> {
    let config = client_config(&settings.load().ok()?)?;
    let name = host.rsplit_once(':')?.0.trim_matches(['[', ']']);
    let server = ServerName::try_from(name.to_string()).ok()?;
    let tcp = tokio::net::TcpStream::connect(host).await.ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut stream = match connector.connect(server, tcp).await {
        Ok(stream) => stream,
        Err(e) => return Some(format!("TLS handshake with {host} failed: {e}")),
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(VERDICT_WAIT, stream.read(&mut byte)).await {
        Ok(Err(e)) => Some(format!("{host} refused the TLS session: {e}")),
        _ => None,
    }
}

/// A rustls client configuration with the CA and the client certificate.
fn client_config(files: &TlsFiles) -> Option<ClientConfig> {
    ensure_crypto_provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(files.ca_pem()?.as_bytes()) {
        roots.add(cert.ok()?).ok()?;
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    match files.client_pem() {
        None => Some(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).ok()?;
            builder.with_client_auth_cert(chain, key).ok()
        }
    }
}
