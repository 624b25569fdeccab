//! Where every publisher starts: the one place that turns the hub's channels
//! into the outputs consumers read.
//!
//! A publisher reads the [`Hub`] (its `watch` channels, its change signal or
//! its event broadcast) and nothing else of the keeper; none calls another.
//! They are, in start order:
//!
//! | publisher | module | runs when | reads |
//! |---|---|---|---|
//! | state file | [`crate::publishers::state_file::writer`] | `Options::state_file` | the hub |
//! | hooks | [`crate::publishers::hooks`] | `[[hooks]]` are configured | the hub; with a state file, the generations on disk |
//! | local API | [`crate::publishers::api`] | `api.listen` is set | the hub; the writer's health for `/readyz` |
//! | systemd notify | [`crate::publishers::systemd`] | `Options::systemd` and `$NOTIFY_SOCKET` | the hub; the writer's health for `READY=1` |
//! | Redis | [`crate::publishers::redis`] | `[redis]` is set | the hub; in lease mode, this replica's role per account |
//!
//! The only links between them are `watch` receivers handed out here: the
//! writer's health ([`WriterStatus`]) and the generations it has put on disk,
//! so that a hook that reads the state file finds the value it was run for.
//! Without a state file those receivers never change, and hooks run as soon
//! as the hub shows a new generation.
//!
//! A new publisher (another store, another notifier) is one more step in
//! [`start`]: it takes a clone of the hub (and, if it must, one of the
//! receivers above), spawns its task into [`Running::tasks`] when the keeper
//! must wait for it at shutdown, and stops when `cancel` fires. It must never
//! block a scheduler: read the channels, never hold their borrow across an
//! `.await`.

pub mod api;
pub mod hooks;
pub mod metrics;
pub mod procfs;
pub mod redis;
pub mod state_file;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::publishers::metrics::Metrics;
use crate::publishers::state_file::writer::{self, OnDisk, WriterStatus};
use crate::hub::Hub;
use crate::state::Document;

/// What the publishers share.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The resolved config (hooks, API settings, state-file mode).
    pub config: &'a Config,
    /// Every stream's channel.
    pub hub: &'a Hub,
    /// The metrics registry.
    pub metrics: &'a Arc<Metrics>,
    /// The time seam.
    pub clock: &'a SharedClock,
    /// Fired on shutdown: every publisher but the writer stops on it.
    pub cancel: &'a CancellationToken,
    /// The state file to write and the previous run's document, when the
    /// keeper writes one.
    pub state_file: Option<(PathBuf, Option<Document>)>,
    /// The local API's listener, bound before anything started.
    pub api: Option<crate::publishers::api::Bound>,
    /// Whether to speak systemd's notify protocol.
    pub systemd: bool,
    /// In lease mode, this replica's role per account (the Redis publisher
    /// writes only what it holds; `/readyz` shows them).
    pub roles: &'a crate::replicas::Roles,
}

/// The running publishers.
#[derive(Debug)]
pub(crate) struct Running {
    /// Publishers that end on `cancel` and are awaited before the writer's
    /// last write (the API, systemd notify).
    pub tasks: JoinSet<()>,
    /// The state-file writer, stopped only after the schedulers, so that its
    /// last write holds their last states.
    pub writer: JoinSet<()>,
    /// Tells the writer to write a last time and stop.
    pub writer_stop: CancellationToken,
}

/// Starts every configured publisher; see the module documentation.
pub(crate) fn start(ctx: Context<'_>) -> Running {
    let Context {
        config,
        hub,
        metrics,
        clock,
        cancel,
        state_file,
        api,
        systemd,
        roles,
    } = ctx;
    let mut tasks = JoinSet::new();
    let mut writer_set = JoinSet::new();
    let writer_stop = CancellationToken::new();
    let (status_tx, writer_status) = watch::channel(WriterStatus::default());
    let (on_disk_tx, on_disk) = watch::channel(OnDisk::default());

    // 1. The state file.
    let path = state_file.as_ref().map(|(p, _)| p.clone());
    // Readers of the writer's health that wait for a first write: none without a file.
    let written = path.is_some().then(|| writer_status.clone());
    if let Some((path, prior)) = state_file {
        let w = writer::Writer {
            path,
            mode: config.state.mode,
            clock: clock.clone(),
            outcomes: {
                let metrics = metrics.clone();
                writer::WriteOutcomes::new(move |ok| metrics.state_write(ok))
            },
            on_disk: on_disk_tx,
            prior,
        };
        writer_set.spawn(writer::supervised(hub.clone(), w, writer_stop.clone(), status_tx));
    }

    // 2. Hooks: on their own subscription to the hub; with a state file they
    // wait until the new generation is on disk.
    let gate = path.map(|p| (p, on_disk));
    crate::publishers::hooks::start(&config.hooks, hub, gate, metrics.clone(), cancel.clone());

    // 3. The local API.
    if let Some(bound) = api {
        tracing::info!(listen = %bound.describe(), "local API listening");
        let state = crate::publishers::api::ApiState {
            hub: hub.clone(),
            writer: writer_status.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            cancel: cancel.clone(),
            roles: roles.clone(),
        };
        tasks.spawn(crate::publishers::api::serve(bound, state, config.api.clone()));
    }

    // 4. systemd notify.
    if systemd {
        tasks.spawn(crate::publishers::systemd::run(hub.clone(), written, clock.clone(), cancel.clone()));
    }

    // 5. Redis: on its own task, never awaited by anything above.
    if let Some(redis) = &config.redis {
        start_redis(redis, &config.ha, hub, roles, metrics, cancel, &mut tasks);
    }

    Running {
        tasks,
        writer: writer_set,
        writer_stop,
    }
}

/// Starts the Redis publisher on `tasks`.
fn start_redis(
    redis: &crate::config::Redis,
    ha: &crate::config::Ha,
    hub: &Hub,
    roles: &crate::replicas::Roles,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    match crate::publishers::redis::publisher_task(redis, ha, hub, roles, metrics.clone(), cancel.clone()) {
        Ok(t) => {
            tasks.spawn(t);
        }
        // The config's checks build the same client: not expected.
        Err(e) => tracing::error!(error = %e, "cannot publish to Redis"),
    }
}
