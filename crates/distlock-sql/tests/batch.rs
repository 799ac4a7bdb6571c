//! Batched extension on every database: one statement per batch, however
//! large (10 000 leases and more), one answer per lease, and no lease the
//! database no longer holds for its owner comes back — released, taken
//! over, or merely expired.
//!
//! Statements are counted by the events sqlx logs for each one it runs
//! (target `sqlx::query`), picked out by the test's own table name.
// Some helpers serve only the tests of some database features.
#![allow(dead_code)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    async_trait, AcquireOptions, AcquireRequest, Capabilities, DistributedLock, Grant, Lease,
    LockBackend, LockName, LockStatus, Mode, Renewal,
};
use distlock_sql::{SqlBackend, MAX_BATCH};
use futures::StreamExt;

use common::connect;

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(300);

/// The ttl of the large batches' leases: taking 10 000 of them beside
/// other tests on a busy machine has taken over 30 s, and nothing
/// extends them meanwhile.
const MANY_TTL: Duration = Duration::from_secs(600);

fn name(test: &str, what: &str) -> LockName {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let unique = format!("batch/{test}/{}/{nanos}/{what}", std::process::id());
    LockName::new(unique).unwrap()
}

async fn take(backend: &SqlBackend, name: LockName, ttl: Duration) -> Lease {
    backend
        .acquire(&name, &AcquireOptions::try_once(ttl))
        .await
        .unwrap_or_else(|e| panic!("acquire {name}: {e}"))
        .unwrap_or_else(|| panic!("{name} was held"))
}

/// Waits until the database itself no longer counts `name` as held (its
/// ttl passed on the database clock).
async fn until_expired(backend: &SqlBackend, name: &LockName) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.status(name).await.unwrap().held {
        assert!(Instant::now() < deadline, "{name} never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Held leases are extended; released, taken-over and expired ones answer
/// `NotHeld`, each in its place; the expired one stays free.
async fn batch_answers_each_lease(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    assert!(a.capabilities().batch_extend, "{what} claims batch_extend");
    let held: Vec<Lease> =
        futures::future::join_all((0..3).map(|i| take(&a, name(what, &format!("held-{i}")), LONG)))
            .await;
    let released = take(&a, name(what, "released"), LONG).await;
    a.release(&released).await.unwrap();
    let expired = take(&a, name(what, "expired"), SHORT).await;
    let overtaken = take(&a, name(what, "overtaken"), SHORT).await;
    until_expired(&b, expired.name()).await;
    until_expired(&b, overtaken.name()).await;
    let successor = take(&b, overtaken.name().clone(), LONG).await;

    let batch = vec![
        held[0].clone(),
        expired.clone(),
        held[1].clone(),
        overtaken.clone(),
        released.clone(),
        held[0].clone(), // the same lease twice
        held[2].clone(),
    ];
    let answers = a.extend_many(&batch).await;
    assert_eq!(answers.len(), batch.len());
    for (i, (lease, answer)) in batch.iter().zip(&answers).enumerate() {
        let should_hold = held.iter().any(|h| h.name() == lease.name());
        match answer {
            Ok(got) => {
                assert!(should_hold, "{what}: answer {i} extended {}", lease.name());
                assert_eq!(got.name(), lease.name(), "{what}: answer {i} out of order");
                assert!(
                    got.valid_until() > lease.valid_until(),
                    "{what}: answer {i}"
                );
            }
            Err(e) => {
                assert!(!should_hold, "{what}: answer {i} for a held lease: {e}");
                assert!(e.is_not_held(), "{what}: answer {i} is not NotHeld: {e:?}");
            }
        }
    }

    // The database agrees: the held ones now run for their ttl again, the
    // expired one was not brought back, the successor still holds.
    for lease in &held {
        let status = b.status(lease.name()).await.unwrap();
        assert!(status.held, "{what}: {} lost", lease.name());
    }
    assert!(
        !b.status(expired.name()).await.unwrap().held,
        "{what}: revived"
    );
    assert!(
        a.extend(&expired, LONG).await.unwrap_err().is_not_held(),
        "{what}: a single extend revived the expired lease"
    );
    b.extend(&successor, LONG)
        .await
        .expect("the successor still holds");
    b.release(&successor).await.unwrap();
    for answer in answers.into_iter().flatten() {
        let _ = a.release(&answer).await;
    }
}

/// A batch of every mode: exclusive leases, readers and permits (some on
/// one name), held, released and expired — one answer each, in order; the
/// expired reader stays expired and its name goes to a writer.
async fn batch_of_every_mode_answers_each_lease(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    let o = |ttl| AcquireOptions::try_once(ttl);
    let two = Mode::Permit { limit: 2 };
    let in_mode = |name: LockName, mode: Mode, ttl: Duration| {
        let a = &a;
        async move {
            a.acquire_as(&name, mode, &o(ttl))
                .await
                .unwrap_or_else(|e| panic!("{mode} acquire of {name}: {e}"))
                .unwrap_or_else(|| panic!("{name} was held"))
        }
    };
    let shared = name(what, "shared");
    let permits = name(what, "permits");
    let held = [
        in_mode(name(what, "mutex"), Mode::Exclusive, LONG).await,
        in_mode(shared.clone(), Mode::Shared, LONG).await,
        in_mode(shared.clone(), Mode::Shared, LONG).await,
        in_mode(permits.clone(), two, LONG).await,
    ];
    let released = in_mode(permits.clone(), two, LONG).await;
    a.release(&released).await.unwrap();
    let expired = in_mode(name(what, "expired-reader"), Mode::Shared, SHORT).await;
    until_expired(&b, expired.name()).await;

    let batch = vec![
        held[1].clone(),
        expired.clone(),
        held[0].clone(),
        released.clone(),
        held[3].clone(),
        held[2].clone(),
    ];
    let answers = a.extend_many(&batch).await;
    let expect = [true, false, true, false, true, true];
    for (i, (lease, answer)) in batch.iter().zip(&answers).enumerate() {
        match answer {
            Ok(got) => {
                assert!(expect[i], "{what}: answer {i} extended {}", lease.name());
                assert_eq!(got.name(), lease.name(), "{what}: answer {i} out of order");
                assert_eq!(got.mode(), lease.mode(), "{what}: answer {i}");
                assert!(
                    got.valid_until() > lease.valid_until(),
                    "{what}: answer {i}"
                );
            }
            Err(e) => {
                assert!(!expect[i], "{what}: answer {i} for a held lease: {e}");
                assert!(e.is_not_held(), "{what}: answer {i} is not NotHeld: {e:?}");
            }
        }
    }
    let writer = b
        .acquire(expired.name(), &o(LONG))
        .await
        .unwrap()
        .expect("the expired reader's name is free for a writer");
    assert!(
        a.extend(&expired, LONG).await.unwrap_err().is_not_held(),
        "{what}: a single extend revived the expired reader"
    );
    b.release(&writer).await.unwrap();
    for lease in answers.into_iter().flatten() {
        a.release(&lease).await.unwrap();
    }
}

/// How many leases the large batch carries.
const MANY: usize = 10_000;

/// Leases of the large batch that are released before it is extended.
const RELEASED: [usize; 5] = [2, 1234, 5000, 8765, MANY - 1];

/// 10 000 leases extended in one call take one statement (MySQL/MariaDB: a
/// second one reads which were extended when some were not), and each
/// gets its own answer; through a backend that says it takes at most 128
/// per batch, the count shows the core's split into many statements.
async fn ten_thousand_leases_extend_in_one_statement(what: &str, url: &str) {
    const { assert!(MAX_BATCH >= MANY, "a batch of MANY is split") };
    let table = Table::new("batch_many");
    let backend = connect(what, &table.url(url)).await;
    let leases = take_many(&backend, what, MANY).await;
    for &i in &RELEASED {
        backend.release(&leases[i]).await.unwrap();
    }

    let (answers, statements, took) = table.counting(backend.extend_many(&leases)).await;
    let lost_extra = if what == "mariadb" { 1 } else { 0 };
    assert_eq!(
        statements,
        1 + lost_extra,
        "{what}: statements for {MANY} leases, some lost"
    );
    assert_eq!(answers.len(), MANY);
    let mut held = Vec::with_capacity(MANY);
    for (i, (lease, answer)) in leases.iter().zip(answers).enumerate() {
        match answer {
            Ok(got) if !RELEASED.contains(&i) => {
                assert_eq!(got.name(), lease.name(), "{what}: answer {i} out of order");
                assert!(
                    got.valid_until() > lease.valid_until(),
                    "{what}: answer {i}"
                );
                held.push(got);
            }
            Ok(_) => panic!("{what}: the released lease {i} was extended"),
            Err(e) if RELEASED.contains(&i) => {
                assert!(e.is_not_held(), "{what}: answer {i} is not NotHeld: {e:?}");
            }
            Err(e) => panic!("{what}: lease {i} not extended: {e}"),
        }
    }
    println!(
        "{what}: {MANY} leases ({} released) extended in {took:?}",
        RELEASED.len()
    );

    let (answers, statements, took) = table.counting(backend.extend_many(&held)).await;
    assert_eq!(
        statements,
        1,
        "{what}: statements for {} held leases",
        held.len()
    );
    assert!(
        answers.iter().all(Result::is_ok),
        "{what}: a held lease was not extended"
    );
    println!("{what}: {} held leases extended in {took:?}", held.len());

    // The count is not fooled: split by the core, the batch is many statements.
    let split = Arc::new(Limited::new(backend.clone(), 128));
    let (answers, statements, _) = table.counting(split.extend_many(&held)).await;
    assert!(
        answers.iter().all(Result::is_ok),
        "{what}: a split batch lost a lease"
    );
    assert!(
        statements >= held.len() / 128,
        "{what}: {statements} statements counted for a split batch"
    );
    common::drop_tables(&backend).await;
}

/// More leases than a backend takes in one batch: the core splits them,
/// each batch is one statement, and every lease is extended.
async fn batches_split_by_the_core_are_each_one_statement(what: &str, url: &str) {
    let table = Table::new("batch_split");
    let backend = connect(what, &table.url(url)).await;
    let limited = Arc::new(Limited::new(backend.clone(), 100));
    let count = 250;
    let leases = take_many(&backend, what, count).await;
    let (answers, statements, _) = table.counting(limited.extend_many(&leases)).await;
    assert_eq!(
        statements, 3,
        "{what}: one statement per batch of at most 100"
    );
    assert_eq!(answers.len(), count);
    for (lease, answer) in leases.iter().zip(answers) {
        let got = answer.unwrap_or_else(|e| panic!("{what}: {} not extended: {e}", lease.name()));
        assert_eq!(got.name(), lease.name());
    }
    common::drop_tables(&backend).await;
}

/// What the first names of a large batch end with: characters JSON
/// escapes, SQL quotes, and a name too long to be its own key.
const AWKWARD: [&str; 5] = [
    "q\"b\\s/\t\u{1}",
    "é✓ 日本",
    "'; DROP TABLE x; --",
    "`{}`",
    LONG_NAME,
];

/// A name longer than a key (255 bytes): stored under a hashed key.
const LONG_NAME: &str = concat!(
    "long-name-long-name-long-name-long-name-long-name-long-name-long-name-",
    "long-name-long-name-long-name-long-name-long-name-long-name-long-name-",
    "long-name-long-name-long-name-long-name-long-name-long-name-long-name-",
    "long-name-long-name-long-name-long-name-long-name-long-name-long-name-",
);

/// `count` exclusive leases on fresh names (the first ones awkward), taken
/// 64 at a time.
async fn take_many(backend: &SqlBackend, what: &str, count: usize) -> Vec<Lease> {
    let mut leases: Vec<(usize, Lease)> = futures::stream::iter(0..count)
        .map(|i| async move {
            let tail = AWKWARD.get(i).copied().unwrap_or_default();
            let lock = name(what, &format!("many-{i}{tail}"));
            (i, take(backend, lock, MANY_TTL).await)
        })
        .buffer_unordered(64)
        .collect()
        .await;
    leases.sort_by_key(|(i, _)| *i);
    leases.into_iter().map(|(_, lease)| lease).collect()
}

/// A test's own tables (named after the test and this process), and the
/// statements run on them.
struct Table {
    name: String,
}

impl Table {
    fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("{test}_{}_{nanos}", std::process::id());
        statements::watch(&name);
        Table { name }
    }

    /// `url` with this table.
    fn url(&self, url: &str) -> String {
        let joint = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joint}table={}", self.name)
    }

    /// Runs `work`: its output, the statements run on this table
    /// meanwhile, and how long it took.
    async fn counting<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> (T, usize, Duration) {
        let before = statements::count(&self.name);
        let started = Instant::now();
        let out = work.await;
        let took = started.elapsed();
        (out, statements::count(&self.name) - before, took)
    }
}

/// Counts the statements sqlx runs, by table: a subscriber of the events
/// it logs for each statement, installed once for this test binary.
mod statements {
    use std::fmt::Write;
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::{span, Event, Metadata, Subscriber};

    /// The tables counted, and how many statements mentioned each.
    static COUNTS: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());

    /// Counts the statements that mention `table` from now on.
    pub fn watch(table: &str) {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            tracing::subscriber::set_global_default(Counter)
                .expect("no other subscriber in this test binary");
        });
        COUNTS.lock().unwrap().push((table.to_string(), 0));
    }

    /// How many statements so far mentioned `table`.
    pub fn count(table: &str) -> usize {
        let counts = COUNTS.lock().unwrap();
        counts
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n)
    }

    struct Counter;

    impl Subscriber for Counter {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == "sqlx::query"
        }

        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }

        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut text = Text(String::new());
            event.record(&mut text);
            for (table, n) in COUNTS.lock().unwrap().iter_mut() {
                if text.0.contains(table.as_str()) {
                    *n += 1;
                }
            }
        }

        fn enter(&self, _: &span::Id) {}

        fn exit(&self, _: &span::Id) {}
    }

    /// Every field of an event, as text.
    struct Text(String);

    impl Visit for Text {
        fn record_str(&mut self, _: &Field, value: &str) {
            self.0.push_str(value);
        }

        fn record_debug(&mut self, _: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// The SQL backend as a backend that takes at most `limit` leases per
/// batch: what the SQL backend did before its batches carried any number.
#[derive(Debug)]
struct Limited {
    inner: SqlBackend,
    limit: usize,
}

impl Limited {
    fn new(inner: SqlBackend, limit: usize) -> Self {
        Limited { inner, limit }
    }
}

#[async_trait]
impl LockBackend for Limited {
    fn kind(&self) -> &'static str {
        LockBackend::kind(&self.inner)
    }

    fn claims(&self) -> Capabilities {
        LockBackend::claims(&self.inner)
    }

    async fn grant(&self, request: &AcquireRequest) -> distlock_core::Result<Option<Grant>> {
        self.inner.grant(request).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> distlock_core::Result<Renewal> {
        self.inner.renew(lease, ttl).await
    }

    async fn renew_batch(
        &self,
        batch: &[(Lease, Duration)],
    ) -> Vec<distlock_core::Result<Renewal>> {
        self.inner.renew_batch(batch).await
    }

    fn max_batch(&self) -> usize {
        self.limit
    }

    async fn revoke(&self, lease: &Lease) -> distlock_core::Result<()> {
        self.inner.revoke(lease).await
    }

    async fn inspect(&self, name: &LockName) -> distlock_core::Result<LockStatus> {
        self.inner.inspect(name).await
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::common::SqliteFile;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_answers_each_lease() {
        let file = SqliteFile::new("batch");
        super::batch_answers_each_lease("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_of_every_mode_answers_each_lease() {
        let file = SqliteFile::new("batch-modes");
        super::batch_of_every_mode_answers_each_lease("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_split_by_the_core_are_each_one_statement() {
        let file = SqliteFile::new("batch-split");
        super::batches_split_by_the_core_are_each_one_statement("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_thousand_leases_extend_in_one_statement() {
        let file = SqliteFile::new("batch-many");
        super::ten_thousand_leases_extend_in_one_statement("sqlite", &file.url).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_answers_each_lease() {
        super::batch_answers_each_lease("postgres", &super::common::postgres_table_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_of_every_mode_answers_each_lease() {
        let url = super::common::postgres_table_url();
        super::batch_of_every_mode_answers_each_lease("postgres", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_split_by_the_core_are_each_one_statement() {
        let url = super::common::postgres_table_url();
        super::batches_split_by_the_core_are_each_one_statement("postgres", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_thousand_leases_extend_in_one_statement() {
        let url = super::common::postgres_table_url();
        super::ten_thousand_leases_extend_in_one_statement("postgres", &url).await;
    }
}

#[cfg(feature = "mysql")]
mod mariadb {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_answers_each_lease() {
        super::batch_answers_each_lease("mariadb", &super::common::mysql_table_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_of_every_mode_answers_each_lease() {
        let url = super::common::mysql_table_url();
        super::batch_of_every_mode_answers_each_lease("mariadb", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_split_by_the_core_are_each_one_statement() {
        let url = super::common::mysql_table_url();
        super::batches_split_by_the_core_are_each_one_statement("mariadb", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_thousand_leases_extend_in_one_statement() {
        let url = super::common::mysql_table_url();
        super::ten_thousand_leases_extend_in_one_statement("mariadb", &url).await;
    }
}
