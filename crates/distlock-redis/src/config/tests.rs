use super::*;

#[test]
fn single_instance_url_with_credentials_and_db() {
    let c = RedisConfig::from_url("redis://locker:p%40ss@127.0.0.1:16384/3").unwrap();
    assert!(!c.redlock);
    let i = &c.instances[0];
    assert_eq!((i.host.as_str(), i.port, i.db), ("127.0.0.1", 16384, 3));
    assert_eq!(i.credentials.username.as_deref(), Some("locker"));
    assert_eq!(i.credentials.password.as_deref(), Some("p@ss"));
    assert!(!format!("{c:?}").contains("p@ss"));
}

#[test]
fn rediss_turns_on_tls() {
    let c = RedisConfig::from_url("rediss://:pw@example.com").unwrap();
    assert_eq!(c.instances[0].tls, Some(TlsSettings::new()));
    assert_eq!(c.instances[0].port, 6379);
    assert_eq!(c.instances[0].credentials.username, None);
    assert_eq!(c.instances[0].credentials.password.as_deref(), Some("pw"));
    let err = RedisConfig::from_url("rediss://:pw@example.com?tls=false").unwrap_err();
    assert!(err.to_string().contains("tls=false"), "{err}");
}

#[test]
fn redlock_instances_inherit_the_first_credentials_unless_given_their_own() {
    let c = RedisConfig::from_url("redlock://u:a@h1:1,h2:2,v:b@h3:3,[::1]:4/1?prefix=x:").unwrap();
    assert!(c.redlock);
    assert_eq!(c.instances.len(), 4);
    assert_eq!(c.instances[1].credentials.password.as_deref(), Some("a"));
    assert_eq!(c.instances[2].credentials.username.as_deref(), Some("v"));
    assert_eq!(c.instances[3].host, "::1");
    assert!(c.instances.iter().all(|i| i.db == 1));
    assert_eq!(c.prefix, "x:");
}

#[test]
fn bad_urls_are_invalid_config_without_the_password() {
    for url in [
        "redis://:secret@h:notaport",
        "redis://:secret@h:1/x",
        "redis://:secret@h:1?prefix=%7Bx",
        "redis://:secret@h:1?bogus=1",
        "redis://:secret@",
        "redis://:secret@h1:1,h2:2",
        "redlock://:secret@h:1,,h:2",
        "redis://:secret@h:1?queue_ttl=1ms",
        "memcached://:secret@h:1",
    ] {
        let err = RedisConfig::from_url(url).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

#[test]
fn a_host_without_a_port_gets_the_default_port() {
    let c = RedisConfig::from_url("redlock://h1,h2:7000,h3").unwrap();
    let ports: Vec<u16> = c.instances.iter().map(|i| i.port).collect();
    assert_eq!(ports, [6379, 7000, 6379]);
}

#[test]
fn ipv6_hosts_go_in_brackets() {
    let c = RedisConfig::from_url("redis://[::1]:16379").unwrap();
    assert_eq!(
        (c.instances[0].host.as_str(), c.instances[0].port),
        ("::1", 16379)
    );
    assert_eq!(c.instances[0].label(), "[::1]:16379");
    let c = RedisConfig::from_url("redis://[fe80::1]").unwrap();
    assert_eq!(c.instances[0].port, 6379);
}

#[test]
fn durations_take_units_and_the_legacy_millisecond_keys() {
    let modern = RedisConfig::from_url("redis://h?timeout=2s&queue_ttl=500ms").unwrap();
    let legacy = RedisConfig::from_url("redis://h?timeout_ms=2000&queue_ttl_ms=500").unwrap();
    assert_eq!(modern.timeout, Duration::from_secs(2));
    assert_eq!(modern.timeout, legacy.timeout);
    assert_eq!(modern.waiter_timeout, legacy.waiter_timeout);
    let c = RedisConfig::from_url(
        "redlock://h1,h2,h3?min_instance_timeout=20ms&max_instance_timeout_ms=900",
    )
    .unwrap();
    assert_eq!(c.min_instance_timeout, Duration::from_millis(20));
    assert_eq!(c.max_instance_timeout, Duration::from_millis(900));
    assert!(RedisConfig::from_url("redis://h?timeout=2s&timeout_ms=2000").is_err());
}

#[test]
fn booleans_accept_any_case() {
    let c = RedisConfig::from_url("redlock://h1,h2,h3?tls=ON").unwrap();
    assert!(c.instances.iter().all(|i| i.tls.is_some()));
    let c = RedisConfig::from_url("redis://h?fair=No").unwrap();
    assert!(!c.fair);
    assert!(RedisConfig::from_url("redis://h?fair=maybe").is_err());
}

#[test]
fn redlock_queues_its_waiters_unless_told_not_to() {
    assert!(RedisConfig::from_url("redlock://h1,h2,h3").unwrap().fair);
    let unfair = RedisConfig::from_url("redlock://h1,h2,h3?fair=false").unwrap();
    assert!(!unfair.fair && unfair.validate().is_ok());
}

#[test]
fn unknown_parameters_are_refused_by_name() {
    let err = RedisConfig::from_url("redis://:secret@h?prefix=a:&colour=blue").unwrap_err();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("`colour`"), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn userinfo_is_accepted_and_percent_decoded() {
    let c = RedisConfig::from_url("redis://app%2Fuser:p%3Aw%2C@h:1").unwrap();
    let creds = &c.instances[0].credentials;
    assert_eq!(creds.username.as_deref(), Some("app/user"));
    assert_eq!(creds.password.as_deref(), Some("p:w,"));
    let c = RedisConfig::from_url("redis://only-user@h:1").unwrap();
    assert_eq!(
        c.instances[0].credentials.username.as_deref(),
        Some("only-user")
    );
    assert_eq!(c.instances[0].credentials.password, None);
}

#[test]
fn tls_files_apply_to_every_instance() {
    let c = RedisConfig::from_url(
        "redlock://:pw@h1,h2,h3?tls=true&ca=/tls/ca.pem&cert=/tls/c.pem&key=/tls/c.key",
    )
    .unwrap();
    let want = TlsSettings::new()
        .with_ca("/tls/ca.pem")
        .with_client_cert("/tls/c.pem", "/tls/c.key");
    assert!(c.instances.iter().all(|i| i.tls.as_ref() == Some(&want)));
    // `ca` alone turns TLS on; so does `rediss://`.
    let c = RedisConfig::from_url("redis://h?cacert=/tls/ca.pem").unwrap();
    assert_eq!(
        c.instances[0].tls,
        Some(TlsSettings::new().with_ca("/tls/ca.pem"))
    );
    let c = RedisConfig::from_url("rediss://h?danger_accept_invalid_certs=true").unwrap();
    assert!(c.instances[0].tls.as_ref().unwrap().accepts_invalid_certs());
    let by_hand = RedisConfig::single(InstanceConfig::new("h", 6379)).with_tls(want.clone());
    assert_eq!(by_hand.instances[0].tls, Some(want));
}

#[test]
fn contradictory_tls_settings_are_refused_without_the_password() {
    for url in [
        "rediss://:secret@h?cert=/c.pem",
        "redis://:secret@h?tls=false&ca=/ca.pem",
        "rediss://:secret@h?ca=/ca.pem&danger_accept_invalid_certs=true",
        "redis://:secret@h?tls=maybe",
    ] {
        let err = RedisConfig::from_url(url).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    let both = TlsSettings::new()
        .with_ca("/ca.pem")
        .danger_accept_invalid_certs();
    let config = RedisConfig::single(InstanceConfig::new("h", 6379)).with_tls(both);
    assert!(config.validate().is_err());
}

#[test]
fn replicas_and_their_timeout_come_from_the_url_or_by_hand() {
    let c = RedisConfig::from_url("redis://h?replicas=2&replica_timeout=250ms").unwrap();
    assert_eq!(
        (c.replicas, c.replica_timeout),
        (2, Duration::from_millis(250))
    );
    let d = RedisConfig::from_url("redis://h").unwrap();
    assert_eq!(
        (d.replicas, d.replica_timeout),
        (0, DEFAULT_REPLICA_TIMEOUT)
    );
    let by_hand = RedisConfig::default()
        .with_replicas(2)
        .with_replica_timeout(Duration::from_millis(250));
    assert_eq!(
        (by_hand.replicas, by_hand.replica_timeout),
        (c.replicas, c.replica_timeout)
    );
    for bad in [
        "redis://h?replicas=-1",
        "redis://h?replicas=two",
        "redis://h?replicas=1&replica_timeout=0ms",
        "redlock://h1,h2,h3?replicas=1",
    ] {
        let err = RedisConfig::from_url(bad).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidConfig { .. }),
            "{bad}: {err:?}"
        );
    }
}
