//! The keeper against the simulator's default profile, Binance as it is today:
//! the margin risk stream is kept like any account-wide listen key, the
//! options expiry the exchange states is trusted (capped at what was asked),
//! and a stream still configured on a retired margin listen-key endpoint fails
//! with a message that names the replacement.

use std::time::{Duration, SystemTime};

use crate::common::{API_KEY, eventually, start_sim};
use listenkeyd::Keeper;
use listenkeyd::Options;
use listenkeyd::config::{Config, Url};
use listenkeyd::secret::Secret;
use listenkeyd::state::{Status, StreamState};
use listenkeyd::stream::{CredentialKind, Kind, StreamSpec};
use listenkeyd_sim::SimConfig;
use tokio_util::sync::CancellationToken;

fn config(url: &str, streams: impl IntoIterator<Item = StreamSpec>) -> Config {
    Config::builder()
        .base_url(Url::parse(url).unwrap())
        .api_key(Secret::new(API_KEY))
        .request_timeout(Duration::from_secs(2))
        .streams(streams)
        .build()
        .unwrap()
}

fn start(config: &Config) -> (Keeper, CancellationToken) {
    let cancel = CancellationToken::new();
    let options = Options {
        state_file: false,
        ..Options::default()
    };
    (Keeper::start_with(config, options, cancel.clone()).unwrap(), cancel)
}

async fn settled(k: &Keeper, id: &str, status: Status) -> StreamState {
    let rx = k.subscribe(id).unwrap();
    eventually(Duration::from_secs(5), id, || {
        let s = rx.borrow().clone();
        (s.status == status && s.started()).then_some(s)
    })
    .await
}

fn left(s: &StreamState) -> Duration {
    let exp = s.held.as_ref().unwrap().expires_at;
    exp.duration_since(SystemTime::now()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn margin_risk_and_options_keys_with_the_stated_expiry() {
    // The exchange's keys live 20 s; listenkeyd assumes 60 min unless told otherwise.
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(20),
        ..SimConfig::default()
    })
    .await;
    let cfg = config(
        &sim.handle.url(),
        [Kind::MarginRisk, Kind::Options, Kind::UsdmFutures].map(StreamSpec::account_wide),
    );
    let (k, cancel) = start(&cfg);
    let risk = settled(&k, "margin-risk", Status::Fresh).await;
    let options = settled(&k, "options", Status::Fresh).await;
    let usdm = settled(&k, "usdm-futures", Status::Fresh).await;
    let live = sim.handle.active();
    let value = |s: &StreamState| s.held.as_ref().unwrap().value.clone();
    assert!(live.iter().any(|c| c.scope == "margin-risk" && c.value == value(&risk)));
    let reqs = crate::common::calls(&sim.handle);
    assert!(
        reqs.iter()
            .any(|r| r.method == "POST" && r.path == "/sapi/v1/margin/listen-key"),
        "{reqs:?}"
    );
    // Options states its expiry: planned with the exchange's 20 s, not the assumed hour.
    assert!(left(&options) <= Duration::from_secs(20), "{:?}", left(&options));
    assert!(left(&options) > Duration::from_secs(10));
    // USD-M states none: the configured lifetime is assumed.
    assert!(left(&usdm) > Duration::from_secs(50 * 60));
    assert!(left(&risk) > Duration::from_secs(50 * 60));
    // The options keepalive is planned within the stated lifetime, not 30 minutes out.
    let next = k.subscribe("options").unwrap().borrow().next_at.unwrap();
    assert!(next.duration_since(SystemTime::now()).unwrap_or_default() < Duration::from_secs(20));
    cancel.cancel();
    k.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stated_options_lifetime_also_bounds_its_keepalives() {
    // Keys of 3 s: the keepalive answers `{}`, stating nothing; the lifetime the
    // create answer stated still applies, so the key is kept alive in time.
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(3),
        ..SimConfig::default()
    })
    .await;
    let cfg = config(&sim.handle.url(), [StreamSpec::account_wide(Kind::Options)]);
    let (k, cancel) = start(&cfg);
    let rx = k.subscribe("options").unwrap();
    let kept = eventually(Duration::from_secs(5), "a keepalive", || {
        let s = rx.borrow().clone();
        let h = s.held.as_ref()?;
        (h.refreshed_at > h.obtained_at).then_some(s)
    })
    .await;
    let h = kept.held.as_ref().unwrap();
    let planned = h.expires_at.duration_since(h.refreshed_at).unwrap();
    assert!(planned <= Duration::from_secs(3), "{planned:?}: not the assumed hour");
    assert!(sim.handle.is_live(&h.value));
    assert!(crate::common::calls(&sim.handle).iter().any(|r| r.method == "PUT"));
    cancel.cancel();
    k.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_margin_listen_key_fails_and_names_listen_tokens() {
    let sim = start_sim(SimConfig::default()).await;
    let cfg = config(
        &sim.handle.url(),
        [
            StreamSpec::isolated_margin("BTCUSDT").with_credential(CredentialKind::ListenKey),
            StreamSpec::isolated_margin("ETHUSDT"),
        ],
    );
    let (k, cancel) = start(&cfg);
    let retired = settled(&k, "isolated-margin:BTCUSDT", Status::Failed).await;
    let err = retired.last_error.unwrap();
    assert!(err.contains("410") && err.contains("listen-token"), "{err}");
    settled(&k, "isolated-margin:ETHUSDT", Status::Fresh).await;
    cancel.cancel();
    k.join().await;
}
