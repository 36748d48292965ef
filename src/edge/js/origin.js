// The origin fetch's calls from Rust (`origin.rs`), one crossing each.
//
// `send`: the forwarded request made from the client's (its headers copied, less
// the names in `drop`, with the name and value pairs in `set`; both one name or
// value per line: neither can hold a line break) and fetched with its deadline;
// the timer is cleared as soon as the origin answers, and nothing of the answer
// is read or rebuilt here. Resolves to the origin's Response, or to undefined
// when it has not answered within `ms` (the answer is then 504, and the runtime
// cancels the fetch when the request ends); rejects when the origin cannot be
// reached.
export function send(url, request, method, drop, set, withBody, ms) {
  const headers = new Headers(request.headers);
  for (const name of lines(drop)) headers.delete(name);
  const pairs = lines(set);
  for (let i = 0; i + 1 < pairs.length; i += 2) headers.set(pairs[i], pairs[i + 1]);
  const init = { method, headers, redirect: "manual" };
  if (withBody && request.body !== null) init.body = request.body;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    fetch(url, init).then(
      (response) => {
        clearTimeout(timer);
        resolve(response);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

const lines = (text) => (text === "" ? [] : text.split("\n"));

// `answered`: a request's answer straight from `send`'s promise (a public path's:
// nothing to do after the origin answers), with `failed` (made once by Rust)
// rendering keyward's own answer when the origin did not answer in time
// (`error` undefined, `timedOut` true) or could not be reached.
export function answered(sent, url, ms, failed) {
  return sent.then(
    (response) => response ?? failed(url, ms, true, undefined),
    (error) => failed(url, ms, false, error),
  );
}

// The names of `headers`, one per line, in one call.
export function headerNames(headers) {
  return Array.from(headers.keys()).join("\n");
}
