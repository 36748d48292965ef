// The origin fetch with its deadline, in one call from Rust (`forward.rs`): the
// request is made once from its URL and init, the timer is cleared as soon as the
// origin answers, and nothing of the answer is read or rebuilt here. Resolves to
// the origin's Response, or to undefined when it has not answered within `ms`
// (the answer is then 504, and the runtime cancels the fetch when the request
// ends); rejects when the origin cannot be reached.
export function fetchWithin(url, init, ms) {
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

// The names of `headers`, in one call.
export function headerNames(headers) {
  return Array.from(headers.keys());
}
