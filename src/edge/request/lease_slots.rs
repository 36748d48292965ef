//! The budget leases this isolate holds, per key or account and region: the
//! current lease requests are admitted from, the retired ones whose reports are
//! still due, and the recent traffic that tells a hot key or account from a
//! quiet one.
//!
//! Traffic is hot here when it is sustained: at least `HOT_PER_SECOND`
//! requests a second over the last `HOT_MS`, the oldest of them over a second
//! old (a single burst is not sustained traffic, and is decided by the object
//! request by request). Its next call asks for a lease. A live lease is renewed
//! in the background once half of it is used or gone, so no request waits for
//! it; it ends at its time (a task of the request that brought it waits for
//! that) or when the next one arrives.

use crate::edge::js::runtime::now_ms;
use crate::edge::js::{deadline, task};
use crate::limits::budget_lease::Holder;
use crate::limits::plan_lease;
use crate::request::regions::Region;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::thread::LocalKey;
use worker::Context;

/// Requests per second through this isolate that make traffic hot, over `HOT_MS`.
const HOT_PER_SECOND: usize = 4;
const HOT_MS: i64 = 2_000;
/// Bound on the names this isolate keeps leases for; past it, new ones get none.
const MAX_NAMES: usize = 10_000;

pub struct Slot<H> {
    pub current: Option<H>,
    pub retired: Vec<H>,
    pub renewing: bool,
    /// Recent admissions here (ms).
    recent: VecDeque<i64>,
}

impl<H> Default for Slot<H> {
    fn default() -> Self {
        Slot {
            current: None,
            retired: Vec::new(),
            renewing: false,
            recent: VecDeque::new(),
        }
    }
}

pub type Slots<H> = RefCell<HashMap<String, Slot<H>>>;

/// The slot of `id` in this request's region, made when missing (none past
/// `MAX_NAMES`, or while the map is borrowed).
pub fn with_slot<H: Holder, T>(
    slots: &'static LocalKey<Slots<H>>,
    id: &str,
    f: impl FnOnce(&mut Slot<H>) -> T,
) -> Option<T> {
    slots.with(|s| {
        let mut map = s.try_borrow_mut().ok()?;
        let region = task::region().map_or("", Region::name);
        let name = format!("{id}\u{0}{region}");
        if !map.contains_key(&name) && map.len() >= MAX_NAMES {
            map.retain(|_, slot| slot.current.is_some() || !slot.retired.is_empty());
            if map.len() >= MAX_NAMES {
                return None;
            }
        }
        Some(f(map.entry(name).or_default()))
    })
}

impl<H: Holder> Slot<H> {
    /// Counts an admission at `now`.
    pub fn note(&mut self, now: i64) {
        self.recent.push_back(now);
        while self.recent.front().is_some_and(|t| *t <= now - HOT_MS) {
            self.recent.pop_front();
        }
    }

    /// Counts an admission; the credits to ask a lease for with it (0: quiet
    /// here, or a live lease is held).
    pub fn want(&mut self, now: i64) -> u64 {
        self.note(now);
        let live = self.current.as_ref().is_some_and(|h| h.holding().live(now));
        let sustained = self.recent.front().is_some_and(|t| now - t >= 1_000);
        let busy = self.recent.len() >= HOT_PER_SECOND * (HOT_MS / 1_000) as usize;
        if live || !sustained || !busy {
            0
        } else {
            self.rate_want()
        }
    }

    /// Four times the traffic here over the last `HOT_MS`, at least 64: what is
    /// admitted without a call is sent more requests than what waits on its
    /// object, and a slice spent before the next arrives sends them to the
    /// object. What is not used comes back with the report.
    pub fn rate_want(&self) -> u64 {
        (self.recent.len() as u64 * 4).max(64)
    }

    /// A new lease replaces the current one, which retires.
    pub fn install(&mut self, held: H) {
        self.retire_current(None);
        self.current = Some(held);
        self.renewing = false;
    }

    /// Retires the current lease (only if it is `id`, when given).
    pub fn retire_current(&mut self, id: Option<u64>) {
        if id.is_some_and(|id| self.current.as_ref().is_some_and(|h| h.id() != id)) {
            return;
        }
        if let Some(mut old) = self.current.take() {
            old.holding_mut().retired = true;
            self.retired.push(old);
        }
    }

    /// Whether a lease is held here, or has still to be reported.
    pub fn holds_any(&self) -> bool {
        self.current.is_some() || !self.retired.is_empty()
    }

    /// Drops the retired leases that were reported.
    pub fn drop_reported(&mut self) {
        self.retired.retain(|h| !h.holding().reported);
    }
}

/// At the lease's end (`MARGIN_MS` early) it retires even if nothing else comes
/// for it, and `then` sends what is due; a task of the request waits for it.
pub fn retire_at_end<H: Holder + 'static>(
    ctx: &Context,
    slots: &'static LocalKey<Slots<H>>,
    id: &str,
    lease: u64,
    until: i64,
    then: impl FnOnce() + 'static,
) {
    let id = id.to_string();
    task::wait_until(ctx, async move {
        deadline::sleep(until - plan_lease::MARGIN_MS - now_ms()).await;
        with_slot(slots, &id, |slot| slot.retire_current(Some(lease)));
        then();
    });
}
