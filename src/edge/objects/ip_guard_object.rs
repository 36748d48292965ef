//! One Durable Object per address bucket (an IPv4 address or an IPv6 /64) that sent
//! an invalid key: counts the failures and blocks the bucket (row 2), as its pure
//! core decides (`crate::objects::ip_guard`). Valid requests to the gate never call
//! it; the management routes ask it first. Its storage is deleted by its alarm once
//! the window and any block are over, so a flood from many addresses leaves
//! nothing behind.

use super::{object_stats, sql_row};
use crate::edge::js::rpc;
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::task;
use crate::error::ApiError;
use crate::limits::failed_attempts::FailureWindow;
use crate::objects::ip_guard::{self as core, Effects, IpGuardCommand};
use serde_json::Value;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::DurableObjectState;
use worker::{console_error, Env, State};

/// The class `entry.mjs` wraps (Workers RPC: `batch`, and the alarm).
#[wasm_bindgen]
pub struct IpGuard {
    inner: Rc<Guard>,
}

struct Guard {
    state: State,
    env: Env,
}

#[wasm_bindgen]
impl IpGuard {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> IpGuard {
        IpGuard {
            inner: Rc::new(Guard {
                state: State::from(state),
                env,
            }),
        }
    }

    /// Answers at once: the clean-up alarm and deletions are not waited for.
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        Some(rpc::each_now(&items, |cmd| self.inner.handle(cmd)))
    }

    pub fn alarm(&self) -> js_sys::Promise {
        let me = self.inner.clone();
        task::promise(async move {
            me.alarm().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Guard {
    fn handle(&self, cmd: IpGuardCommand) -> Result<Value, ApiError> {
        let cfg = runtime::config(&self.env)?;
        let sql = self.state.storage().sql();
        object_stats::count(&sql, cfg.object_stats, now_ms());
        let mut window = self.load()?;
        let (fx, outcome) =
            core::apply(&mut window, cmd, &cfg.ip_block, now_ms(), cfg.object_stats);
        // Only a failure creates storage: asking about an address never seen
        // leaves nothing behind.
        if fx.save {
            sql.exec(&sql_row::schema("failures"), None)
                .map_err(ApiError::internal)?;
            sql_row::write(&sql, "failures", &window)?;
        }
        let _ = self.perform(fx);
        serde_json::to_value(outcome).map_err(ApiError::internal)
    }

    fn load(&self) -> Result<FailureWindow, ApiError> {
        let sql = self.state.storage().sql();
        if !sql_row::has_table(&sql, "failures")? {
            return Ok(FailureWindow::default());
        }
        Ok(sql_row::read(&sql, "failures")?.unwrap_or_default())
    }

    /// The clean-up alarm or the deletion; the alarm's write in flight, if any.
    fn perform(&self, fx: Effects) -> Option<js_sys::Promise> {
        if fx.delete_all {
            // Everything, alarm included (not waited for: the object's answer
            // waits for its storage writes).
            let deleted = self.state.as_raw().storage().and_then(|s| s.delete_all());
            if let Err(e) = deleted {
                console_error!("ip guard: cannot delete its storage: {e:?}");
            }
            return None;
        }
        let at = fx.clean_up_at?;
        rpc::set_alarm_now(&self.state, at.max(now_ms()) + 1)
            .map_err(|e| console_error!("ip guard: cannot set its clean-up alarm: {e:?}"))
            .ok()
    }

    async fn alarm(&self) {
        let Ok(cfg) = runtime::config(&self.env) else {
            return;
        };
        // Unreadable: nothing of this address is kept.
        let fx = match self.load() {
            Ok(w) => core::wake(&w, &cfg.ip_block, now_ms()),
            Err(_) => Effects {
                delete_all: true,
                ..Effects::default()
            },
        };
        // Waited for: see `rpc::set_alarm_now`.
        if let Some(set) = self.perform(fx) {
            let _ = JsFuture::from(set).await;
        }
    }
}
