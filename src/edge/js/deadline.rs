//! A deadline on any wait that is not an object call (those have theirs in
//! `lanes.js`): KV, the origin, a webhook receiver. The timer is the runtime's,
//! set by the request that waits, so it wakes that request's own task.

use std::future::Future;
use std::time::Duration;
use worker::Delay;

/// The wait did not end within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// `future`'s output, or `Elapsed` once `ms` have passed.
pub async fn within<F: Future>(ms: i64, future: F) -> Result<F::Output, Elapsed> {
    let timer = Delay::from(Duration::from_millis(ms.max(1) as u64));
    let future = std::pin::pin!(future);
    match futures_util::future::select(future, timer).await {
        futures_util::future::Either::Left((out, _)) => Ok(out),
        futures_util::future::Either::Right(_) => Err(Elapsed),
    }
}

/// A wait that never ends (a stalled call, `TEST_FAULTS`): only a deadline ends it.
pub async fn never<T>() -> T {
    std::future::pending().await
}
