//! listenkeyd keeps Binance user-data credentials (listen keys and listen
//! tokens) fresh for every configured stream and publishes the current value to
//! local processes: a state file, a local API, hooks, and `watch` channels for
//! Rust programs that embed it.
//!
//! # Layout
//!
//! Each room (a module or a folder of them) has one job; imports point only
//! downwards in this list, so the module graph has no cycle.
//!
//! | room | job |
//! |---|---|
//! | `cli/`, `logging` | the command line (`run`, `check-config`, `get`, `status`, `health`, `sim`, `demo`; a typed `/readyz` client) and its log setup |
//! | `keeper` | the library's entry point: wires a config into running tasks and stops them |
//! | `publishers/` | everything that turns the hub into outputs: `state_file/` (writer, render, file, lock), `api/`, `hooks`, `systemd`, `metrics`, `redis` |
//! | `scheduler/` | one task per stream: its schedule and state machine; the failure ladder is a table (`scheduler::ladder`); a stream whose key another stream of its account keeps follows it (`scheduler::follow`) |
//! | `replicas/` | the lease per account and the follower, between Redis and the schedulers; the Redis `link` |
//! | `config/` | what to keep, for which accounts: TOML, environment and builder resolved into a checked [`config::Config`] |
//! | `hub` | every stream's `watch` channel, between the schedulers and the publishers; knows no consumer |
//! | `exchange/` | the venues: profiles (each with its error table, server-time field, create rule and shared keys), accounts, the HTTP client, endpoints, signing, answers, error classification, redaction |
//! | `state`, `reason`, `stream`, `secret`, `clock` | the vocabulary every room speaks: stream states, why a stream is not fresh (errors and their classes), stream names and credential plausibility, masked secrets, the time seam |
//!
//! Data flows one way: **config → exchange / scheduler → hub → publishers**.
//! The config names the accounts and streams; each scheduler calls the
//! exchange through its account's client and publishes every new state into
//! the hub; the publishers read the hub and nothing else of the keeper, and
//! never block a scheduler. Replicas stand between Redis and the schedulers:
//! in lease mode a scheduler calls the exchange only while its account's
//! lease is held, and otherwise serves what the holder wrote.
//!
//! The coming event relay takes its own room, `relay/`: it reads credentials
//! from the hub, holds the user-data subscriptions through `exchange/` (whose
//! WebSocket side lands there), and hands numbered events to the publishers.
//!
//! Only `config`, `reason`, `secret`, `state`, `stream` and `venue` are
//! public; the cargo feature `test-seams` exposes the other rooms, hidden and
//! unstable, to this repository's own tests, tools and fuzz targets. The
//! simulated Binance the demo and the tests run against is its own package,
//! `listenkeyd-sim`.
//!
//! # The library
//!
//! A program that embeds the keeper builds a [`config::Config`] (from a TOML
//! file, TOML text, or Rust values with [`config::Config::builder`]), starts a
//! [`Keeper`] on it inside a tokio runtime, and follows each stream's
//! [`state::StreamState`] through a `watch` receiver from
//! [`Keeper::subscribe`] (or every stream at once through the [`Hub`]).
//! Stream names and kinds are in [`stream`]; the venues an account may be on
//! (their kinds, endpoints, header, signing, error codes) are the profiles in
//! [`venue`]; why a stream is not fresh is a typed [`reason::Reason`]; secrets
//! travel as [`secret::Secret`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use listenkeyd::config::Config;
//! use listenkeyd::Keeper;
//! use tokio_util::sync::CancellationToken;
//!
//! let config = Config::load(None)?; // --config's rules: $LISTENKEYD_CONFIG, then /etc
//! let cancel = CancellationToken::new();
//! let keeper = Keeper::start(&config, cancel.clone())?;
//! let mut rx = keeper.subscribe("usdm-futures").expect("configured");
//! rx.changed().await?;
//! println!("generation {:?}", rx.borrow().held.as_ref().map(|h| h.generation));
//! cancel.cancel();
//! keeper.join().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod reason;
pub mod secret;
pub mod state;
pub mod stream;

/// The venue profiles: each venue's kinds, endpoints, API-key header,
/// signing rule and error codes (the exchange side's public part).
pub use exchange::venue;

pub use exchange::ClientError;
pub use hub::Hub;
pub use keeper::{Keeper, Options, StartError};
pub use publishers::state_file::lock::LockError;
/// A hook run before every attempt a scheduler makes (a test seam).
#[cfg(feature = "test-seams")]
#[doc(hidden)]
pub use scheduler::AttemptHook;

/// Declares internal modules: private, or public but hidden with the
/// `test-seams` feature (for this repository's tests, tools and fuzz targets).
macro_rules! internal {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(not(feature = "test-seams"))]
        mod $name;
        $(#[$attr])*
        #[cfg(feature = "test-seams")]
        #[doc(hidden)]
        pub mod $name;
    )*};
}

internal! {
    mod clock;
    mod exchange;
    mod hub;
    mod keeper;
    mod logging;
    mod publishers;
    mod replicas;
    mod scheduler;
}

mod cli;

/// The `listenkeyd` binary's entry point; not part of the library's API.
#[doc(hidden)]
pub mod __cli {
    pub use crate::cli::main;
}
