//! Embedding listenkeyd in a Rust program: keep a USD-M listen key fresh
//! in-process and react to each new generation, against the simulator so the
//! example runs anywhere (`cargo run --example embed`).
//!
//! A real program leaves out `base_url` (or loads its config with
//! `Config::load(None)`) to talk to Binance; everything else stays the same.

use std::time::Duration;

use listenkeyd::config::{Config, Url};
use listenkeyd::secret::Secret;
use listenkeyd::stream::{Kind, StreamSpec};
use listenkeyd::{Keeper, Options};
use listenkeyd_sim::{self as sim, SimConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cancel = CancellationToken::new();
    // A simulated exchange whose keys live 4 s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_config = SimConfig {
        listen_key_ttl: Duration::from_secs(4),
        ..SimConfig::default()
    };
    let exchange = sim::start(listener, sim_config, cancel.clone()).await;

    let config = Config::builder()
        .base_url(Url::parse(&exchange.url())?)
        .api_key(Secret::new("example-key"))
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .keepalive_interval(Duration::from_secs(1))
        .listen_key_validity(Duration::from_secs(4))
        .build()?;
    // No state file for an embedded keeper: the watch channel is the interface.
    let options = Options {
        state_file: false,
        ..Options::default()
    };
    let keeper = Keeper::start_with(&config, options, cancel.clone())?;

    let mut usdm = keeper.subscribe("usdm-futures").expect("configured");
    let mut generation = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(6));
    tokio::pin!(deadline);
    // Halfway through, the exchange drops the key: a new generation follows.
    let revoke = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(revoke);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut revoke, if !revoke.is_elapsed() => { exchange.revoke_scope("usdm-futures"); }
            changed = usdm.changed() => {
                changed?;
                let state = usdm.borrow_and_update().clone();
                if let Some(held) = &state.held {
                    if held.generation != generation {
                        generation = held.generation;
                        // Here a bot would (re)connect wss://fstream.binance.com/ws/<value>.
                        println!("generation {generation}: key {} ({})",
                            listenkeyd::secret::fingerprint(&held.value), state.status);
                    }
                }
            }
        }
    }
    cancel.cancel();
    keeper.join().await;
    Ok(())
}
