//! Supervision: after a wave of injected failures, panics and recoveries
//! (240 failures of six kinds over six tests run side by side), exactly one
//! scheduler task runs per stream (never more, even while panicked ones are
//! restarted) and every stream is fresh again.

mod common;
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::eventually;
use harness::*;
use listenkeyd::AttemptHook;
use listenkeyd_sim::SimConfig;

/// The timing of this test: 12 s keys kept alive every 2 s, 20 s tokens minted 12 s ahead, so every
/// refresh starts with at least 10 s of margin.
const TIMING_WIDE: &str = "[timing]\nkeepalive_interval = \"2s\"\nlisten_key_validity = \"12s\"\ntoken_validity = \"20s\"\ntoken_renew_before = \"12s\"\njitter = 0.1\n";

/// Transient failures of every kind, one wave per test so that the six tests run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_503s_and_panics_leaves_one_task_per_stream() {
    survives(&["* * status=503 count=40"], "SUA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_408s_and_panics_leaves_one_task_per_stream() {
    survives(&["* * status=408 count=40"], "SUB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_resets_and_panics_leaves_one_task_per_stream() {
    survives(&["* * reset count=40"], "SUC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_dropped_connections_and_panics_leaves_one_task_per_stream() {
    survives(&["* * drop count=40"], "SUD").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_garbage_and_panics_leaves_one_task_per_stream() {
    survives(&["* * status=200 count=40 body=garbage"], "SUE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_oversized_answers_and_panics_leaves_one_task_per_stream() {
    survives(&["* * status=200 pad=70000 count=40"], "SUF").await;
}

/// 24 streams meet `waves` of 40 failures each, with recovery between waves,
/// then four keys dropped server-side; every 25th attempt panics throughout.
async fn survives(waves: &[&str], prefix: &str) {
    const N: usize = 24;
    // Every 25th attempt panics inside the scheduler task.
    let attempts = Arc::new(AtomicUsize::new(0));
    let panics = Arc::new(AtomicUsize::new(0));
    let hook: AttemptHook = {
        let (attempts, panics) = (attempts.clone(), panics.clone());
        Arc::new(move |_| {
            if attempts.fetch_add(1, Ordering::SeqCst) % 25 == 24 {
                panics.fetch_add(1, Ordering::SeqCst);
                panic!("injected scheduler panic");
            }
        })
    };
    let symbols: Vec<String> = (0..N - 2).map(|i| format!("{prefix}{i:02}USDT")).collect();
    let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let streams = [
        isolated(&symbols[..N / 2], "listen-key"),
        isolated(&symbols[N / 2..], "listen-token"),
        stream("usdm-futures"),
        stream("coinm-futures"),
    ]
    .concat();
    let mut run = start_with(
        SimConfig {
            listen_key_ttl: Duration::from_secs(12),
            ..SimConfig::binance_2025()
        },
        &streams,
        // Wide margins: a wave's faults go to whichever stream asks next, and a stream near its
        // expiry retries fastest, so short lifetimes leave too thin a margin for a test whose
        // subject is the task count, not the ladder (tests/fault_matrix.rs is).
        TIMING_WIDE,
        Some(hook),
    )
    .await;
    run.all_fresh(Duration::from_secs(10)).await;
    assert_eq!(run.keeper.as_ref().unwrap().live_tasks(), N);

    // Waves of failures (about two per stream each), with recovery between waves.
    let started = Instant::now();
    for w in waves {
        run.fault(w);
        eventually(Duration::from_secs(20), "the wave spent", || {
            run.sim.handle.faults_spent().then_some(())
        })
        .await;
        // The exchange is reachable again between waves, long enough to recover.
        run.all_fresh(Duration::from_secs(15)).await;
        let live = run.keeper.as_ref().unwrap().live_tasks();
        assert!(live <= N, "{live} tasks for {N} streams");
    }
    // And a few keys dropped server-side.
    for s in &symbols[..4] {
        let id = format!("isolated-margin:{s}");
        if let Some(v) = run.value(&id) {
            run.revoked.lock().unwrap().insert(v);
        }
        run.sim.handle.revoke_scope(&id);
    }
    run.all_fresh(Duration::from_secs(15)).await;
    // A panicked task is back within its restart delay.
    eventually(Duration::from_secs(3), "one task per stream", || {
        (run.keeper.as_ref().unwrap().live_tasks() == N).then_some(())
    })
    .await;
    let injected: u64 = run.sim.handle.faults().iter().map(|f| f.applied).sum();
    assert!(injected >= 40, "{injected} failed requests injected");
    assert!(
        panics.load(Ordering::SeqCst) >= 2,
        "{} panics",
        panics.load(Ordering::SeqCst)
    );
    eprintln!(
        "supervision: {injected} failures and {} panics in {:?}; {N} tasks for {N} streams",
        panics.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert_eq!(run.keeper.as_ref().unwrap().live_tasks(), N);
    let o = run.stop().await;
    check(&o);
}
