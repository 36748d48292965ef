// The bare forwarder of `make bench`: the least a Worker in front of the origin can
// do. keyward's scenarios are reported as a ratio to it.
export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    return fetch(env.ORIGIN_URL + url.pathname + url.search, { method: req.method, headers: req.headers });
  },
};
