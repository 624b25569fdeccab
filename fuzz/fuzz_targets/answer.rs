//! Fuzzes how the Binance client reads and classifies an answer: status,
//! headers (`Retry-After`), body (JSON or not, chunked, cut off), through the
//! real `binance::Client` (`obtain`, `keepalive`, `close`) talking HTTP to an
//! in-process server on 127.0.0.1 that sends the answers the input describes.
//!
//! Input (text, so seeds read like the answers they stand for):
//!
//! ```text
//! obtain usdm key signed chunked      <- call, kind, credential; flags
//! 429                                 <- status
//! Retry-After: 7                      <- headers, up to an empty line
//!
//! {"code":-1003,"msg":"slow down"}    <- body
//! ```
//!
//! Words on the first line: a call (`obtain` `keepalive` `close`), a kind
//! (`isolated` `cross` `usdm` `coinm` `pm` `options`), a credential (`key`
//! `token`), `signed` (an HMAC signer is configured) and a transfer (`chunked`:
//! the body in small chunks; `cut`: the connection is aborted mid-body).
//! Several answers are separated by a line holding only `---`; requests get
//! them in order, the last one repeating (a -1021 answer triggers a server-time
//! request and a retry). In bodies, `$K` stands for the listen key the client
//! sends and `$A` for its API key, so an answer can echo them.
//!
//! Beyond "never panics" (and never hangs: requests time out after 2 s) it
//! checks the promises about secrets: no error shows the listen key or the
//! API key in full, and a success never yields an empty credential.
//! Framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`) are
//! the transport's and are not taken from the input; informational statuses
//! (1xx) never reach the client's code and are skipped.
#![no_main]

#[path = "../common/text.rs"]
mod text;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use listenkeyd::exchange::client::Client;
use listenkeyd::config::Signer;
use listenkeyd::clock::SystemClock;
use listenkeyd::config::{Account, Binance};
use listenkeyd::secret::Secret;
use listenkeyd::stream::{CredentialKind, Kind, StreamSpec};
use text::{find, split};
use tokio::runtime::Runtime;
use url::Url;

/// The API key the client sends; no error may show it.
const API_KEY: &str = "ak-FUZZ-apikey-3c9d0e7f21";
/// The listen key kept alive or closed; no error may show it in full.
const LISTEN_KEY: &str = "lk-FUZZ-listenkey-8a6b4f2d0c";

/// When the credential a call serves expires: the budget queues calls by
/// it; the epoch puts every call first.
const URGENT: std::time::SystemTime = std::time::SystemTime::UNIX_EPOCH;

/// How the body goes out.
#[derive(Clone, Copy, PartialEq)]
enum Transfer {
    /// With a length.
    Full,
    /// In chunks of a few bytes.
    Chunked,
    /// Half of it, then the connection is aborted.
    Cut,
}

/// One answer to send.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

/// The answers of the current input and how many have been sent.
#[derive(Default)]
struct Script {
    answers: Vec<Answer>,
    transfer: Option<Transfer>,
    sent: usize,
}

/// What stays alive across inputs.
struct World {
    rt: Runtime,
    script: Arc<Mutex<Script>>,
    url: Url,
    /// Unsigned and signed clients; replaced when a rate limit closed its gate,
    /// so each input starts from an open gate.
    clients: Mutex<[Option<Arc<Client>>; 2]>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let served = script.clone();
        std::thread::spawn(move || serve(listener, served));
        World {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            script,
            url: Url::parse(&format!("http://{addr}/")).expect("url"),
            clients: Mutex::new([None, None]),
        }
    })
}

/// The answering server, on its own thread and runtime.
fn serve(listener: std::net::TcpListener, script: Arc<Mutex<Script>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let reply = next_reply(&script);
                    async move { Ok::<_, Infallible>(reply) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// The next scripted answer as a response.
fn next_reply(script: &Mutex<Script>) -> Response<BoxBody<Bytes, std::io::Error>> {
    let mut s = script.lock().unwrap_or_else(|e| e.into_inner());
    let i = s.sent.min(s.answers.len().saturating_sub(1));
    s.sent += 1;
    let transfer = s.transfer.unwrap_or(Transfer::Full);
    let answer = s.answers.get(i).cloned().unwrap_or(Answer {
        status: StatusCode::OK,
        headers: Vec::new(),
        body: Bytes::new(),
    });
    let body = match transfer {
        Transfer::Full => Full::new(answer.body).map_err(|e| match e {}).boxed(),
        Transfer::Chunked | Transfer::Cut => {
            let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = Vec::new();
            let keep = if transfer == Transfer::Cut {
                answer.body.len() / 2
            } else {
                answer.body.len()
            };
            for chunk in answer.body.slice(..keep).chunks(7) {
                frames.push(Ok(Frame::data(Bytes::copy_from_slice(chunk))));
            }
            if transfer == Transfer::Cut {
                frames.push(Err(std::io::Error::other("cut")));
            }
            StreamBody::new(futures_util::stream::iter(frames)).boxed()
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = answer.status;
    for (n, v) in answer.headers {
        resp.headers_mut().append(n, v);
    }
    resp
}

/// Which client call an input makes.
#[derive(Clone, Copy)]
enum Call {
    Obtain,
    Keepalive,
    Close,
}

/// One input, parsed.
struct Case {
    call: Call,
    spec: StreamSpec,
    signed: bool,
    transfer: Option<Transfer>,
    answers: Vec<Answer>,
}

/// Parses the input; `None` when it describes nothing sendable.
fn parse(data: &[u8]) -> Option<Case> {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let (mut call, mut kind, mut credential, mut signed, mut transfer) =
        (Call::Obtain, Kind::UsdmFutures, CredentialKind::ListenKey, false, None);
    for word in first.split(|b| *b == b' ') {
        match word {
            b"obtain" => call = Call::Obtain,
            b"keepalive" => call = Call::Keepalive,
            b"close" => call = Call::Close,
            b"isolated" => kind = Kind::IsolatedMargin,
            b"cross" => kind = Kind::CrossMargin,
            b"usdm" => kind = Kind::UsdmFutures,
            b"coinm" => kind = Kind::CoinmFutures,
            b"pm" => kind = Kind::PortfolioMargin,
            b"options" => kind = Kind::Options,
            b"key" => credential = CredentialKind::ListenKey,
            b"token" => credential = CredentialKind::ListenToken,
            b"signed" => signed = true,
            b"chunked" => transfer = Some(Transfer::Chunked),
            b"cut" => transfer = Some(Transfer::Cut),
            _ => {}
        }
    }
    let symbol = (kind == Kind::IsolatedMargin).then(|| "BTCUSDT".to_owned());
    let spec = StreamSpec::new(kind, symbol, credential);
    let mut answers = Vec::new();
    for text in split(rest, b"\n---\n").into_iter().take(4) {
        answers.push(parse_answer(text)?);
    }
    Some(Case {
        call,
        spec,
        signed,
        transfer,
        answers,
    })
}

/// One answer: a status line, header lines, an empty line, the body.
fn parse_answer(text: &[u8]) -> Option<Answer> {
    let (head, body) = match find(text, b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let status_line = lines.next()?;
    let code: u16 = std::str::from_utf8(status_line).ok()?.trim().parse().ok()?;
    let status = StatusCode::from_u16(code).ok().filter(|s| !s.is_informational())?;
    let mut headers = Vec::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        let framing = [
            hyper::header::CONTENT_LENGTH,
            hyper::header::TRANSFER_ENCODING,
            hyper::header::CONNECTION,
        ];
        if !framing.contains(&n) {
            headers.push((n, v));
        }
    }
    let body = replace(&replace(body, b"$K", LISTEN_KEY.as_bytes()), b"$A", API_KEY.as_bytes());
    Some(Answer {
        status,
        headers,
        body: Bytes::from(body),
    })
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The client for `signed`, built on first use or after a rate limit closed its gate.
fn client(w: &World, signed: bool) -> Arc<Client> {
    let mut clients = w.clients.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut clients[usize::from(signed)];
    if let Some(c) = slot.as_ref().filter(|c| c.gate_remaining(&w.url).is_zero()) {
        return c.clone();
    }
    let binance = Binance {
        margin_url: w.url.clone(),
        usdm_url: w.url.clone(),
        coinm_url: w.url.clone(),
        portfolio_margin_url: w.url.clone(),
        options_url: w.url.clone(),
        api_key: Secret::new(API_KEY),
        signer: signed.then(|| Signer::hmac(Secret::new("fuzz-hmac-secret")).expect("hmac signer")),
        request_timeout: Duration::from_secs(2),
        close_on_exit: true,
    };
    let account = Account::from_binance(&binance);
    let c = Arc::new(Client::for_account(account, Arc::new(SystemClock), Arc::default()).expect("client"));
    *slot = Some(c.clone());
    c
}

fuzz_target!(|data: &[u8]| {
    let Some(Case {
        call,
        spec,
        signed,
        transfer,
        answers,
    }) = parse(data)
    else {
        return;
    };
    let w = world();
    *w.script.lock().unwrap_or_else(|e| e.into_inner()) = Script {
        answers,
        transfer,
        sent: 0,
    };
    let client = client(w, signed);
    let outcome = w.rt.block_on(async {
        match call {
            Call::Obtain => client
                .obtain(&spec, Duration::from_secs(3600), URGENT)
                .await
                .map(|i| Some(i.value)),
            Call::Keepalive => client
                .keepalive(&spec, LISTEN_KEY, URGENT)
                .await
                .map(|i| i.map(|i| i.value)),
            Call::Close => client.close(&spec, LISTEN_KEY).await.map(|()| None),
        }
    });
    match outcome {
        Ok(Some(value)) => assert!(!value.trim().is_empty(), "an empty credential passed as a success"),
        Ok(None) => {}
        Err(e) => {
            let shown = e.to_string();
            // Only a key the client sent is its to hide (`obtain` sends none).
            let sent_key = !matches!(call, Call::Obtain);
            assert!(
                !sent_key || !shown.contains(LISTEN_KEY),
                "an error shows the listen key: {shown}"
            );
            assert!(!shown.contains(API_KEY), "an error shows the API key: {shown}");
            // A message cut at its length limit must not keep most of the key either.
            let start = &API_KEY[..12];
            let literal = data.windows(start.len()).any(|w| w == start.as_bytes());
            assert!(
                literal || !shown.contains(start),
                "an error shows the start of the API key: {shown}"
            );
        }
    }
});
