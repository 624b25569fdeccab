//! The request log `listenkeyd sim` prints: one line per exchange request, so
//! a user can see what their own client did. Credentials appear only as
//! fingerprints (the first 8 hex digits of their SHA-256, as listenkeyd's own
//! logs show them): the API key that called, and the listen key or token the
//! request named or the answer carried.
//!
//! ```text
//! POST   /sapi/v1/userListenToken 200 stream=isolated-margin:BTCUSDT api-key=6f1c2a9e key=0b7d43aa signed
//! PUT    /fapi/v1/listenKey 200 stream=usdm-futures api-key=6f1c2a9e key=5e0a9c11
//! POST   /sapi/v1/userDataStream/isolated 410 stream=isolated-margin:BTCUSDT api-key=6f1c2a9e
//! ```

use sha2::{Digest, Sha256};

use super::http::{Reply, SimRequest};

/// A credential's short name: the first 8 hex digits of its SHA-256, the
/// fingerprint listenkeyd's logs and state file show, so lines can be matched.
pub fn fingerprint(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..4])
}

/// The credential a request named or its answer carried, if any.
fn credential(req: &SimRequest, reply: &Reply) -> Option<String> {
    if let Some(k) = req.param("listenKey").filter(|k| !k.is_empty()) {
        return Some(k.to_owned());
    }
    let body: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
    ["listenKey", "token"]
        .iter()
        .find_map(|f| body.get(f).and_then(|v| v.as_str()).map(str::to_owned))
}

/// The log line for `req` answered with `reply` (`None` when the connection
/// was dropped or reset without an answer); `stream` is the stream id addressed.
pub fn line(req: &SimRequest, reply: Option<&Reply>, stream: Option<&str>) -> String {
    let mut out = format!("{:<6} {}", req.method, req.path);
    match reply {
        Some(r) => out.push_str(&format!(" {}", r.status)),
        None => out.push_str(" (no answer: connection closed by a fault)"),
    }
    if let Some(s) = stream {
        out.push_str(&format!(" stream={s}"));
    }
    match req.api_key.as_deref().map(str::trim) {
        Some(k) if !k.is_empty() => out.push_str(&format!(" api-key={}", fingerprint(k))),
        _ => out.push_str(" api-key=none"),
    }
    if let Some(c) = reply.and_then(|r| credential(req, r)) {
        out.push_str(&format!(" key={}", fingerprint(&c)));
    }
    if req.param("signature").is_some() {
        out.push_str(" signed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_fingerprints_only() {
        let api_key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
        let token = "6xXxePXwZRjVSHKhzUCCGnmN3fkvMTXru75pJQNHXLv";
        let req = SimRequest::new(
            "POST",
            "/sapi/v1/userListenToken",
            Some("symbol=BTCUSDT&isIsolated=true&timestamp=1&signature=abc"),
            String::new(),
            Some(api_key.into()),
        );
        let reply = Reply::json(200, serde_json::json!({ "token": token, "expirationTime": 1 }));
        let l = line(&req, Some(&reply), Some("isolated-margin:BTCUSDT"));
        assert_eq!(
            l,
            format!(
                "POST   /sapi/v1/userListenToken 200 stream=isolated-margin:BTCUSDT api-key={} key={} signed",
                fingerprint(api_key),
                fingerprint(token)
            )
        );
        assert!(!l.contains(api_key) && !l.contains(token));
        let put = SimRequest::new(
            "PUT",
            "/sapi/v1/margin/listen-key",
            Some("listenKey=K1"),
            String::new(),
            None,
        );
        let l = line(&put, None, Some("margin-risk"));
        assert!(
            l.contains("no answer") && l.contains("api-key=none") && !l.contains("K1"),
            "{l}"
        );
    }
}
