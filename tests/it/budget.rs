//! The request-weight budget end to end, against the simulator enforcing a
//! small per-IP limit in windows of a second while a background load stands
//! for the bots on the same IP: hundreds of accounts cold-start paced, with no
//! 429, in at most 1.5 times the least time the budget allows; the same burst
//! from a client that ignores the budget is refused by the same simulator; and
//! a ban on one egress address leaves the accounts behind another untouched.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::common::{eventually, start_sim};
use listenkeyd::Keeper;
use listenkeyd::config::Config;
use listenkeyd::keeper::Options;
use listenkeyd::state::Status;
use listenkeyd_sim::SimConfig;
use listenkeyd_sim::weight::{Limit, Rules};
use tokio_util::sync::CancellationToken;

/// Accounts cold-starting at once, one USD-M stream each.
const ACCOUNTS: usize = 200;
/// The simulator's `fapi` limit per window, and its window.
const LIMIT: u64 = 100;
const WINDOW: Duration = Duration::from_secs(1);
/// The bots' weight per window: 60 % of the limit.
const BOTS: u64 = 60;
/// `[limits] share`'s default.
const SHARE: f64 = 0.25;

fn sim_config() -> SimConfig {
    SimConfig {
        weights: Rules {
            limits: vec![(
                "fapi".into(),
                Limit {
                    limit: LIMIT,
                    window: WINDOW,
                },
            )],
            background: vec![("fapi".into(), BOTS)],
            ban_base: Duration::from_secs(30),
            ..Rules::default()
        },
        ..SimConfig::default()
    }
}

fn account(url: &str, name: &str, egress: Option<&str>) -> String {
    let egress = egress.map(|e| format!("egress = \"{e}\"\n")).unwrap_or_default();
    format!(
        "[[accounts]]\nname = \"{name}\"\nvenue = \"binance\"\nbase_url = \"{url}\"\napi_key = \"{name}-key\"\n{egress}[[accounts.streams]]\nkind = \"usdm-futures\"\n"
    )
}

fn start(text: &str) -> (Keeper, CancellationToken) {
    try_start(text).unwrap_or_else(|e| panic!("{e}"))
}

fn try_start(text: &str) -> Result<(Keeper, CancellationToken), String> {
    let config = Config::from_toml(text, HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let cancel = CancellationToken::new();
    let options = Options {
        state_file: false,
        ..Options::default()
    };
    let k = Keeper::start_with(&config, options, cancel.clone()).map_err(|e| e.to_string())?;
    Ok((k, cancel))
}

/// 429s and 418s the simulator answered `ip` on `fapi`.
fn refused(sim: &listenkeyd_sim::SimHandle, ip: &str) -> (u64, u64) {
    sim.weight_usage()
        .iter()
        .filter(|u| u.ip == ip && u.family == "fapi")
        .fold((0, 0), |(a, b), u| (a + u.refused_429, b + u.refused_418))
}

/// `count` listen-key creations at once from `ip`, ignoring every budget:
/// the statuses answered.
async fn burst(url: &str, ip: &str, count: usize) -> Vec<u16> {
    let http = reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let sends = (0..count).map(|i| {
        let http = http.clone();
        let url = format!("{url}/fapi/v1/listenKey");
        async move {
            let r = http
                .post(url)
                .header("X-MBX-APIKEY", format!("burst-{i}-key"))
                .send()
                .await;
            r.map_or(0, |r| r.status().as_u16())
        }
    });
    futures_util::future::join_all(sends).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_of_hundreds_of_accounts_is_paced_without_a_429() {
    let sim = start_sim(sim_config()).await;
    let url = sim.handle.url();
    let accounts: String = (0..ACCOUNTS)
        .map(|i| account(&url, &format!("a{i:03}"), None))
        .collect();
    // A port free a moment ago may have been taken since by another test: take another.
    let (port, (k, cancel)) = (0..5)
        .find_map(|_| {
            let port = crate::common::free_port();
            let text = format!("[api]\nlisten = \"127.0.0.1:{port}\"\n{accounts}");
            match try_start(&text) {
                Ok(started) => Some((port, started)),
                Err(e) if e.contains("cannot listen") => None,
                Err(e) => panic!("{e}"),
            }
        })
        .expect("a free port for the API");
    let started = Instant::now();
    // The metrics while the cold start lasts: the most requests seen waiting, and the limit learned.
    let scrape = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (mut most_queued, mut limit_line) = (0u64, None);
        while started.elapsed() < Duration::from_secs(6) {
            if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await
                && let Ok(text) = r.text().await
            {
                for line in text.lines() {
                    if line.starts_with("listenkeyd_weight_queue{") && line.contains(r#"family="fapi""#) {
                        let n = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        most_queued = most_queued.max(n);
                    }
                    if line.starts_with("listenkeyd_weight_limit{") && line.contains(r#"family="fapi""#) {
                        limit_line = Some(line.to_owned());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (most_queued, limit_line)
    });
    let ids: Vec<String> = (0..ACCOUNTS).map(|i| format!("a{i:03}/usdm-futures")).collect();
    let mut most_waiting = 0;
    eventually(Duration::from_secs(40), "every account published", || {
        let fresh = ids
            .iter()
            .filter(|id| k.subscribe(id).is_some_and(|rx| rx.borrow().status == Status::Fresh))
            .count();
        most_waiting = most_waiting.max(ACCOUNTS - fresh);
        (fresh == ACCOUNTS).then_some(())
    })
    .await;
    let took = started.elapsed();
    // The keeper's share of a window, the exchangeInfo question included.
    let per_window = (SHARE * LIMIT as f64) as u64;
    let windows = (ACCOUNTS as u64 + 1).div_ceil(per_window);
    let least = WINDOW * (windows as u32 - 1);
    eprintln!(
        "cold start of {ACCOUNTS} accounts: {took:?}, the budget's least time {least:?}; 429/418 from the keeper's IP: {:?}",
        refused(&sim.handle, "127.0.0.1")
    );
    assert_eq!(
        refused(&sim.handle, "127.0.0.1"),
        (0, 0),
        "the keeper caused no 429 or 418"
    );
    assert!(took >= least.saturating_sub(WINDOW), "{took:?}: paced, not burst");
    assert!(
        took.as_secs_f64() <= 1.5 * least.as_secs_f64(),
        "{took:?} > 1.5 × {least:?}"
    );
    let (most_queued, limit_line) = scrape.await.unwrap();
    eprintln!("most requests seen waiting in the metrics: {most_queued}; {limit_line:?}");
    assert!(
        most_queued > 50,
        "the queue shows in the metrics while it lasts: {most_queued}"
    );
    let limit_line = limit_line.expect("the limit shows in the metrics");
    assert!(
        limit_line.contains(r#"source="exchange",window_seconds="1"} 100"#),
        "learned from exchangeInfo: {limit_line}"
    );
    cancel.cancel();
    k.join().await;

    // The same burst, sent at once from another address, is refused.
    let statuses = burst(&url, "127.0.0.2", ACCOUNTS).await;
    let limited = statuses.iter().filter(|s| matches!(s, 429 | 418)).count();
    eprintln!("the same burst ignoring the budget: {limited} of {ACCOUNTS} refused");
    assert!(limited > ACCOUNTS / 2, "{statuses:?}");
    let (r429, r418) = refused(&sim.handle, "127.0.0.2");
    assert!(r429 + r418 > 0);
}

/// Two accounts, each behind its own egress address: a client on the first
/// address that ignores the budget earns it a ban (418), the keeper's account
/// there honours the ban's `Retry-After` after one refusal, and the account
/// on the second address goes on keeping its key alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_egress_address_leaves_the_other_untouched() {
    let sim = start_sim(SimConfig {
        listen_key_ttl: Duration::from_secs(4),
        ..sim_config()
    })
    .await;
    let url = sim.handle.url();
    let timing = "[binance]\nrequest_timeout = \"2s\"\n[timing]\nkeepalive_interval = \"1s\"\nlisten_key_validity = \"4s\"\njitter = 0.0\n";
    let text = format!(
        "{timing}{}{}",
        account(&url, "left", Some("127.0.0.2")),
        account(&url, "right", Some("127.0.0.3"))
    );
    let (k, cancel) = start(&text);
    let fresh = |id: &str| {
        let rx = k.subscribe(id).unwrap();
        move || (rx.borrow().status == Status::Fresh).then_some(())
    };
    eventually(Duration::from_secs(5), "left fresh", fresh("left/usdm-futures")).await;
    eventually(Duration::from_secs(5), "right fresh", fresh("right/usdm-futures")).await;

    let statuses = burst(&url, "127.0.0.2", 300).await;
    assert!(statuses.contains(&418), "the burst earned a ban: {statuses:?}");
    let banned_at = sim.handle.requests().len();
    // Three keepalive periods.
    let fp = |name: &str| listenkeyd::secret::fingerprint(&format!("{name}-key"));
    let (left_fp, right_fp) = (fp("left"), fp("right"));
    eventually(Duration::from_secs(8), "three keepalives on the right", || {
        let after = &sim.handle.requests()[banned_at..];
        let right_ok = after
            .iter()
            .filter(|r| r.api_key_fingerprint.as_deref() == Some(right_fp.as_str()) && r.status == Some(200))
            .count();
        (right_ok >= 3).then_some(())
    })
    .await;
    let after = &sim.handle.requests()[banned_at..];
    let left: Vec<_> = after
        .iter()
        .filter(|r| r.api_key_fingerprint.as_deref() == Some(left_fp.as_str()))
        .collect();
    assert!(
        left.len() <= 1,
        "the banned address waits out its Retry-After: {left:?}"
    );
    assert!(left.iter().all(|r| r.status == Some(418)), "{left:?}");
    let right = k.subscribe("right/usdm-futures").unwrap().borrow().clone();
    assert_eq!(right.status, Status::Fresh, "{right:?}");
    assert_eq!(refused(&sim.handle, "127.0.0.3"), (0, 0));
    cancel.cancel();
    k.join().await;
}
