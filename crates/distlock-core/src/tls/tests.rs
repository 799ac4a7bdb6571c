use std::path::PathBuf;

use super::*;

/// base64 of "secret-key-material": what a test key file holds.
const KEY_BODY: &str = "c2VjcmV0LWtleS1tYXRlcmlhbA==";

fn key_pem() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n")
}

fn cert_pem() -> String {
    "-----BEGIN CERTIFICATE-----\nY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n".to_string()
}

/// A file under the system's temporary directory, unique to this test run.
fn file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distlock-core-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn parse(url: &str) -> Result<Option<TlsSettings>> {
    let mut url = BackendUrl::parse(url)?;
    let implied = url.scheme() == "rediss";
    let tls = TlsSettings::from_url(&mut url, implied)?;
    url.finish()?;
    Ok(tls)
}

fn refused(url: &str) -> String {
    match parse(url) {
        Err(LockError::InvalidConfig { reason }) => reason,
        other => panic!("{url}: expected InvalidConfig, got {other:?}"),
    }
}

/// Panics when `secret` shows in `shown` (Display and Debug of something).
fn assert_secret_free(shown: &str, secret: &str) {
    assert!(!shown.contains(secret), "shows the secret: {shown}");
}

#[test]
fn no_tls_parameter_means_no_tls_and_each_one_turns_it_on() {
    assert_eq!(parse("etcd://h").unwrap(), None);
    assert_eq!(parse("etcd://h?tls=false").unwrap(), None);
    assert_eq!(
        parse("etcd://h?tls=TRUE").unwrap(),
        Some(TlsSettings::new())
    );
    assert_eq!(parse("rediss://h").unwrap(), Some(TlsSettings::new()));
    let ca = TlsSettings::new().with_ca("/c.pem");
    assert_eq!(parse("etcd://h?ca=/c.pem").unwrap(), Some(ca.clone()));
    assert_eq!(parse("etcd://h?cacert=/c.pem").unwrap(), Some(ca));
    let mutual = TlsSettings::new().with_client_cert("/a.pem", "/a.key");
    assert_eq!(
        parse("etcd://h?cert=/a.pem&key=/a.key").unwrap(),
        Some(mutual)
    );
    let insecure = parse("etcd://h?danger_accept_invalid_certs=true")
        .unwrap()
        .unwrap();
    assert!(insecure.accepts_invalid_certs());
}

#[test]
fn contradictions_are_refused_by_name() {
    assert!(refused("rediss://h?tls=false").contains("tls=false"));
    assert!(refused("etcd://h?tls=false&ca=/c.pem").contains("tls=false"));
    assert!(refused("etcd://h?tls=no&danger_accept_invalid_certs=false").contains("tls=false"));
    assert!(refused("etcd://h?cert=/a.pem").contains("`cert` and `key`"));
    assert!(refused("etcd://h?key=/a.key").contains("`cert` and `key`"));
    assert!(refused("etcd://h?ca=/c&cacert=/c").contains("give one"));
    let both = refused("etcd://h?ca=/c&danger_accept_invalid_certs=1");
    assert!(both.contains("danger_accept_invalid_certs"), "{both}");
    assert!(TlsSettings::new()
        .with_ca("/c")
        .danger_accept_invalid_certs()
        .check()
        .is_err());
}

#[test]
fn backends_that_always_verify_refuse_the_opt_out() {
    let err = TlsSettings::new()
        .danger_accept_invalid_certs()
        .require_verification("etcd")
        .unwrap_err();
    assert!(
        err.to_string().contains("danger_accept_invalid_certs"),
        "{err}"
    );
    assert!(TlsSettings::new().require_verification("etcd").is_ok());
}

#[test]
fn files_are_read_and_checked() {
    let settings = TlsSettings::new()
        .with_ca(file("ca.pem", &cert_pem()))
        .with_client_cert(
            file("client.pem", &cert_pem()),
            file("client.key", &key_pem()),
        );
    let files = settings.load().unwrap();
    assert_eq!(files.ca_pem(), Some(cert_pem().as_str()));
    let (cert, key) = files.client_pem().unwrap();
    assert_eq!((cert, key), (cert_pem().as_str(), key_pem().as_str()));
    assert_secret_free(&format!("{files:?}"), KEY_BODY);
}

#[test]
fn unreadable_or_wrong_files_are_named_without_their_contents() {
    let missing = TlsSettings::new().with_ca("/nonexistent/distlock/ca.pem");
    let err = missing.load().unwrap_err().to_string();
    assert!(
        err.contains("/nonexistent/distlock/ca.pem") && err.contains("CA"),
        "{err}"
    );

    // A key where the certificate should be: named, contents not shown.
    let swapped = file("swapped.pem", &key_pem());
    let settings = TlsSettings::new().with_client_cert(&swapped, &swapped);
    let err = settings.load().unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("swapped.pem") && shown.contains("certificate"),
        "{shown}"
    );
    assert_secret_free(&shown, KEY_BODY);

    // A certificate where the key should be.
    let cert = file("cert-as-key.pem", &cert_pem());
    let err = TlsSettings::new()
        .with_client_cert(&cert, &cert)
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cert-as-key.pem") && err.contains("private key"),
        "{err}"
    );

    // Not text at all.
    let binary = std::env::temp_dir().join(format!("distlock-core-tls-bin-{}", std::process::id()));
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let err = TlsSettings::new()
        .with_ca(&binary)
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not PEM text"), "{err}");
}

/// The check the tests above use catches a `Debug` that shows the key: a
/// purpose-broken copy of `TlsFiles` with a derived `Debug`.
#[test]
#[should_panic(expected = "shows the secret")]
fn a_debug_that_shows_the_key_is_caught() {
    #[derive(Debug)]
    #[allow(dead_code)]
    struct LeakyTlsFiles {
        client: Option<(String, String)>,
    }
    let leaky = LeakyTlsFiles {
        client: Some((cert_pem(), key_pem())),
    };
    assert_secret_free(&format!("{leaky:?}"), KEY_BODY);
}

#[test]
fn debug_of_the_settings_shows_paths_only() {
    let settings = TlsSettings::new().with_client_cert("/etc/c.pem", "/etc/c.key");
    let shown = format!("{settings:?}");
    assert!(shown.contains("/etc/c.key"), "{shown}");
}
