//! What most programs using distlock need, in one import:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> distlock::Result<()> {
//! use distlock::prelude::*;
//!
//! let client = LockClient::connect("memory://").await?;
//! let options = AcquireOptions::try_once(std::time::Duration::from_secs(10));
//! match client.lock_with("inventory/sku-42", &options).await {
//!     Ok(guard) => guard.release().await?,
//!     Err(LockError::Held { .. }) => println!("someone else has it"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! It holds [`Connect`] (for `LockClient::connect(url)`), the client and
//! guard types, options, names and the error type, and the
//! [`DistributedLock`] trait for calling a backend directly. It does not
//! hold `Result`, so it never shadows the standard one.

pub use crate::Connect;
pub use distlock_core::{
    AcquireOptions, DistributedLock, FencingToken, GuardHandle, GuardState, Lease, LockClient,
    LockError, LockGuard, LockName, LostReason, Mode, Semaphore, Wait,
};
