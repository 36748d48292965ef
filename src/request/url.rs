//! The parts of a request URL keyward needs, read from the runtime's serialized
//! WHATWG URL without a general URL parser (whose Unicode tables would double the
//! Wasm module).

/// Scheme, path and query (without `?`) of an absolute URL as the runtime
/// serializes it: `scheme://host[:port]/path[?query][#fragment]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl<'a> {
    pub scheme: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

pub fn split(url: &str) -> RequestUrl<'_> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // The path starts at the first '/' after the host; a serialized special URL
    // always has one, and '?' and '#' inside the path are percent-encoded.
    let after_host = rest.find('/').map_or("/", |i| rest.get(i..).unwrap_or("/"));
    let without_fragment = after_host.split('#').next().unwrap_or(after_host);
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (without_fragment, None),
    };
    RequestUrl {
        scheme,
        path,
        query,
    }
}

/// `application/x-www-form-urlencoded` pairs of a query string.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex_val),
                bytes.get(i + 2).and_then(hex_val),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_serialized_urls() {
        let u = split("https://api.example.com:8443/projects/p1/tasks?a=1&b=2#frag");
        assert_eq!(
            u,
            RequestUrl {
                scheme: "https",
                path: "/projects/p1/tasks",
                query: Some("a=1&b=2")
            }
        );
        assert_eq!(
            split("http://127.0.0.1:8787/"),
            RequestUrl {
                scheme: "http",
                path: "/",
                query: None
            }
        );
        assert_eq!(
            split("http://h/x?"),
            RequestUrl {
                scheme: "http",
                path: "/x",
                query: Some("")
            }
        );
        assert_eq!(split("http://h").path, "/");
        assert_eq!(split("http://h/a%3Fb").path, "/a%3Fb");
    }

    #[test]
    fn decodes_query_pairs() {
        let pairs = query_pairs(Some(
            "account=acme&to=2026-01-01T00%3A00%3A00Z&name=a+b&flag&bad=%zz",
        ));
        assert_eq!(
            pairs,
            vec![
                ("account".into(), "acme".into()),
                ("to".into(), "2026-01-01T00:00:00Z".into()),
                ("name".into(), "a b".into()),
                ("flag".into(), "".into()),
                ("bad".into(), "%zz".into()),
            ]
        );
        assert!(query_pairs(None).is_empty());
    }
}
