//! The simulator's view of one HTTP exchange: a request already read into
//! memory ([`SimRequest`]) and the answer to send ([`Reply`]): JSON, except
//! the HTML pages Binance's front servers send for unknown and retired paths.

use std::collections::BTreeMap;

use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

/// One request, read whole, with its parameters decoded.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// The method, upper case.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (still percent-encoded), empty when absent.
    pub query: String,
    /// The raw body (form-encoded parameters, or JSON for the admin endpoints).
    pub body: String,
    /// The `X-MBX-APIKEY` header, when sent.
    pub api_key: Option<String>,
    /// Query and form-body parameters, decoded; the query wins.
    pub params: BTreeMap<String, String>,
    /// The venue addressed: the path's prefix, else the simulator's default.
    pub venue: crate::venue::Venue,
    /// The venue prefix taken off `path` (`/mexc`), empty when there was none.
    pub prefix: String,
    /// Headers other venues sign with (`x-api-timestamp`, `x-api-signature`), lower-case names.
    pub headers: BTreeMap<String, String>,
}

impl SimRequest {
    /// Builds a request from its parts; a form body adds parameters the query lacks.
    pub fn new(method: &str, path: &str, query: Option<&str>, body: String, api_key: Option<String>) -> SimRequest {
        let query = query.unwrap_or("").to_owned();
        let mut params = BTreeMap::new();
        let body_is_form = !body.trim_start().starts_with(['{', '[']);
        let body_params = if body_is_form { body.as_str() } else { "" };
        for (k, v) in url::form_urlencoded::parse(body_params.as_bytes()) {
            params.insert(k.into_owned(), v.into_owned());
        }
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            params.insert(k.into_owned(), v.into_owned());
        }
        SimRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            query,
            body,
            api_key,
            params,
            venue: crate::venue::Venue::default(),
            prefix: String::new(),
            headers: BTreeMap::new(),
        }
    }

    /// A header kept in [`SimRequest::headers`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// A decoded parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// The answer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (Content-Type is JSON unless one of them says otherwise).
    pub headers: Vec<(String, String)>,
    /// The body, JSON text.
    pub body: String,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, value: serde_json::Value) -> Reply {
        Reply::raw(status, value.to_string())
    }

    /// A body sent as is.
    pub fn raw(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A Binance error body `{"code":…,"msg":…}`.
    pub fn error(status: u16, code: i64, msg: &str) -> Reply {
        Reply::json(status, serde_json::json!({ "code": code, "msg": msg }))
    }

    /// Binance's -1102 for a missing or malformed parameter.
    pub fn mandatory(name: &str) -> Reply {
        Reply::error(
            400,
            -1102,
            &format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    /// Binance's -1125 for an unknown or expired listen key.
    pub fn no_such_key() -> Reply {
        Reply::error(400, -1125, "This listenKey does not exist.")
    }

    /// The 404 for a path the simulator does not serve: what Binance's front
    /// servers answer, nginx's HTML page rather than a JSON error code.
    pub fn not_found() -> Reply {
        Reply::html(404, "404 Not Found")
    }

    /// The 410 of a retired endpoint, as Binance answers spot and margin
    /// listen-key requests since 2026-02-20: the status, and no JSON error code.
    pub fn gone() -> Reply {
        Reply::html(410, "410 Gone")
    }

    /// An nginx-style HTML error page titled `title`.
    fn html(status: u16, title: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            ),
        }
    }

    /// The hyper response; unusable extra headers are skipped.
    pub fn into_response(self) -> Response<String> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.insert(n, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wins_over_form_body() {
        let r = SimRequest::new("post", "/x", Some("a=1&b=%2B"), "a=2&c=3".into(), None);
        assert_eq!(r.method, "POST");
        assert_eq!(
            (r.param("a"), r.param("b"), r.param("c")),
            (Some("1"), Some("+"), Some("3"))
        );
        let r = SimRequest::new("POST", "/x", None, r#"{"a":1}"#.into(), None);
        assert!(r.params.is_empty());
    }
}
