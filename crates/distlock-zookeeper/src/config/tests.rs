use super::*;

#[test]
fn full_url_is_understood() {
    let c = ZkConfig::from_url(
        "zk://h1:1,h2:2,h3/chroot/x?session_timeout_ms=2500&user=alice&password=p%40ss%26w&root=/locks",
    )
    .unwrap();
    assert_eq!(c.hosts(), ["h1:1", "h2:2", "h3:2181"]);
    assert_eq!(c.base_path(), "/chroot/x/locks");
    assert_eq!(c.session_timeout(), Duration::from_millis(2500));
    assert_eq!(c.user(), Some("alice"));
    assert_eq!(c.digest_auth().unwrap(), b"alice:p@ss&w");
}

#[test]
fn a_bare_url_uses_the_default_prefix_and_timeouts() {
    let c = ZkConfig::from_url("zookeeper://localhost").unwrap();
    assert_eq!(c.hosts(), ["localhost:2181"], "default port");
    assert_eq!(c.base_path(), "/distlock");
    assert_eq!(c.session_timeout(), DEFAULT_SESSION_TIMEOUT);
    assert_eq!(c.timeout(), None);
    assert_eq!(c.connect_timeout(), DEFAULT_SESSION_TIMEOUT + CONNECT_SLACK);
    assert!(c.user().is_none());
}

#[test]
fn userinfo_gives_the_credentials_percent_decoded() {
    let c = ZkConfig::from_url("zk://alice:p%40ss%2Cw@h1:1,h2:2/app").unwrap();
    assert_eq!(c.hosts(), ["h1:1", "h2:2"]);
    assert_eq!(c.user(), Some("alice"));
    assert_eq!(c.digest_auth().unwrap(), b"alice:p@ss,w");
    assert_eq!(c.base_path(), "/app/distlock");
    // The legacy query keys say the same.
    let legacy =
        ZkConfig::from_url("zk://h1:1,h2:2/app?username=alice&password=p%40ss%2Cw").unwrap();
    assert_eq!(legacy.digest_auth(), c.digest_auth());
}

#[test]
fn ipv6_hosts_keep_their_brackets() {
    let c = ZkConfig::from_url("zk://[::1]:2182,[fe80::1]").unwrap();
    assert_eq!(c.hosts(), ["[::1]:2182", "[fe80::1]:2181"]);
    assert_eq!(c.connect_string(), "[::1]:2182,[fe80::1]:2181");
}

#[test]
fn durations_take_units_and_the_legacy_millisecond_keys() {
    let modern =
        ZkConfig::from_url("zk://h?timeout=2s&session_timeout=6s&connect_timeout=500ms").unwrap();
    let legacy =
        ZkConfig::from_url("zk://h?timeout_ms=2000&session_timeout_ms=6000&connect_timeout_ms=500")
            .unwrap();
    for c in [&modern, &legacy] {
        assert_eq!(c.timeout(), Some(Duration::from_secs(2)));
        assert_eq!(c.session_timeout(), Duration::from_secs(6));
        assert_eq!(c.connect_timeout(), Duration::from_millis(500));
    }
    assert!(ZkConfig::from_url("zk://h?timeout=2s&timeout_ms=2000").is_err());
}

#[test]
fn prefix_and_its_legacy_name_root() {
    let c = ZkConfig::from_url("zk://h/c?prefix=locks/").unwrap();
    assert_eq!(c.base_path(), "/c/locks");
    let c = ZkConfig::from_url("zk://h?root=/old").unwrap();
    assert_eq!(c.prefix(), "/old");
    let err = ZkConfig::from_url("zk://h?root=/a&prefix=/b").unwrap_err();
    assert!(err.to_string().contains("give one"), "{err}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = ZkConfig::from_url("zk://u:hunter2@h?session_timeout=2s&colour=ON").unwrap_err();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("`colour`"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn bad_urls_are_invalid_config_without_the_password() {
    for url in [
        "zk://",
        "zk://h:notaport",
        "zk://h:1?session_timeout_ms=abc&password=hunter2",
        "zk://h:1?session_timeout=0s&password=hunter2&user=u",
        "zk://h:1?password=hunter2",
        "zk://h:1?user=a&password=hunter2&bogus=1",
        "zk://u:hunter2@h:1?user=u&password=hunter2",
        "zk://u@h:1",
        "zk://u%3Ax:hunter2@h:1",
        "zk://u:hunter2@h:1,v:hunter2@h2:2",
        "zk://h:1/a//b?password=hunter2&user=u",
        "zk://h:1?root=/&user=u&password=hunter2",
        "redis://h:1",
    ] {
        let err = ZkConfig::from_url(url).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{url}: {err}");
    }
}

#[test]
fn hand_built_settings_are_checked() {
    assert!(ZkConfig::new(["h:1"]).validate().is_ok());
    assert!(ZkConfig::new(["[::1]:1"]).validate().is_ok());
    for hosts in [
        vec![],
        vec!["h"],
        vec!["h:0"],
        vec!["::1:2181"],
        vec!["[::1]"],
    ] {
        assert!(
            ZkConfig::new(hosts.clone()).validate().is_err(),
            "{hosts:?}"
        );
    }
    let zero = ZkConfig::new(["h:1"]).with_timeout(Duration::ZERO);
    assert!(zero.validate().is_err());
    assert!(ZkConfig::new(["h:1"]).with_prefix("/").is_err());
}

#[test]
fn debug_never_shows_the_password() {
    for url in ["zk://h:1?user=u&password=hunter2", "zk://u:hunter2@h:1"] {
        let c = ZkConfig::from_url(url).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
    }
}

#[test]
fn tls_parameters_turn_tls_on_and_need_a_ca() {
    let c = ZkConfig::from_url("zk://h:1?ca=/ca.pem&cert=/c.pem&key=/c.key").unwrap();
    let want = TlsSettings::new()
        .with_ca("/ca.pem")
        .with_client_cert("/c.pem", "/c.key");
    assert_eq!(c.tls(), Some(&want));
    let by_hand = ZkConfig::new(["h:1"]).with_tls(want.clone());
    assert_eq!(by_hand.tls(), Some(&want));
    assert!(ZkConfig::from_url("zk://h:1").unwrap().tls().is_none());
    for url in [
        "zk://u:hunter2@h:1?tls=true",
        "zk://u:hunter2@h:1?ca=/ca.pem&cert=/c.pem",
        "zk://u:hunter2@h:1?ca=/ca.pem&danger_accept_invalid_certs=true",
        "zk://u:hunter2@h:1?danger_accept_invalid_certs=true",
    ] {
        let err = ZkConfig::from_url(url).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{url}: {err}");
    }
}
