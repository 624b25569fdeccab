//! The WebSocket API's request frames, parsed without any state: a text
//! frame is one JSON request `{"id", "method", "params"}`, and [`parse`]
//! turns it into a [`Call`] or the exchange's error answer. The signed
//! payload of `userDataStream.subscribe.signature` is rebuilt here too
//! ([`signed_payloads`]): every parameter but `signature`, sorted by name,
//! as `name=value` pairs joined with `&`.
//!
//! Pure functions only, so the `sim` fuzz target can drive them directly;
//! the session acts on what they return.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The largest request frame a session reads, bytes; a larger one ends the
/// connection with close code 1009 after the error answer.
pub const MAX_FRAME: usize = 64 * 1024;

/// The longest request `id` kept and echoed, characters (Binance's limit is 36 for strings).
const MAX_ID_LEN: usize = 64;

/// A WebSocket API method the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `userDataStream.subscribe.signature`: an account's events, by API-key signature.
    SubscribeSignature,
    /// `userDataStream.subscribe.listenToken`: a margin account's events, by listen token.
    SubscribeListenToken,
    /// `userDataStream.subscribe`: the logged-on account's events (after `session.logon`).
    SubscribeLogon,
    /// `session.logon`: authenticates the session as an API key.
    SessionLogon,
    /// `session.logout`: forgets it, ending only the logon subscription.
    SessionLogout,
    /// `userDataStream.unsubscribe`: one subscription (`subscriptionId`) or all.
    Unsubscribe,
    /// `session.status`.
    SessionStatus,
    /// `session.subscriptions`.
    SessionSubscriptions,
    /// `ping`: an empty answer.
    Ping,
    /// `time`: the server time.
    Time,
}

impl Method {
    /// The method named `name`, if the simulator serves it.
    pub fn of(name: &str) -> Option<Method> {
        Some(match name {
            "userDataStream.subscribe.signature" => Method::SubscribeSignature,
            "userDataStream.subscribe.listenToken" => Method::SubscribeListenToken,
            "userDataStream.subscribe" => Method::SubscribeLogon,
            "session.logon" => Method::SessionLogon,
            "session.logout" => Method::SessionLogout,
            "userDataStream.unsubscribe" => Method::Unsubscribe,
            "session.status" => Method::SessionStatus,
            "session.subscriptions" => Method::SessionSubscriptions,
            "ping" => Method::Ping,
            "time" => Method::Time,
            _ => return None,
        })
    }

    /// Its request weight, as Binance's docs give it.
    pub fn weight(self) -> u32 {
        match self {
            Method::Ping | Method::Time => 1,
            _ => 2,
        }
    }
}

/// One well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The request id, echoed in the answer (a string, a number or null).
    pub id: Value,
    /// The method.
    pub method: Method,
    /// The parameters (an empty object when none were sent).
    pub params: Map<String, Value>,
}

/// An error answer: the status and Binance's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status field (HTTP-like).
    pub status: u16,
    /// Binance's error code (negative).
    pub code: i64,
    /// The message.
    pub msg: String,
}

impl ApiError {
    /// An error with status 400.
    pub fn bad(code: i64, msg: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code,
            msg: msg.into(),
        }
    }

    /// Binance's -1102 for a missing or malformed parameter.
    pub fn mandatory(name: &str) -> ApiError {
        ApiError::bad(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    /// The answer frame for request `id`.
    pub fn answer(&self, id: &Value) -> Value {
        json!({ "id": id, "status": self.status, "error": { "code": self.code, "msg": self.msg } })
    }
}

/// The id of a request, kept only when it is a string, a number or null, and short.
fn id_of(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if s.chars().count() <= MAX_ID_LEN => Value::String(s.clone()),
        Some(Value::Number(n)) => Value::Number(n.clone()),
        _ => Value::Null,
    }
}

/// Parses one text frame; the error carries the id to answer with (null when unreadable).
pub fn parse(text: &str) -> Result<Call, (Value, ApiError)> {
    let invalid = |id: Value| (id, ApiError::bad(-1135, "Invalid JSON Request"));
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) else {
        return Err(invalid(Value::Null));
    };
    let id = id_of(obj.get("id"));
    match obj.get("id") {
        None | Some(Value::Null | Value::Number(_)) => {}
        Some(Value::String(s)) if s.chars().count() <= MAX_ID_LEN => {}
        Some(_) => return Err((Value::Null, ApiError::bad(-1135, "Invalid 'id' in JSON request."))),
    }
    let method = match obj.get("method") {
        Some(Value::String(m)) => match Method::of(m) {
            Some(m) => m,
            None => return Err((id, ApiError::bad(-1020, format!("Unknown method '{}'.", short(m))))),
        },
        _ => return Err((id, ApiError::bad(-1135, "Invalid 'method' in JSON request."))),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err((
                id,
                ApiError::bad(-1135, "Invalid 'params' in JSON request; expected an object."),
            ));
        }
    };
    Ok(Call { id, method, params })
}

/// At most 40 characters of `s`, for echoing a client's text in a message.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A string parameter, non-empty; numbers are taken in their JSON form.
pub fn text_param(params: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match params.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ApiError::mandatory(name)),
    }
}

/// The optional `subscriptionId` of `userDataStream.unsubscribe`.
pub fn subscription_id(params: &Map<String, Value>) -> Result<Option<u32>, ApiError> {
    match params.get("subscriptionId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ApiError::mandatory("subscriptionId")),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| ApiError::mandatory("subscriptionId")),
        Some(_) => Err(ApiError::mandatory("subscriptionId")),
    }
}

/// Whether `returnRateLimits` was sent as false.
pub fn rate_limits_wanted(params: &Map<String, Value>) -> bool {
    !matches!(params.get("returnRateLimits"), Some(Value::Bool(false)))
}

/// A parameter's value as it enters the signed payload; `python_bools`
/// writes booleans as `True`/`False` (what clients built on Python's
/// `urlencode` sign). Objects and arrays are their compact JSON.
fn render(v: &Value, python_bools: bool) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) if python_bools => if *b { "True" } else { "False" }.to_owned(),
        other => other.to_string(),
    }
}

/// The payloads a client may have signed for these parameters: every one but
/// `signature`, sorted by name, `name=value` joined with `&`; raw and
/// percent-encoded (since 2026-01-15 Binance wants signed payloads encoded),
/// booleans as JSON or as Python writes them. Duplicates are removed.
/// The `signature` parameter comes back beside them.
pub fn signed_payloads(params: &Map<String, Value>) -> (Vec<String>, Option<String>) {
    let signature = params.get("signature").and_then(Value::as_str).map(str::to_owned);
    let sorted: BTreeMap<&str, &Value> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "signature")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let mut out = Vec::new();
    for python_bools in [false, true] {
        let pairs: Vec<(&str, String)> = sorted.iter().map(|(k, v)| (*k, render(v, python_bools))).collect();
        let raw = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        for p in [raw, encoded] {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    (out, signature)
}

/// The methods a listen-key stream takes from its client.
pub const STREAM_METHODS: [&str; 6] = [
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST_SUBSCRIPTIONS",
    "SET_PROPERTY",
    "GET_PROPERTY",
    "REQUEST",
];

/// The most stream names one `SUBSCRIBE` may carry (Binance: 1,024 streams per connection).
pub const MAX_STREAM_PARAMS: usize = 1_024;

/// A frame a listen-key stream's client sent: `{"method", "params", "id"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamCall {
    /// The request id, echoed.
    pub id: Value,
    /// One of [`STREAM_METHODS`].
    pub method: &'static str,
    /// The string parameters (stream names: listen keys here), at most [`MAX_STREAM_PARAMS`].
    pub params: Vec<String>,
}

/// Parses a frame sent on a listen-key stream, or gives the market streams'
/// error frame for it (code 3 for invalid JSON, 2 for an unknown method or
/// bad parameters).
pub fn stream_request(text: &str) -> Result<StreamCall, Value> {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else {
        return Err(json!({ "error": { "code": 3, "msg": "Invalid JSON: expected an object" }, "id": null }));
    };
    let id = id_of(obj.get("id"));
    let invalid = |msg: &str| json!({ "error": { "code": 2, "msg": format!("Invalid request: {msg}") }, "id": id });
    let Some(method) = obj
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| STREAM_METHODS.iter().find(|k| **k == m))
    else {
        return Err(invalid("unknown method"));
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_STREAM_PARAMS => {
            a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        Some(_) => return Err(invalid("'params' must be an array of at most 1024 stream names")),
    };
    Ok(StreamCall { id, method, params })
}

/// The answer frame of a successful request.
pub fn ok_answer(id: &Value, result: Value, rate_limits: Option<u32>) -> Value {
    let mut answer = json!({ "id": id, "status": 200, "result": result });
    if let (Some(count), Some(obj)) = (rate_limits, answer.as_object_mut()) {
        obj.insert(
            "rateLimits".into(),
            json!([{ "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": count }]),
        );
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_requests() {
        let c = parse(r#"{"id":"a1","method":"session.status"}"#).unwrap();
        assert_eq!(
            (c.id, c.method, c.params.len()),
            (json!("a1"), Method::SessionStatus, 0)
        );
        let c = parse(r#"{"id":7,"method":"userDataStream.unsubscribe","params":{"subscriptionId":3}}"#).unwrap();
        assert_eq!(subscription_id(&c.params), Ok(Some(3)));
        assert_eq!(c.id, json!(7));
    }

    #[test]
    fn hostile_requests_get_error_answers() {
        for (text, code) in [
            ("not json", -1135),
            ("[1,2]", -1135),
            (r#"{"id":1}"#, -1135),
            (r#"{"id":1,"method":"order.place"}"#, -1020),
            (r#"{"id":1,"method":"ping","params":[1]}"#, -1135),
            (r#"{"id":{"x":1},"method":"ping"}"#, -1135),
        ] {
            let (_, e) = parse(text).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{text}");
        }
        let (id, _) = parse(r#"{"id":"x","method":"nope"}"#).unwrap_err();
        assert_eq!(id, json!("x"));
        let long = format!(r#"{{"id":1,"method":"{}"}}"#, "m".repeat(5000));
        let (_, e) = parse(&long).unwrap_err();
        assert!(e.msg.len() < 100, "the message echoes at most a short prefix");
    }

    #[test]
    fn signed_payloads_are_sorted_and_exclude_the_signature() {
        let params = json!({"timestamp": 5, "apiKey": "k", "signature": "s", "returnRateLimits": false});
        let (payloads, sig) = signed_payloads(params.as_object().unwrap());
        assert_eq!(sig.as_deref(), Some("s"));
        assert_eq!(payloads[0], "apiKey=k&returnRateLimits=false&timestamp=5");
        assert!(payloads.contains(&"apiKey=k&returnRateLimits=False&timestamp=5".to_owned()));
        let enc = json!({"apiKey": "a b", "timestamp": 1});
        let (payloads, _) = signed_payloads(enc.as_object().unwrap());
        assert_eq!(payloads, ["apiKey=a b&timestamp=1", "apiKey=a+b&timestamp=1"]);
    }

    #[test]
    fn stream_frames() {
        assert_eq!(stream_request("{").unwrap_err()["error"]["code"], json!(3));
        assert_eq!(stream_request(r#"{"method":"X","id":2}"#).unwrap_err()["id"], json!(2));
        let c = stream_request(r#"{"method":"SUBSCRIBE","params":["k1",2,"k2"],"id":1}"#).unwrap();
        assert_eq!(
            (c.method, c.params),
            ("SUBSCRIBE", vec!["k1".to_owned(), "k2".to_owned()])
        );
        assert!(stream_request(r#"{"method":"SUBSCRIBE","params":"k1"}"#).is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(
            ApiError::mandatory("apiKey").answer(&json!(1))["error"]["code"],
            json!(-1102)
        );
        let a = ok_answer(&json!("x"), json!({}), Some(2));
        assert_eq!(a["rateLimits"][0]["count"], json!(2));
        assert!(ok_answer(&json!("x"), json!({}), None).get("rateLimits").is_none());
    }
}
