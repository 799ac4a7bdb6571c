//! `extend_many`, once for every backend: check each lease, hand the good
//! ones to the backend in batches of at most `max_batch`, and answer in the
//! caller's order.

use std::time::Duration;

use crate::error::{LockError, Result};
use crate::lease::Lease;

use super::rules::{check_extend, renewed};
use super::LockBackend;

/// Extends every lease by its own ttl; one answer per lease, in order.
pub(crate) async fn extend_many<B: LockBackend>(
    backend: &B,
    leases: &[Lease],
) -> Vec<Result<Lease>> {
    let caps = backend.claims();
    let mut answers: Vec<Option<Result<Lease>>> = Vec::with_capacity(leases.len());
    // Indices of the leases that passed the checks, in order.
    let mut pending: Vec<usize> = Vec::new();
    for (i, lease) in leases.iter().enumerate() {
        match check_extend(backend.kind(), &caps, lease, lease.ttl()) {
            Ok(()) => {
                answers.push(None);
                pending.push(i);
            }
            Err(e) => answers.push(Some(Err(e))),
        }
    }
    let size = backend.max_batch().max(1);
    let chunks: Vec<&[usize]> = pending.chunks(size).collect();
    let answered = futures::future::join_all(chunks.iter().map(|chunk| async move {
        let batch: Vec<(Lease, Duration)> = chunk
            .iter()
            .map(|&i| (leases[i].clone(), leases[i].ttl()))
            .collect();
        let mut results = backend.renew_batch(&batch).await;
        // A backend that answers short is a bug in it; never a silent success.
        results.resize_with(batch.len(), || {
            Err(LockError::unavailable(
                backend.kind(),
                "the batched extension gave fewer answers than leases",
            ))
        });
        results
    }))
    .await;
    for (chunk, results) in chunks.iter().zip(answered) {
        for (&i, result) in chunk.iter().zip(results) {
            let lease = &leases[i];
            let result = result.map(|r| renewed(lease, lease.ttl(), r));
            super::telemetry::extend_done(lease, backend.kind(), &result);
            answers[i] = Some(result);
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(LockError::unavailable("core", "lease left unanswered"))))
        .collect()
}
