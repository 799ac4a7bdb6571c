//! TLS for the Redis store's URL: the core's vocabulary (`rediss://`, `tls`,
//! `ca`, `cert`, `key`, `danger_accept_invalid_certs`), read with
//! [`TlsSettings`], onto the redis client.

use distlock_core::{BackendUrl, TlsSettings};
use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};

/// The client for `url`: redis reads the address, database and credentials;
/// TLS follows the core's settings (the system roots unless `ca` is given).
///
/// # Errors
///
/// A message without the password or key: the URL cannot be used, or a TLS
/// file cannot be read (named).
pub(super) fn client(url: &str) -> Result<redis::Client, String> {
    let info = url.into_connection_info().map_err(|e| e.to_string())?;
    let Some(tls) = settings(url)? else {
        return redis::Client::open(info).map_err(|e| e.to_string());
    };
    distlock_core::tls::ensure_crypto_provider();
    let addr = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => (host.clone(), *port, *insecure),
        _ => return Err("TLS needs a TCP address (`rediss://host:port`)".to_string()),
    };
    let info = info.set_addr(ConnectionAddr::TcpTls {
        host: addr.0,
        port: addr.1,
        insecure: addr.2 || tls.accepts_invalid_certs(),
        tls_params: None,
    });
    let files = tls.load().map_err(|e| e.to_string())?;
    let certificates = TlsCertificates {
        client_tls: files.client_pem().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.as_bytes().to_vec(),
            client_key: key.as_bytes().to_vec(),
        }),
        root_cert: files.ca_pem().map(|ca| ca.as_bytes().to_vec()),
    };
    redis::Client::build_with_tls(info, certificates).map_err(|e| e.to_string())
}

/// The TLS settings `url` asks for; `None` for a URL the core's grammar does
/// not read (a Unix socket), which redis alone then reads.
fn settings(url: &str) -> Result<Option<TlsSettings>, String> {
    let Ok(mut parsed) = BackendUrl::parse(url) else {
        return Ok(None);
    };
    let scheme_means_tls = matches!(parsed.scheme(), "rediss" | "valkeys");
    TlsSettings::from_url(&mut parsed, scheme_means_tls).map_err(|e| e.to_string())
}
