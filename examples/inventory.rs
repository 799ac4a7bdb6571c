//! Inventory that must not oversell: concurrent orders from several processes
//! against one stock count.
//!
//! ```text
//! cargo run --release --example inventory
//! cargo run --release --example inventory -- --backend redis://127.0.0.1:16379/0
//! ```
//!
//! A SKU starts with `--stock` units (default 100). `--workers` processes
//! (default 4) each take `--orders` orders (default 60) with `--handlers`
//! concurrent handlers (default 8): more orders than stock. Each order checks
//! the stock, does some async work (payment, say), then decrements the stock
//! and records the sale. Without a lock, two orders see the same last unit
//! and both sell it. With the lock, exactly `--stock` units are sold.
//!
//! The locked run also fences its writes: the stock row remembers the highest
//! fencing token that wrote it and refuses a lower one, so an order whose
//! holder stalled past its lease cannot write stale stock.
//!
//! Exits non-zero if the locked run oversold (or undersold while orders
//! remained).

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distlock::sql::sqlx::{self, sqlite::SqlitePool, Row};
use distlock::{AcquireOptions, LockClient, Wait};
use support::{flags, last_value, open_sqlite, run_self, target_file, Result};

const SKU: &str = "sku-42";

struct Settings {
    backend: String,
    store: String,
    stock: i64,
    workers: usize,
    handlers: usize,
    orders: usize,
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("inventory: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("inventory: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let f = flags(
        &args,
        &[
            "--backend",
            "--store",
            "--stock",
            "--workers",
            "--handlers",
            "--orders",
            "--worker",
            "--locked",
        ],
    )?;
    let store = f
        .get("--store")
        .cloned()
        .unwrap_or_else(|| target_file("inventory.db").display().to_string());
    let s = Settings {
        backend: f
            .get("--backend")
            .cloned()
            .unwrap_or_else(|| format!("sqlite://{}", target_file("inventory-locks.db").display())),
        store,
        stock: f.get("--stock").map_or(Ok(100), |v| v.parse())?,
        workers: f.get("--workers").map_or(Ok(4), |v| v.parse())?,
        handlers: f.get("--handlers").map_or(Ok(8), |v| v.parse())?,
        orders: f.get("--orders").map_or(Ok(60), |v| v.parse())?,
    };
    if let Some(id) = f.get("--worker") {
        let locked = f.get("--locked").is_some_and(|v| v == "true");
        worker(&s, id, locked).await?;
        return Ok(true);
    }
    parent(&s).await
}

async fn parent(s: &Settings) -> Result<bool> {
    let demand = s.workers * s.orders;
    println!(
        "inventory: {} units of {SKU}, {} processes × {} handlers placing {demand} orders; lock backend {}",
        s.stock,
        s.workers,
        s.handlers,
        distlock::redact_url(&s.backend)
    );
    drop(distlock::connect(&s.backend).await?);
    let pool = open_sqlite(std::path::Path::new(&s.store)).await?;
    create_tables(&pool).await?;
    let mut ok = true;
    for locked in [false, true] {
        reset(&pool, s.stock).await?;
        let args = (0..s.workers)
            .map(|id| {
                vec![
                    "--worker".into(),
                    id.to_string(),
                    "--locked".into(),
                    locked.to_string(),
                    "--backend".into(),
                    s.backend.clone(),
                    "--store".into(),
                    s.store.clone(),
                    "--handlers".into(),
                    s.handlers.to_string(),
                    "--orders".into(),
                    s.orders.to_string(),
                ]
            })
            .collect();
        let outputs = run_self(args).await?;
        let refused: u64 = outputs
            .iter()
            .filter_map(|o| last_value(o, "refused "))
            .map(|v| v.parse::<u64>())
            .sum::<std::result::Result<u64, _>>()?;
        let sold: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sales")
            .fetch_one(&pool)
            .await?
            .try_get("n")?;
        let left: i64 = sqlx::query("SELECT units FROM stock WHERE sku = ?")
            .bind(SKU)
            .fetch_one(&pool)
            .await?
            .try_get("units")?;
        let oversold = (sold - s.stock).max(0);
        let label = if locked {
            "with lock:"
        } else {
            "without lock:"
        };
        println!(
            "{label:<13} sold {sold} of {} units, stock left {left}, oversold {oversold}{}",
            s.stock,
            if locked {
                format!(", stale writes refused {refused}")
            } else {
                String::new()
            }
        );
        if locked {
            let expected = s.stock.min(demand as i64);
            ok = sold == expected && left == s.stock - expected;
        }
    }
    Ok(ok)
}

async fn worker(s: &Settings, id: &str, locked: bool) -> Result<()> {
    let pool = open_sqlite(std::path::Path::new(&s.store)).await?;
    let client = if locked {
        let backend = distlock::connect(&s.backend).await?;
        let options = AcquireOptions::new(Duration::from_secs(10))
            .with_wait(Wait::For(Duration::from_secs(60)));
        Some(LockClient::with_defaults(backend, options))
    } else {
        None
    };
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut handlers = Vec::new();
    for _ in 0..s.handlers {
        let (pool, client, next, refused, orders) = (
            pool.clone(),
            client.clone(),
            next.clone(),
            refused.clone(),
            s.orders,
        );
        let id = id.to_string();
        handlers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= orders {
                    break;
                }
                let order = format!("{id}-{n}");
                match &client {
                    None => {
                        place_order(&pool, &order, None).await?;
                    }
                    Some(client) => {
                        let accepted = client
                            .with_lock(format!("inventory/{SKU}"), |held| {
                                let (pool, order) = (pool.clone(), order.clone());
                                async move {
                                    place_order(&pool, &order, Some(held.fencing_token().get()))
                                        .await
                                }
                            })
                            .await??;
                        if accepted == Placed::Refused {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for h in handlers {
        h.await??;
    }
    println!("refused {}", refused.load(Ordering::Relaxed));
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Placed {
    Sold,
    OutOfStock,
    /// The fencing check refused a stale write.
    Refused,
}

/// Check the stock, "take payment", decrement and record the sale.
async fn place_order(pool: &SqlitePool, order: &str, fence: Option<u64>) -> Result<Placed> {
    let row = sqlx::query("SELECT units FROM stock WHERE sku = ?")
        .bind(SKU)
        .fetch_one(pool)
        .await?;
    let units: i64 = row.try_get("units")?;
    if units <= 0 {
        return Ok(Placed::OutOfStock);
    }
    // Payment and other work: any await lets another order read the same stock.
    tokio::time::sleep(Duration::from_micros(200)).await;
    let updated = match fence {
        // Write the count we read; refuse if a newer holder has written since.
        Some(token) => {
            sqlx::query("UPDATE stock SET units = ?, fence = ? WHERE sku = ? AND fence <= ?")
                .bind(units - 1)
                .bind(token as i64)
                .bind(SKU)
                .bind(token as i64)
                .execute(pool)
                .await?
                .rows_affected()
        }
        None => sqlx::query("UPDATE stock SET units = ? WHERE sku = ?")
            .bind(units - 1)
            .bind(SKU)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    if updated == 0 {
        return Ok(Placed::Refused);
    }
    sqlx::query("INSERT INTO sales (order_id) VALUES (?)")
        .bind(order)
        .execute(pool)
        .await?;
    Ok(Placed::Sold)
}

async fn create_tables(pool: &SqlitePool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units INTEGER NOT NULL, fence INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS sales (id INTEGER PRIMARY KEY, order_id TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn reset(pool: &SqlitePool, stock: i64) -> Result<()> {
    sqlx::query("DELETE FROM sales").execute(pool).await?;
    sqlx::query("INSERT OR REPLACE INTO stock (sku, units, fence) VALUES (?, ?, 0)")
        .bind(SKU)
        .bind(stock)
        .execute(pool)
        .await?;
    Ok(())
}
