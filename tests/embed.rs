//! The library as a program embeds it: a config built from Rust values, a
//! keeper without a state file, and hooks that still run, since they follow
//! the hub on their own rather than the state-file writer.

mod common;

use std::time::Duration;

use common::{API_KEY, eventually, start_sim};
use listenkeyd::config::{Config, Hook, HookAction, Url};
use listenkeyd::secret::Secret;

use listenkeyd::stream::{Kind, StreamSpec};
use listenkeyd::{Keeper, Options};
use listenkeyd_sim::SimConfig;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_for_an_embedded_keeper_without_a_state_file() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.out");
    let script = format!(
        "echo \"$LISTENKEYD_STREAM $LISTENKEYD_GENERATION ${{LISTENKEYD_STATE_FILE:-no-state-file}}\" >> {}",
        out.display()
    );
    let config = Config::builder()
        .base_url(Url::parse(&sim.handle.url()).unwrap())
        .api_key(Secret::new(API_KEY))
        .stream(StreamSpec::account_wide(Kind::UsdmFutures))
        .hook(Hook {
            action: HookAction::Exec(vec!["sh".into(), "-c".into(), script]),
            timeout: Duration::from_secs(5),
            streams: None,
        })
        // Never written: the keeper runs without a state file.
        .state_file(dir.path().join("keys.json"))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let options = Options {
        state_file: false,
        ..Options::default()
    };
    let keeper = Keeper::start_with(&config, options, cancel.clone()).unwrap();
    let line = eventually(Duration::from_secs(5), "the hook's run", || {
        std::fs::read_to_string(&out).ok().filter(|t| t.ends_with('\n'))
    })
    .await;
    assert_eq!(line, "usdm-futures 1 no-state-file\n");
    assert!(!dir.path().join("keys.json").exists());
    cancel.cancel();
    keeper.join().await;
}
