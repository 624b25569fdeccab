//! The request text the `api` and `sim` targets read, so that seeds are
//! readable HTTP: a request line (`METHOD TARGET`, any `HTTP/x` tail ignored),
//! header lines `Name: value` up to an empty line, then the body. Several
//! requests are separated by a line holding only `===`, so one input can arm
//! state (a fault, a key) and then meet it.
//!
//! Parts that `http` refuses (a method with a space, a target that is not a
//! URI, a header name with a colon) cannot reach a server through hyper
//! either: such a request is skipped, an unusable header is dropped.

use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use bytes::Bytes;

use crate::text::{find, split};

/// The requests of one fuzz input, at most [`MAX_REQUESTS`].
pub fn parse_all(data: &[u8]) -> Vec<Request<Bytes>> {
    split(data, b"\n===\n")
        .into_iter()
        .take(MAX_REQUESTS)
        .filter_map(parse_one)
        .collect()
}

/// More requests than this in one input add time, not coverage.
pub const MAX_REQUESTS: usize = 8;

/// One request in the text form above; `None` when its line cannot be sent.
pub fn parse_one(text: &[u8]) -> Option<Request<Bytes>> {
    let (head, body) = match find(text, b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next()?;
    let mut words = first.splitn(3, |b| *b == b' ');
    let method = Method::from_bytes(words.next()?).ok()?;
    let uri = Uri::try_from(words.next().unwrap_or(b"/")).ok()?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Bytes::copy_from_slice(body))
        .ok()?;
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(trim(&line[colon + 1..]));
        if let (Ok(n), Ok(v)) = (name, value) {
            req.headers_mut().append(n, v);
        }
    }
    Some(req)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}
