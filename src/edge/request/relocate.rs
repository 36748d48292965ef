//! A key's move to an object near its clients (`objects::key::placement`), when
//! its object asks for one in an admission's answer: after the answer, the key's
//! next object is made in the client's region (a location hint) and takes the key
//! over from the one that asked; the key's first object, which every caller finds
//! it through, is told of a later move. The request that asked is not held up.

use crate::edge::js::rpc::{self, Object};
use crate::edge::js::{runtime, task};
use crate::objects::key::placement::{predecessor, successor};
use crate::objects::key::KeyCommand;
use crate::request::regions::Region;
use serde_json::Value;
use worker::{console_error, Context, Env};

/// Moves key `id` near `region`, in the background.
pub fn start(ctx: &Context, env: &Env, id: &str, region: Region) {
    let (env, id) = (env.clone(), id.to_string());
    task::wait_until(ctx, async move {
        let here = runtime::key_home(&id).unwrap_or_else(|| id.clone());
        let next = successor(&here);
        let cmd = KeyCommand::MoveIn {
            name: next.clone(),
            region: Some(region),
        };
        let placed = rpc::ask_placed::<Value>(&env, Object::KeyAt(&next), &cmd, Some(region));
        if let Err(e) = placed.await {
            console_error!("{id}: move to {next} failed: {e:?}");
            return;
        }
        runtime::learn_key_home(&id, &next);
        if predecessor(&next).as_deref() != Some(id.as_str()) {
            let cmd = KeyCommand::Relocated { to: next.clone() };
            if let Err(e) = rpc::ask::<Value>(&env, Object::KeyAt(&id), &cmd).await {
                console_error!("{id}: its first object not told of {next}: {e:?}");
            }
        }
    });
}
