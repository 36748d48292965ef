//! A task per request (and per background job), polled at once, in the JavaScript
//! turn that woke it.
//!
//! wasm-bindgen's executor polls tasks from a microtask, and one microtask polls
//! every task of the isolate woken meanwhile. A microtask may run after the runtime
//! has moved on to another request; so may the poll of a task woken by another
//! request's answer (group commit, `lanes.js`). Its Rust code then runs, and does
//! its I/O, in the wrong request, which the runtime refuses ("Cannot perform I/O
//! on behalf of a different request"). Here a task is polled synchronously where
//! it is woken: first when it is made (in the request's own call), then in the
//! promise callback that wakes it, which the runtime runs in the request that made
//! the promise — the task's own, since a task only awaits promises it made.
//!
//! A task also knows where its client is (`client`: from `request.cf`, or the
//! simulated geography of `TEST_GEO`, which `region` alone answers): a task
//! spawned by another inherits it, so a request's background work is where the
//! request was.

use crate::request::regions::Region;
use js_sys::Promise;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use wasm_bindgen::prelude::*;

type BoxedFuture = Pin<Box<dyn Future<Output = ()>>>;

struct Task {
    future: RefCell<Option<BoxedFuture>>,
    /// Being polled now (a wake-up meanwhile polls again right after).
    polling: Cell<bool>,
    /// Woken while being polled.
    again: Cell<bool>,
    /// Where this task's request is.
    place: Cell<Place>,
}

/// Where a task's client is, and whether that place is simulated (`TEST_GEO`).
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    region: Option<Region>,
    simulated: bool,
    /// The client's country (`request.cf.country`), for sharing detection.
    country: Option<[u8; 2]>,
}

thread_local! {
    /// The place of the task being polled now.
    static CURRENT: Cell<Place> = const {
        Cell::new(Place { region: None, simulated: false, country: None })
    };
}

/// The simulated region of the running task (None unless geography is simulated):
/// object calls from it wait their round trip.
pub fn region() -> Option<Region> {
    let place = CURRENT.with(Cell::get);
    place.region.filter(|_| place.simulated)
}

/// The region of the running task's client, simulated or real (`None`: unknown).
pub fn client() -> Option<Region> {
    CURRENT.with(Cell::get).region
}

/// Places the running task (and the tasks it spawns from now on) in `region`,
/// simulated.
pub fn set_region(region: Option<Region>) {
    CURRENT.with(|c| {
        c.set(Place {
            region,
            simulated: true,
            ..c.get()
        })
    });
}

/// The running task's client's country, when known.
pub fn country() -> Option<String> {
    let c = CURRENT.with(Cell::get).country?;
    std::str::from_utf8(&c).ok().map(str::to_string)
}

/// The running task's client is in `country` (two letters, from `request.cf`).
pub fn set_country(country: Option<String>) {
    let code = country
        .and_then(|c| crate::key::sharing::country_of(&c))
        .and_then(|c| c.as_bytes().try_into().ok());
    CURRENT.with(|c| {
        let mut place = c.get();
        place.country = code;
        c.set(place);
    });
}

/// The running task's client is in `region` (from `request.cf`: nothing simulated).
pub fn set_client(region: Option<Region>) {
    CURRENT.with(|c| {
        c.set(Place {
            region,
            simulated: false,
            ..c.get()
        })
    });
}

// Wasm32 without threads: there is one thread, so nothing is shared across
// threads. (`Waker` asks for `Send + Sync`; wasm-bindgen's executor assumes the same.)
unsafe impl Send for Task {}
unsafe impl Sync for Task {}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        run(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        run(self);
    }
}

fn run(task: &Arc<Task>) {
    if task.polling.get() {
        task.again.set(true);
        return;
    }
    task.polling.set(true);
    let outer = CURRENT.with(|c| c.replace(task.place.get()));
    loop {
        task.again.set(false);
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let done = match task.future.try_borrow_mut() {
            Ok(mut slot) => match slot.as_mut() {
                Some(future) => future.as_mut().poll(&mut cx).is_ready(),
                None => true,
            },
            Err(_) => true,
        };
        if done {
            if let Ok(mut slot) = task.future.try_borrow_mut() {
                *slot = None;
            }
            break;
        }
        if !task.again.get() {
            break;
        }
    }
    task.place.set(CURRENT.with(|c| c.replace(outer)));
    task.polling.set(false);
}

/// Runs `future` as a task of its own.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    let task = Arc::new(Task {
        future: RefCell::new(Some(Box::pin(future))),
        polling: Cell::new(false),
        again: Cell::new(false),
        place: Cell::new(CURRENT.with(Cell::get)),
    });
    run(&task);
}

/// A promise of `future`'s outcome, computed by a task of its own.
pub fn promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let mut future = Some(future);
    Promise::new(&mut |resolve, reject| {
        if let Some(future) = future.take() {
            spawn(async move {
                let _ = match future.await {
                    Ok(v) => resolve.call1(&JsValue::UNDEFINED, &v),
                    Err(e) => reject.call1(&JsValue::UNDEFINED, &e),
                };
            });
        }
    })
}

/// The same request's context, owned: for a task that outlives the borrow.
pub fn owned_context(ctx: &worker::Context) -> worker::Context {
    let inner: &worker::worker_sys::Context = ctx.as_ref();
    let js: &JsValue = inner.as_ref();
    worker::Context::new(js.clone().unchecked_into())
}

/// `ctx.waitUntil` of a task of its own: runs after the answer, in this request.
pub fn wait_until(ctx: &worker::Context, future: impl Future<Output = ()> + 'static) {
    let done = promise(async move {
        future.await;
        Ok(JsValue::UNDEFINED)
    });
    let inner: &worker::worker_sys::Context = ctx.as_ref();
    if let Err(e) = inner.wait_until(&done) {
        worker::console_error!("waitUntil refused: {e:?}");
    }
}
