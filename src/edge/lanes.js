// Durable Object calls over Workers RPC, and group commit of the request path's
// calls per isolate (README: "How a request is checked").
//
// Every object class has an RPC method `batch(items)`: a list of JSON commands,
// decided in order in one synchronous step, answered with one JSON `Answer` each.
//
// `submit` coalesces: while a call to an object is in flight, later commands for
// it wait in the object's lane; when the call returns, the next call carries every
// waiting command (up to MAX_BATCH). A command for an idle object goes out at once
// (with whatever else waits).
//
// Requests never wake each other. The request whose call returned only writes
// plain data — each waiter's answer, and to the next batch's first request the
// batch it is to send — into the waiters' mailboxes; each waiting request reads
// its own mailbox from a timer of its own, so all it does next, sending included,
// runs in its own request. (Resolving another request's promise instead fails
// under load with "Cannot perform I/O on behalf of a different request": its
// continuation, and the Rust task it wakes, can run in the resolving request.
// Measured in bench/NOTES.md.)

const MAX_BATCH = 64;
// How often a waiting request reads its mailbox: well under one object call.
const POLL_MS = 1;
// A call that has not answered after this long is presumed lost with its request
// (cancelled mid-call): the first waiting request sends the waiting batch itself.
const STALE_MS = 10000;

const lanes = new Map();

function stub(env, binding, name) {
  const ns = env[binding];
  return ns.get(ns.idFromName(name));
}

function checked(answers, n) {
  if (!Array.isArray(answers) || answers.length !== n) {
    throw new Error(`object answered ${Array.isArray(answers) ? answers.length : typeof answers} answers to ${n} commands`);
  }
  return answers;
}

/** One command to one object, now. Resolves to its answer (JSON text). */
export async function call(env, binding, name, item) {
  return checked(await stub(env, binding, name).batch([item]), 1)[0];
}

/** One command through the object's lane. Resolves to its answer (JSON text). */
export function submit(env, ctx, binding, name, item) {
  const id = `${binding}\u0000${name}`;
  let lane = lanes.get(id);
  if (lane === undefined) {
    lane = { id, binding, name, sentAt: 0, queue: [] };
    lanes.set(id, lane);
  }
  const me = { item, word: undefined };
  if (lane.sentAt === 0) {
    lane.sentAt = Date.now();
    return send(lane, env, ctx, [me, ...lane.queue.splice(0, MAX_BATCH - 1)]);
  }
  lane.queue.push(me);
  return new Promise((resolve, reject) => {
    const read = () => {
      let word = me.word;
      if (word === undefined && lane.queue.includes(me)) {
        const now = Date.now();
        // The call in flight is lost (or the lane was left idle): this request
        // takes the lane.
        if (lane.sentAt === 0 || now - lane.sentAt > STALE_MS) {
          lane.queue.splice(lane.queue.indexOf(me), 1);
          lane.sentAt = now;
          word = { lead: [me, ...lane.queue.splice(0, MAX_BATCH - 1)] };
        }
      }
      if (word === undefined) setTimeout(read, POLL_MS);
      else if ("answer" in word) resolve(word.answer);
      else if ("error" in word) reject(word.error);
      else resolve(send(lane, env, ctx, word.lead));
    };
    setTimeout(read, POLL_MS);
  });
}

/**
 * Sends the batch this request heads; once answered, leaves each other member
 * its answer and hands the lane to the next batch. Resolves to this request's
 * own answer.
 */
function send(lane, env, ctx, batch) {
  const done = (async () => {
    let answers;
    let error;
    try {
      answers = checked(await stub(env, lane.binding, lane.name).batch(batch.map((w) => w.item)), batch.length);
    } catch (e) {
      error = e;
    }
    const next = lane.queue.splice(0, MAX_BATCH);
    if (next.length > 0) {
      lane.sentAt = Date.now();
      next[0].word = { lead: next };
    } else {
      lane.sentAt = 0;
      if (lanes.get(lane.id) === lane) lanes.delete(lane.id);
    }
    for (let i = 1; i < batch.length; i++) {
      batch[i].word = error === undefined ? { answer: answers[i] } : { error };
    }
    if (error !== undefined) throw error;
    return answers[0];
  })();
  // Others wait on this call: it completes even if this request is cancelled.
  try {
    ctx.waitUntil(done.catch(() => {}));
  } catch {}
  return done;
}
