//! etcd-specific behaviour beyond the shared suite.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, Liveness, LockName, Wait};

fn name(tag: &str) -> LockName {
    LockName::new(format!("behaviour/{tag}/{:016x}", rand::random::<u64>())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_can_queue_twice_for_the_same_name() {
    let prefix = common::unique_prefix("behaviour");
    let backend = Arc::new(common::connect(common::config(&prefix)).await);
    let name = name("same-client");
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    let first = backend.acquire(&name, &opts).await.unwrap().expect("free");
    let second = {
        let (backend, name) = (backend.clone(), name.clone());
        tokio::spawn(async move {
            let o = opts.with_wait(Wait::For(Duration::from_secs(20)));
            backend.acquire(&name, &o).await
        })
    };
    // The second acquire of the same client (same etcd lease) queues behind
    // the first instead of colliding with its key.
    while backend.status(&name).await.unwrap().waiters != Some(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(first.data(), "", "the lease names its key");
    backend.release(&first).await.unwrap();
    let second = second
        .await
        .unwrap()
        .unwrap()
        .expect("acquired after release");
    assert!(second.fencing_token() > first.fencing_token());
    assert_ne!(second.data(), first.data(), "each acquire has its own key");
    backend.release(&second).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lock_of_a_client_shares_one_etcd_lease_and_extends_in_one_batch() {
    let prefix = common::unique_prefix("behaviour");
    let backend = common::connect(common::config(&prefix)).await;
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    let mut leases = Vec::new();
    for i in 0..5 {
        let n = name(&format!("shared-{i}"));
        leases.push(backend.acquire(&n, &opts).await.unwrap().expect("free"));
    }
    let lease_id = format!("{:016x}", backend.lease_id().expect("a live lease"));
    for lease in &leases {
        let segment = lease.data().rsplit('/').next().unwrap();
        assert!(
            segment.starts_with(&lease_id),
            "key {} is not on the client's lease {lease_id}",
            lease.data()
        );
        let liveness = backend.liveness(lease).expect("session liveness");
        assert_eq!(*liveness.borrow(), Liveness::Live);
    }
    let results = backend.extend_many(&leases).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    // One batched request answers per lease: a released one is refused alone.
    backend.release(&leases[2]).await.unwrap();
    let results = backend.extend_many(&leases).await;
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (2, Err(e)) => assert!(e.is_not_held(), "{e}"),
            (2, Ok(_)) => panic!("a released lease was extended"),
            (_, r) => assert!(r.is_ok(), "lease {i}: {r:?}"),
        }
    }
    for (i, lease) in leases.iter().enumerate() {
        if i != 2 {
            backend.release(lease).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_many_beyond_one_transaction_answers_every_lease_in_order() {
    let prefix = common::unique_prefix("behaviour");
    let backend = common::connect(common::config(&prefix)).await;
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    // More leases than one etcd transaction carries: the core splits them
    // into batches of `max_batch` and puts the answers back in order.
    let count = 130;
    let mut leases = Vec::new();
    for i in 0..count {
        let n = name(&format!("batch-{i}"));
        leases.push(backend.acquire(&n, &opts).await.unwrap().expect("free"));
    }
    let released = [3, 101, 129];
    for i in released {
        backend.release(&leases[i]).await.unwrap();
    }
    let results = backend.extend_many(&leases).await;
    assert_eq!(results.len(), count);
    for (i, (lease, result)) in leases.iter().zip(&results).enumerate() {
        match result {
            Ok(renewed) if !released.contains(&i) => {
                assert_eq!(renewed.name(), lease.name(), "answer {i} out of order");
                assert_eq!(renewed.fencing_token(), lease.fencing_token());
            }
            Err(e) if released.contains(&i) => assert!(e.is_not_held(), "lease {i}: {e}"),
            other => panic!("lease {i} (released: {}): {other:?}", released.contains(&i)),
        }
    }
    for (i, lease) in leases.iter().enumerate() {
        if !released.contains(&i) {
            backend.release(lease).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_holder_and_waiters() {
    let prefix = common::unique_prefix("behaviour");
    let (a, b) = (
        Arc::new(common::connect(common::config(&prefix)).await),
        Arc::new(common::connect(common::config(&prefix)).await),
    );
    let name = name("status");
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    let held = a.acquire(&name, &opts).await.unwrap().expect("free");
    let waiting = {
        let (b, name) = (b.clone(), name.clone());
        tokio::spawn(async move {
            b.acquire(&name, &opts.with_wait(Wait::For(Duration::from_secs(20))))
                .await
        })
    };
    let status = loop {
        let s = a.status(&name).await.unwrap();
        if s.waiters == Some(1) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.held);
    assert_eq!(status.fencing_token, Some(held.fencing_token()));
    a.release(&held).await.unwrap();
    let next = waiting.await.unwrap().unwrap().expect("waiter acquires");
    let status = a.status(&name).await.unwrap();
    assert_eq!(status.fencing_token, Some(next.fencing_token()));
    assert_eq!(status.waiters, Some(0));
    b.release(&next).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_through_the_url_and_bad_urls_are_invalid_config() {
    let endpoints: Vec<String> = common::endpoints()
        .iter()
        .map(|e| e.trim_start_matches("http://").to_string())
        .collect();
    let url = format!(
        "etcd://{}/{}?session_timeout=3s",
        endpoints.join(","),
        common::unique_prefix("behaviour")
    );
    let backend = distlock_etcd::EtcdBackend::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}: start the servers with scripts/services.sh up"));
    assert_eq!(backend.config().session_timeout(), Duration::from_secs(3));
    let err = distlock_etcd::EtcdBackend::connect("etcd://u:hunter2@127.0.0.1:1?bogus=1")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        distlock_core::LockError::InvalidConfig { .. }
    ));
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquires_cancelled_at_any_point_leave_no_key_behind() {
    let prefix = common::unique_prefix("behaviour");
    let (a, b) = (
        common::connect(common::config(&prefix)).await,
        common::connect(common::config(&prefix)).await,
    );
    let name = name("cancel-anywhere");
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    let waiting = opts.with_wait(Wait::For(Duration::from_secs(20)));
    // Cancel free-lock acquires and queued acquires after 0..8 ms: before the
    // request is sent, while it is in flight, and after it landed.
    for round in 0..60u64 {
        let cut = Duration::from_micros((round * 137) % 8000);
        let o = if round % 2 == 0 { opts } else { waiting };
        if let Ok(Ok(Some(lease))) = tokio::time::timeout(cut, b.acquire(&name, &o)).await {
            b.release(&lease).await.unwrap();
        }
    }
    let held = a.acquire(&name, &opts).await.unwrap();
    let held = match held {
        Some(l) => l,
        None => {
            // A cancelled acquire's key is still being cleaned up.
            a.acquire(&name, &waiting)
                .await
                .unwrap()
                .expect("cleanup frees the lock")
        }
    };
    for round in 0..30u64 {
        let cut = Duration::from_micros((round * 211) % 8000);
        let _ = tokio::time::timeout(cut, b.acquire(&name, &waiting)).await;
    }
    a.release(&held).await.unwrap();
    // Every background cleanup finishes: the name ends with no key at all.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = a.status(&name).await.unwrap();
        if !s.held && s.waiters == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "cancelled acquires left keys behind: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
