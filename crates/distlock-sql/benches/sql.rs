//! What the SQL backend costs over the statements it runs.
//!
//! For each database available (SQLite always; PostgreSQL and MariaDB at
//! `DISTLOCK_POSTGRES_URL` / `DISTLOCK_MYSQL_URL`, or the defaults of
//! `scripts/services.sh`, skipped with a note when unreachable):
//!
//! - uncontended acquire + release through the backend, against the *raw
//!   floor*: the same acquire and release statements issued directly through
//!   sqlx on the same pool, with nothing around them. The ratio is the
//!   backend's overhead.
//! - contended throughput: 8 clients (each its own backend and pool)
//!   acquiring and releasing one name for a few seconds, waiting as needed.
//!
//! ```text
//! cargo bench -p distlock-sql --all-features
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockName, OwnerToken, Wait};
use distlock_sql::SqlBackend;

/// Rounds of interleaved measurement.
const ROUNDS: usize = 6;
const CONTENDED_CLIENTS: usize = 8;
const CONTENDED_FOR: Duration = Duration::from_secs(4);
const TTL: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    println!(
        "distlock-sql benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("| database | floor (acquire+release) | backend | ratio | contended, 8 clients |");
    println!("|---|---|---|---|---|");

    let dir = std::env::temp_dir().join(format!("distlock-sql-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
    bench("SQLite (file, WAL, synchronous=FULL)", &sqlite, 150).await;

    #[cfg(feature = "postgres")]
    {
        let url = std::env::var("DISTLOCK_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://distlock:distlock-pw@127.0.0.1:15432/distlock".into());
        bench("PostgreSQL", &url, 1000).await;
    }
    #[cfg(feature = "mysql")]
    {
        let url = std::env::var("DISTLOCK_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://distlock:distlock-pw@127.0.0.1:13306/distlock".into());
        bench("MariaDB", &url, 1000).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn bench(label: &str, url: &str, per_round: usize) {
    let backend = match SqlBackend::connect(url).await {
        Ok(b) => b,
        Err(e) => {
            println!("| {label} | skipped: {e} | | | |");
            return;
        }
    };
    let raw = Raw::new(&backend);
    let name = LockName::new(format!("bench/uncontended/{}", std::process::id()))
        .unwrap_or_else(|e| panic!("{e}"));
    let key = name.as_str().to_string();
    let opts = AcquireOptions::try_once(TTL);

    // Warm up both paths (connections, prepared statements).
    for _ in 0..per_round / 5 + 1 {
        raw.pair(&key).await;
        ours(&backend, &name, &opts).await;
    }
    // Alternate one floor pair and one backend pair, swapping which goes
    // first each round, so load from elsewhere on the machine hits both.
    let (mut floor, mut mine) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        for _ in 0..per_round {
            let t = Instant::now();
            if round % 2 == 0 {
                raw.pair(&key).await;
                let mid = Instant::now();
                ours(&backend, &name, &opts).await;
                floor += mid - t;
                mine += mid.elapsed();
            } else {
                ours(&backend, &name, &opts).await;
                let mid = Instant::now();
                raw.pair(&key).await;
                mine += mid - t;
                floor += mid.elapsed();
            }
        }
    }
    let n = (ROUNDS * per_round) as u32;
    let (floor, mine) = (floor / n, mine / n);
    let ratio = mine.as_secs_f64() / floor.as_secs_f64();
    let contended = contended(url).await;
    println!(
        "| {label} | {floor:.1?} | {mine:.1?} | {ratio:.2}x | {contended:.0} acquisitions/s |"
    );
}

/// One acquire + release through the backend.
async fn ours(backend: &SqlBackend, name: &LockName, opts: &AcquireOptions) {
    let lease = backend
        .acquire(name, opts)
        .await
        .unwrap_or_else(|e| panic!("acquire: {e}"))
        .unwrap_or_else(|| panic!("uncontended lock was held"));
    backend
        .release(&lease)
        .await
        .unwrap_or_else(|e| panic!("release: {e}"));
}

/// 8 clients, one name, acquire (waiting) + release for a fixed time.
async fn contended(url: &str) -> f64 {
    let name = LockName::new(format!("bench/contended/{}", std::process::id()))
        .unwrap_or_else(|e| panic!("{e}"));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + CONTENDED_FOR;
    let mut tasks = Vec::new();
    for _ in 0..CONTENDED_CLIENTS {
        let backend = SqlBackend::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (name, count) = (name.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let opts = AcquireOptions::new(TTL).with_wait(Wait::For(Duration::from_secs(30)));
            while Instant::now() < stop {
                if let Some(lease) = backend
                    .acquire(&name, &opts)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    backend
                        .release(&lease)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The raw floor: the backend's own statements, straight through sqlx.
enum Raw {
    Sqlite(distlock_sql::sqlx::SqlitePool, [String; 2]),
    #[cfg(feature = "postgres")]
    Postgres(distlock_sql::sqlx::PgPool, [String; 2]),
    #[cfg(feature = "mysql")]
    MySql(distlock_sql::sqlx::MySqlPool, [String; 2]),
}

fn statements(acquire: &str, release: &str, table: &str) -> [String; 2] {
    [
        acquire.replace("{table}", table),
        release.replace("{table}", table),
    ]
}

impl Raw {
    fn new(backend: &SqlBackend) -> Raw {
        let table = backend.config().table();
        if let Some(pool) = backend.sqlite_pool() {
            return Raw::Sqlite(
                pool.clone(),
                statements(
                    include_str!("../src/sql/sqlite/acquire.sql"),
                    include_str!("../src/sql/sqlite/release.sql"),
                    table,
                ),
            );
        }
        #[cfg(feature = "postgres")]
        if let Some(pool) = backend.postgres_pool() {
            return Raw::Postgres(
                pool.clone(),
                statements(
                    include_str!("../src/sql/postgres/acquire.sql"),
                    include_str!("../src/sql/postgres/release.sql"),
                    table,
                ),
            );
        }
        #[cfg(feature = "mysql")]
        if let Some(pool) = backend.mysql_pool() {
            return Raw::MySql(
                pool.clone(),
                statements(
                    include_str!("../src/sql/mysql/acquire.sql"),
                    include_str!("../src/sql/mysql/release.sql"),
                    table,
                ),
            );
        }
        panic!("no pool for {backend:?}")
    }

    /// The acquire statement, then the release statement, each checked.
    async fn pair(&self, key: &str) {
        use distlock_sql::sqlx::query;
        let owner = OwnerToken::random().to_hex();
        let ttl_ms = TTL.as_millis() as i64;
        let ttl_us = TTL.as_micros() as i64;
        let ok = match self {
            Raw::Sqlite(pool, [acquire, release]) => {
                let got = query(acquire)
                    .bind(key)
                    .bind(&owner)
                    .bind(ttl_ms)
                    .fetch_optional(pool)
                    .await;
                let freed = query(release).bind(key).bind(&owner).execute(pool).await;
                matches!(got, Ok(Some(_))) && matches!(freed, Ok(r) if r.rows_affected() == 1)
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres(pool, [acquire, release]) => {
                let got = query(acquire)
                    .bind(key)
                    .bind(&owner)
                    .bind(ttl_us)
                    .fetch_optional(pool)
                    .await;
                let channel = "distlock_locks";
                let freed = query(release)
                    .bind(key)
                    .bind(&owner)
                    .bind(channel)
                    .fetch_optional(pool)
                    .await;
                matches!(got, Ok(Some(_))) && matches!(freed, Ok(Some(_)))
            }
            #[cfg(feature = "mysql")]
            Raw::MySql(pool, [acquire, release]) => {
                let got = query(acquire)
                    .bind(key.as_bytes())
                    .bind(owner.as_bytes())
                    .bind(ttl_us)
                    .bind(owner.as_bytes())
                    .bind(ttl_us)
                    .execute(pool)
                    .await;
                let freed = query(release)
                    .bind(key.as_bytes())
                    .bind(owner.as_bytes())
                    .execute(pool)
                    .await;
                matches!(got, Ok(r) if r.last_insert_id() > 0)
                    && matches!(freed, Ok(r) if r.rows_affected() == 1)
            }
        };
        assert!(ok, "raw statements failed");
        let _ = ttl_us;
        let _ = ttl_ms;
    }
}
