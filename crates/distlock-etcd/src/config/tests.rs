use std::path::Path;

use super::*;

#[test]
fn parses_hosts_prefix_and_options() {
    let c = EtcdConfig::from_url(
        "etcd://127.0.0.1:2379,127.0.0.1:2380/team/locks?lease_ttl=3s&timeout=250ms",
    )
    .unwrap();
    assert_eq!(c.endpoints(), ["127.0.0.1:2379", "127.0.0.1:2380"]);
    assert_eq!(c.prefix(), "team/locks");
    assert_eq!(c.session_timeout(), Duration::from_secs(3));
    assert_eq!(c.timeout(), Duration::from_millis(250));
    assert!(c.tls().is_none());
    assert_eq!(
        c.endpoint_urls(),
        ["http://127.0.0.1:2379", "http://127.0.0.1:2380"]
    );
}

#[test]
fn a_host_without_a_port_gets_2379() {
    let c = EtcdConfig::from_url("etcd://h,g:1").unwrap();
    assert_eq!(c.endpoints(), ["h:2379", "g:1"]);
    assert_eq!(c.prefix(), DEFAULT_PREFIX);
    assert_eq!(c.session_timeout(), DEFAULT_SESSION_TIMEOUT);
    assert_eq!(c.timeout(), DEFAULT_TIMEOUT);
    assert_eq!(c.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
}

#[test]
fn ipv6_hosts_go_in_brackets() {
    let c = EtcdConfig::from_url("etcd://[::1]:2380,[fe80::1]/p").unwrap();
    assert_eq!(c.endpoints(), ["[::1]:2380", "[fe80::1]:2379"]);
    assert_eq!(c.endpoint_urls()[0], "http://[::1]:2380");
    assert!(EtcdConfig::from_url("etcd://[::1").is_err());
}

#[test]
fn durations_with_a_unit_and_legacy_milliseconds_are_equal() {
    let a = EtcdConfig::from_url("etcd://h?timeout=2s&connect_timeout=1500ms").unwrap();
    let b = EtcdConfig::from_url("etcd://h?timeout_ms=2000&connect_timeout_ms=1500").unwrap();
    assert_eq!(a.timeout(), Duration::from_secs(2));
    assert_eq!(a.timeout(), b.timeout());
    assert_eq!(a.connect_timeout(), b.connect_timeout());
    assert!(EtcdConfig::from_url("etcd://h?timeout=2s&timeout_ms=2000").is_err());
}

#[test]
fn session_timeout_and_its_legacy_name() {
    let a = EtcdConfig::from_url("etcd://h?session_timeout=4s").unwrap();
    let b = EtcdConfig::from_url("etcd://h?lease_ttl=4").unwrap();
    let c = EtcdConfig::from_url("etcd://h?lease_ttl=4s").unwrap();
    for config in [a, b, c] {
        assert_eq!(config.session_timeout(), Duration::from_secs(4));
    }
    let err = EtcdConfig::from_url("etcd://h?session_timeout=4s&lease_ttl=4").unwrap_err();
    assert!(err.to_string().contains("give one"), "{err}");
}

#[test]
fn booleans_are_read_in_any_case() {
    for on in ["ON", "true", "Yes", "1"] {
        let c = EtcdConfig::from_url(&format!("etcd://h?tls={on}")).unwrap();
        assert!(c.tls().is_some(), "{on}");
        assert_eq!(c.endpoint_urls(), ["https://h:2379"]);
    }
    assert!(EtcdConfig::from_url("etcd://h?tls=OFF")
        .unwrap()
        .tls()
        .is_none());
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = EtcdConfig::from_url("etcd://u:hunter2@h:1?colour=red").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err:?}");
    assert!(text.contains("`colour`"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn prefix_from_the_path_or_the_parameter_not_both() {
    let a = EtcdConfig::from_url("etcd://h/app%20locks").unwrap();
    let b = EtcdConfig::from_url("etcd://h?prefix=app%20locks").unwrap();
    assert_eq!(a.prefix(), "app locks");
    assert_eq!(a.prefix(), b.prefix());
    assert!(EtcdConfig::from_url("etcd://h/a?prefix=b").is_err());
}

#[test]
fn credentials_in_userinfo_or_query() {
    let a = EtcdConfig::from_url("etcd://h:1?user=bob&password=s%40cret").unwrap();
    let b = EtcdConfig::from_url("etcd://bob:s%40cret@h:1").unwrap();
    let c = EtcdConfig::from_url("etcd://h:1?username=bob&password=s%40cret").unwrap();
    let d = EtcdConfig::from_url("etcd://bob:s%40cret@h:1,g:2").unwrap();
    for config in [a, b, c, d] {
        assert_eq!(config.user(), Some("bob"));
        assert_eq!(config.password(), Some("s@cret"));
        assert_eq!(config.prefix(), DEFAULT_PREFIX);
    }
    assert!(EtcdConfig::from_url("etcd://bob:x@h:1?user=bob&password=x").is_err());
    assert!(EtcdConfig::from_url("etcd://bob:x@h:1,eve:y@g:2").is_err());
}

#[test]
fn password_never_shows_in_errors_or_debug() {
    let err = EtcdConfig::from_url("etcd://bob:hunter2@h:1?bogus=1").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = EtcdConfig::from_url("etcd://h:1?user=bob&password=hunter2&lease_ttl=x").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let c = EtcdConfig::from_url("etcd://h:1?user=bob&password=hunter2").unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!c.display_url().contains("hunter2"));
}

#[test]
fn malformed_urls_are_invalid_config() {
    for url in [
        "redis://h:1",
        "etcd://",
        "etcd://h:notaport",
        "etcd://h:0",
        "etcd://h:1?lease_ttl=0",
        "etcd://h:1?lease_ttl=1500ms",
        "etcd://h:1?session_timeout=1500ms",
        "etcd://h:1?session_timeout=0s",
        "etcd://h:1?timeout=0s",
        "etcd://h:1?tls=maybe",
        "etcd://h:1?password=x",
        "etcd://h:1?user=x",
        "etcd://:pw@h:1",
        "etcd://h:1?what=1",
        "etcd://h:1?ca=/ca.pem&tls=false",
    ] {
        let err = EtcdConfig::from_url(url).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{url}: {err}"
        );
    }
}

#[test]
fn ca_implies_tls_under_either_name() {
    for url in [
        "etcd://h:1?ca=/etc/ssl/ca.pem",
        "etcd://h:1?cacert=/etc/ssl/ca.pem",
    ] {
        let c = EtcdConfig::from_url(url).unwrap();
        let tls = c.tls().expect("TLS is on");
        assert_eq!(tls.ca(), Some(Path::new("/etc/ssl/ca.pem")));
        assert_eq!(c.endpoint_urls(), ["https://h:1"]);
    }
}

#[test]
fn the_builder_validates_like_the_url() {
    assert!(EtcdConfig::new(["h:1"]).validate().is_ok());
    assert!(EtcdConfig::new(["http://h:1/"]).validate().is_ok());
    assert!(EtcdConfig::new(Vec::<String>::new()).validate().is_err());
    assert!(EtcdConfig::new(["h"]).validate().is_err());
    let sub_second = EtcdConfig::new(["h:1"]).with_session_timeout(Duration::from_millis(1500));
    assert!(sub_second.validate().is_err());
    let err = EtcdConfig::new(["h:1"])
        .with_user("bob", "hunter2")
        .with_prefix("")
        .validate()
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_client_certificate_comes_with_its_key_and_verification_cannot_be_skipped() {
    let c = EtcdConfig::from_url("etcd://h?ca=/ca.pem&cert=/c.pem&key=/c.key").unwrap();
    let want = TlsSettings::new()
        .with_ca("/ca.pem")
        .with_client_cert("/c.pem", "/c.key");
    assert_eq!(c.tls(), Some(&want));
    assert_eq!(c.endpoint_urls(), ["https://h:2379"]);
    let by_hand = EtcdConfig::new(["h:2379"]).with_tls(want.clone());
    assert_eq!(by_hand.tls(), Some(&want));
    for url in [
        "etcd://u:hunter2@h?cert=/c.pem",
        "etcd://u:hunter2@h?danger_accept_invalid_certs=true",
    ] {
        let err = EtcdConfig::from_url(url).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let insecure =
        EtcdConfig::new(["h:2379"]).with_tls(TlsSettings::new().danger_accept_invalid_certs());
    assert!(insecure.validate().is_err());
}
