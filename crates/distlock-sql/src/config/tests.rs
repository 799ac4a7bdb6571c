//! The URL grammar as the SQL backend reads it.

use super::*;

fn reason(url: &str) -> String {
    match SqlConfig::from_url(url) {
        Err(LockError::InvalidConfig { reason }) => reason,
        other => panic!("{url}: expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn table_names_are_plain_identifiers() {
    for ok in ["distlock_locks", "_x", "A1", &"a".repeat(55)] {
        assert!(validate_table(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "1a",
        "a-b",
        "a b",
        "a\"b",
        "a;drop",
        // `<table>_holders` would pass PostgreSQL's 63 bytes.
        &"a".repeat(56),
        "ä",
    ] {
        assert!(validate_table(bad).is_err(), "{bad}");
    }
}

#[test]
fn distlock_parameters_are_taken_out_of_the_driver_url() {
    let c = SqlConfig::from_url(
        "postgres://u:secret@h:5432/db?sslmode=disable&table=t1&pool_size=2&timeout_ms=250&create_table=false",
    )
    .unwrap();
    assert_eq!(c.table(), "t1");
    assert_eq!(c.pool_size(), 2);
    assert_eq!(c.timeout(), Duration::from_millis(250));
    assert_eq!(c.connect_timeout(), Duration::from_millis(250));
    assert!(!c.creates_table());
    assert_eq!(
        c.driver_url(),
        "postgres://u:secret@h:5432/db?sslmode=disable"
    );
    assert!(!format!("{c:?}").contains("secret"));
}

#[test]
fn mariadb_scheme_maps_to_the_mysql_driver() {
    let c = SqlConfig::from_url("mariadb://u@h/db").unwrap();
    assert_eq!(c.database(), Database::MySql);
    assert_eq!(c.driver_url(), "mysql://u@h:3306/db");
}

#[test]
fn default_ports_are_filled_in() {
    let c = SqlConfig::from_url("postgresql://u:p@db.example/locks").unwrap();
    assert_eq!(c.driver_url(), "postgres://u:p@db.example:5432/locks");
    let c = SqlConfig::from_url("mysql://db.example").unwrap();
    assert_eq!(c.driver_url(), "mysql://db.example:3306");
}

#[test]
fn ipv6_hosts_keep_their_brackets() {
    let c = SqlConfig::from_url("postgres://u:p@[::1]/db").unwrap();
    assert_eq!(c.driver_url(), "postgres://u:p@[::1]:5432/db");
    let c = SqlConfig::from_url("mysql://[fe80::2]:13306/db").unwrap();
    assert_eq!(c.driver_url(), "mysql://[fe80::2]:13306/db");
}

#[test]
fn timeout_in_both_spellings_is_the_same() {
    let modern = SqlConfig::from_url("postgres://h/db?timeout=2s").unwrap();
    let legacy = SqlConfig::from_url("postgres://h/db?timeout_ms=2000").unwrap();
    assert_eq!(modern.timeout(), Duration::from_secs(2));
    assert_eq!(modern.timeout(), legacy.timeout());
    let both = reason("postgres://h/db?timeout=2s&timeout_ms=2000");
    assert!(both.contains("timeout"), "{both}");
    let zero = reason("sqlite://x.db?timeout=0s");
    assert!(zero.contains("longer than zero"), "{zero}");
}

#[test]
fn connect_timeout_is_read_for_servers() {
    let c = SqlConfig::from_url("mysql://h/db?connect_timeout=750ms&timeout=3s").unwrap();
    assert_eq!(c.connect_timeout(), Duration::from_millis(750));
    assert_eq!(c.timeout(), Duration::from_secs(3));
    let c = SqlConfig::from_url("postgres://h/db?connect_timeout_ms=1500").unwrap();
    assert_eq!(c.connect_timeout(), Duration::from_millis(1500));
}

#[test]
fn booleans_take_any_spelling() {
    let c = SqlConfig::from_url("sqlite://x.db?create_table=OFF").unwrap();
    assert!(!c.creates_table());
    let c = SqlConfig::from_url("sqlite://x.db?create_table=ON").unwrap();
    assert!(c.creates_table());
    let bad = reason("sqlite://x.db?create_table=maybe");
    assert!(bad.contains("create_table"), "{bad}");
}

#[test]
fn unknown_parameters_are_refused_by_name() {
    let bad = reason("postgres://u:secret@h/db?colour=red&sslmode=disable");
    assert!(bad.contains("`colour`"), "{bad}");
    assert!(!bad.contains("secret"), "{bad}");
    // SQLite has no connection to establish.
    let bad = reason("sqlite://x.db?connect_timeout=1s");
    assert!(bad.contains("`connect_timeout`"), "{bad}");
    // The driver's parameters of another database are not taken either.
    let bad = reason("sqlite://x.db?sslmode=disable");
    assert!(bad.contains("`sslmode`"), "{bad}");
}

#[test]
fn userinfo_is_decoded_and_re_encoded_for_the_driver() {
    let c = SqlConfig::from_url("postgres://app%20user:p%40ss%2Cw@h:1/my%20db").unwrap();
    assert_eq!(
        c.driver_url(),
        "postgres://app%20user:p%40ss%2Cw@h:1/my%20db"
    );
    let c = SqlConfig::from_url("mysql://app@h/db").unwrap();
    assert_eq!(c.driver_url(), "mysql://app@h:3306/db");
    assert!(!format!("{:?}", SqlConfig::from_url("mysql://a:pw1@h/db").unwrap()).contains("pw1"));
}

#[test]
fn one_server_only() {
    let bad = reason("postgres://h1,h2/db");
    assert!(bad.contains("one server"), "{bad}");
}

#[test]
fn sqlite_paths_and_memory() {
    let c = SqlConfig::from_url("sqlite://target/locks.db?mode=rwc").unwrap();
    assert_eq!(c.driver_url(), "sqlite://target%2Flocks.db?mode=rwc");
    assert!(!c.in_memory());
    let c = SqlConfig::from_url("sqlite:///abs/my%20locks.db").unwrap();
    assert_eq!(c.driver_url(), "sqlite://%2Fabs%2Fmy%20locks.db");
    for memory in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://x?mode=memory",
    ] {
        assert!(SqlConfig::from_url(memory).unwrap().in_memory(), "{memory}");
    }
    assert_eq!(
        SqlConfig::from_url("sqlite::memory:").unwrap().driver_url(),
        "sqlite://:memory:"
    );
}

#[test]
fn setters_are_bounded() {
    let c = SqlConfig::from_url("sqlite://x.db")
        .unwrap()
        .with_pool_size(0)
        .with_timeout(Duration::ZERO)
        .with_connect_timeout(Duration::from_secs(9));
    assert_eq!(c.pool_size(), 1);
    assert_eq!(c.timeout(), Duration::from_millis(1));
    assert_eq!(c.connect_timeout(), Duration::from_secs(9));
    assert!(c.clone().with_table("no good").is_err());
    assert_eq!(c.with_table("t2").unwrap().table(), "t2");
}

#[test]
fn the_strategy_defaults_to_session_where_the_database_has_session_locks() {
    let pg = SqlConfig::from_url("postgres://u:p@h/db").unwrap();
    assert_eq!(pg.strategy(), Strategy::Session);
    let my = SqlConfig::from_url("mariadb://u@h/db").unwrap();
    assert_eq!(my.strategy(), Strategy::Session);
    let lite = SqlConfig::from_url("sqlite://x.db").unwrap();
    assert_eq!(lite.strategy(), Strategy::Table);
}

#[test]
fn the_strategy_is_read_from_the_url_and_never_reaches_the_driver() {
    let c = SqlConfig::from_url("postgres://u:p@h/db?strategy=table&sslmode=disable").unwrap();
    assert_eq!(c.strategy(), Strategy::Table);
    assert_eq!(c.driver_url(), "postgres://u:p@h:5432/db?sslmode=disable");
    let c = SqlConfig::from_url("mysql://h/db?strategy=SESSION").unwrap();
    assert_eq!(c.strategy(), Strategy::Session);
    let c = SqlConfig::from_url("sqlite://x.db?strategy=table").unwrap();
    assert_eq!(c.strategy(), Strategy::Table);
}

#[test]
fn sqlite_refuses_the_session_strategy() {
    let bad = reason("sqlite://x.db?strategy=session");
    assert!(bad.contains("`strategy=session`"), "{bad}");
    assert!(bad.contains("SQLite"), "{bad}");
    let c = SqlConfig::from_url("sqlite::memory:").unwrap();
    match c.with_strategy(Strategy::Session) {
        Err(LockError::InvalidConfig { reason }) => assert!(reason.contains("SQLite"), "{reason}"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn an_unknown_strategy_is_refused_naming_the_parameter() {
    let bad = reason("postgres://u:secret@h/db?strategy=advisory");
    assert!(bad.contains("`strategy=advisory`"), "{bad}");
    assert!(bad.contains("session") && bad.contains("table"), "{bad}");
    assert!(!bad.contains("secret"), "{bad}");
}

#[test]
fn session_settings_are_read_and_bounded() {
    let c = SqlConfig::from_url("postgres://h/db?sessions=3&session_timeout=2s&session_ping=100ms")
        .unwrap();
    assert_eq!(c.sessions(), 3);
    assert_eq!(c.session_timeout(), Duration::from_secs(2));
    assert_eq!(c.session_ping(), Duration::from_millis(100));
    let d = SqlConfig::from_url("mysql://h/db").unwrap();
    assert_eq!(d.sessions(), 8);
    assert_eq!(d.session_timeout(), Duration::from_secs(5));
    assert_eq!(d.session_ping(), Duration::from_millis(250));
    // A short timeout shortens the default check to a quarter of it.
    let short = SqlConfig::from_url("postgres://h/db?session_timeout=1s").unwrap();
    assert_eq!(short.session_ping(), Duration::from_millis(250));
    for (url, param) in [
        ("postgres://h/db?sessions=0", "`sessions=0`"),
        ("postgres://h/db?session_timeout=500ms", "`session_timeout"),
        ("mysql://h/db?session_timeout=2h", "`session_timeout"),
        ("postgres://h/db?session_ping=2s", "`session_ping"),
        (
            "postgres://h/db?session_timeout=4s&session_ping=1001ms",
            "`session_ping",
        ),
    ] {
        let bad = reason(url);
        assert!(bad.contains(param), "{url}: {bad}");
    }
    // SQLite has no sessions: the parameters are unknown there.
    let bad = reason("sqlite://x.db?sessions=2");
    assert!(bad.contains("`sessions`"), "{bad}");
}

#[test]
fn session_setters_are_bounded() {
    let c = SqlConfig::from_url("postgres://h/db")
        .unwrap()
        .with_sessions(0)
        .with_session_timeout(Duration::from_millis(10))
        .with_session_ping(Duration::from_secs(60));
    assert_eq!(c.sessions(), 1);
    assert_eq!(c.session_timeout(), Duration::from_secs(1));
    assert_eq!(c.session_ping(), Duration::from_millis(250));
    let c = c.with_strategy(Strategy::Table).unwrap();
    assert_eq!(c.strategy(), Strategy::Table);
    assert!(format!("{c:?}").contains("Table"));
}

#[test]
fn the_waiter_timeout_is_read_and_bounded() {
    let c = SqlConfig::from_url("sqlite://x.db?waiter_timeout=100ms").unwrap();
    assert_eq!(c.waiter_timeout(), Duration::from_millis(100));
    let c = SqlConfig::from_url("mysql://u@h/db").unwrap();
    assert_eq!(c.waiter_timeout(), Duration::from_secs(1));
    assert!(reason("sqlite://x.db?waiter_timeout=5ms").contains("waiter_timeout"));
    assert!(c
        .clone()
        .with_waiter_timeout(Duration::from_millis(10))
        .is_err());
    let c = c.with_waiter_timeout(Duration::from_millis(200)).unwrap();
    assert_eq!(c.waiter_timeout(), Duration::from_millis(200));
}
