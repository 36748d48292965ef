// Durable Object calls over Workers RPC, every one with a deadline, and group
// commit of the request path's calls per isolate (README: "How a request is
// checked").
//
// Every object class has an RPC method `batch(items)`: a list of JSON commands,
// decided in order in one synchronous step, answered with one JSON `Answer` each.
//
// `submit` coalesces: while a call to an object is in flight, later commands for
// it wait in the object's lane; when a call returns, the next call carries every
// waiting command (up to MAX_BATCH), in the order they came. An admission goes
// out at once (with whatever else waits) while fewer than MAX_ADMITTING calls
// carrying admissions are in flight: two requests at a time to a far object each
// pay one round trip, not one behind the other (with one call in flight a second
// request waits a whole round trip first: 552 ms instead of 280 from Oceania to
// Europe under `make geo`). A request never waits for another request's
// settlement: a call of settlements only does not count.
//
// A settlement lingers: it waits up to `linger` ms (SETTLE_LINGER_MS) for the
// next admission to the same object and rides its call; only a settlement no
// admission came for in that time goes out alone. So a key used one request at a
// time costs one call per request, not two (README: "Object calls").
//
// Requests never wake each other. The request whose call returned only writes
// plain data — each waiter's answer, and to the next batch's first request the
// batch it is to send — into the waiters' mailboxes; each waiting request reads
// its own mailbox from a timer of its own, so all it does next, sending included,
// runs in its own request. (Resolving another request's promise instead fails
// under load with "Cannot perform I/O on behalf of a different request": its
// continuation, and the Rust task it wakes, can run in the resolving request.
// Measured in bench/NOTES.md.)
//
// Deadlines: a call that has not answered within `deadline` ms fails for every
// command it carries, and the lane goes on at once with the next batch; a command
// still waiting in a lane when its own deadline passes leaves it and fails. So no
// request waits on an object longer than its deadline, and a lost call never
// holds a lane.
//
// Faults (tests only; the worker passes them only when TEST_FAULTS=true): "fail"
// fails the command before it is sent; "stall" sends it, then withholds the whole
// call's answer until the deadline, as a hung object would.
//
// Geography (tests and `make geo` only; the worker passes it only when TEST_GEO
// is set): `from` names the caller's region; the object waits the round trip from
// there (entry.mjs). An isolate is in one place, so a lane is per object and
// region: requests from different simulated regions never share a call.

const MAX_BATCH = 64;
// Calls carrying admissions in flight per lane before the next waits to batch.
const MAX_ADMITTING = 2;
// How often a waiting request reads its mailbox: well under one object call.
const POLL_MS = 1;

const lanes = new Map();
// Arrival order of commands in this isolate: a batch carries them in it.
let arrivals = 0;

// `hint`: the region a call that may create its object creates it in (a location
// hint: it has no effect on an object that exists).
function stub(env, binding, name, hint) {
  const ns = env[binding];
  return hint ? ns.get(ns.idFromName(name), { locationHint: hint }) : ns.get(ns.idFromName(name));
}

function checked(answers, n) {
  if (!Array.isArray(answers) || answers.length !== n) {
    throw new Error(`object answered ${Array.isArray(answers) ? answers.length : typeof answers} answers to ${n} commands`);
  }
  return answers;
}

/** `promise`, or a failure once `ms` have passed. */
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The object's answers to `items`, subject to the deadline and the members' faults. */
async function batch(env, binding, name, members, deadline, from, hint) {
  const what = `${binding}/${name}`;
  const items = members.map((m) => m.item);
  const object = stub(env, binding, name, hint);
  const call = from ? object.batch(items, from, hint || undefined) : object.batch(items);
  const stalled = members.some((m) => m.fault === "stall") ? call.then(() => new Promise(() => {})) : call;
  return checked(await within(stalled, deadline, what), members.length);
}

/** One command to one object, now. Resolves to its answer (JSON text). */
export async function call(env, binding, name, item, deadline, fault, from, hint) {
  if (fault === "fail") throw new Error(`${binding}/${name}: failed (TEST_FAULTS)`);
  return (await batch(env, binding, name, [{ item, fault }], deadline, from, hint))[0];
}

/**
 * One command through the object's lane. Resolves to its answer (JSON text).
 * `admission`: a request waits for this answer, so it waits only behind a call
 * that carries another admission. A settlement (false) rides the next call that
 * carries an admission, or goes alone once it has waited `linger` ms.
 */
export function submit(env, ctx, binding, name, item, deadline, fault, from, admission, linger) {
  if (fault === "fail") return Promise.reject(new Error(`${binding}/${name}: failed (TEST_FAULTS)`));
  const id = `${binding}\u0000${name}\u0000${from}`;
  let lane = lanes.get(id);
  if (lane === undefined) {
    lane = { id, binding, name, from, inflight: 0, admitting: 0, queue: [] };
    lanes.set(id, lane);
  }
  const now = Date.now();
  // `since`: when it may go on its own; its deadline counts from then.
  const me = { seq: arrivals++, item, fault, deadline, admission, since: admission ? now : now + Math.max(0, linger), word: undefined };
  // An admission goes out now unless MAX_ADMITTING calls with admissions are in
  // flight (calls of settlements only do not hold it). A settlement goes out
  // alone only when the lane is idle and its linger is over.
  const mayGo = () =>
    me.admission ? lane.admitting < MAX_ADMITTING : lane.inflight === 0 && Date.now() >= me.since;
  if (mayGo()) return send(lane, env, ctx, take(lane, me), me);
  lane.queue.push(me);
  return new Promise((resolve, reject) => {
    const read = () => {
      let word = me.word;
      if (word === undefined && lane.queue.includes(me)) {
        if (mayGo()) {
          lane.queue.splice(lane.queue.indexOf(me), 1);
          word = { lead: take(lane, me) };
        } else if (Date.now() - me.since > me.deadline) {
          lane.queue.splice(lane.queue.indexOf(me), 1);
          word = { error: new Error(`${lane.binding}/${lane.name}: waited ${me.deadline} ms in its lane`) };
        }
      }
      if (word === undefined) setTimeout(read, nap(me));
      else if ("answer" in word) resolve(word.answer);
      else if ("error" in word) reject(word.error);
      else resolve(send(lane, env, ctx, word.lead, me));
    };
    setTimeout(read, nap(me));
  });
}

/**
 * How long a waiting command sleeps before it reads its mailbox again: an
 * admission every POLL_MS; a lingering settlement until its linger is over (it
 * is never handed a batch that carries an admission, so nobody waits on it).
 */
function nap(me) {
  return me.admission ? POLL_MS : Math.max(POLL_MS, me.since - Date.now());
}

/** A batch of what waits, in the order it came, then `last`; counted in flight at once. */
function take(lane, last) {
  const members = [...lane.queue.splice(0, MAX_BATCH - 1), last];
  return reserve(lane, members.sort((a, b) => a.seq - b.seq));
}

function reserve(lane, members) {
  lane.inflight++;
  if (members.some((m) => m.admission)) lane.admitting++;
  return members;
}

/**
 * Sends the batch `lead` heads (counted in flight by `take` or by the call that
 * handed it over); once answered (or past its deadline), leaves each other member
 * its answer and hands the lane to the next batch that carries an admission (led
 * by its first admission; settlements alone wait for their linger or the next
 * admission). Resolves to the lead's own answer.
 */
function send(lane, env, ctx, members, lead) {
  const done = (async () => {
    let answers;
    let error;
    try {
      answers = await batch(env, lane.binding, lane.name, members, lead.deadline, lane.from);
    } catch (e) {
      error = e;
    }
    lane.inflight--;
    if (members.some((m) => m.admission)) lane.admitting--;
    const next = lane.queue.find((m) => m.admission);
    if (next !== undefined) {
      lane.queue.splice(lane.queue.indexOf(next), 1);
      next.word = { lead: take(lane, next) };
    } else if (lane.inflight === 0 && lane.queue.length === 0 && lanes.get(lane.id) === lane) {
      lanes.delete(lane.id);
    }
    let mine;
    members.forEach((m, i) => {
      if (m === lead) mine = i;
      else m.word = error === undefined ? { answer: answers[i] } : { error };
    });
    if (error !== undefined) throw error;
    return answers[mine];
  })();
  // Others wait on this call: it completes even if this request is cancelled.
  try {
    ctx.waitUntil(done.catch(() => {}));
  } catch {}
  return done;
}
