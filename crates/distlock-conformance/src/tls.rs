//! For TLS tests: the throw-away PKI that `scripts/services.sh` makes, and
//! what a test shows of an error to prove that no secret is in it.

/// `$var`, else `default()`.
pub fn setting(var: &str, default: impl FnOnce() -> String) -> String {
    std::env::var(var).unwrap_or_else(|_| default())
}

/// A file of the test PKI: `$var`, else `target/services/tls/<name>` of
/// this workspace, where `scripts/services.sh up` makes it.
pub fn tls_file(var: &str, name: &str) -> String {
    setting(var, || {
        format!(
            "{}/../../target/services/tls/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// The test CA, which signed every TLS server's certificate.
pub fn ca() -> String {
    tls_file("DISTLOCK_TLS_CA", "ca.pem")
}

/// A second CA, which signed nothing the servers use.
pub fn other_ca() -> String {
    tls_file("DISTLOCK_TLS_OTHER_CA", "other-ca.pem")
}

/// The client certificate the TLS servers accept.
pub fn cert() -> String {
    tls_file("DISTLOCK_TLS_CERT", "client.pem")
}

/// The client certificate's private key.
pub fn key() -> String {
    tls_file("DISTLOCK_TLS_KEY", "client.key")
}

/// The error, its `Debug`, and every source below it: everything an
/// application could log of it.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut shown = format!("{err} / {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        shown.push_str(&format!(" / {s} / {s:?}"));
        source = s.source();
    }
    shown
}

/// A line from the middle of the client key file: key material that must
/// never show in an error, a log or a `Debug`.
///
/// # Panics
///
/// When the key file cannot be read (the servers were not started).
pub fn key_material() -> String {
    let pem = std::fs::read_to_string(key()).expect("the client key file");
    pem.lines()
        .find(|l| !l.starts_with("-----") && l.len() > 16)
        .expect("a base64 line")
        .to_string()
}
