//! listenkeyd keeps Binance user-data credentials (listen keys and listen
//! tokens) fresh for every configured stream and publishes the current value to
//! local processes: a state file, a local API, hooks, and `watch` channels for
//! Rust programs that embed it.
//!
//! Data enters through [`config`] (what to keep) and [`binance`] (what the
//! exchange answers); decisions are made in [`scheduler`], one task per stream;
//! values leave through [`publish`] (the hub and the state file); [`cli`] is
//! the command line. The simulated Binance the demo and the tests run against
//! is its own package, `listenkeyd-sim`.
#![forbid(unsafe_code)]

pub mod api;
pub mod binance;
pub mod cli;
pub mod clock;
pub mod config;
pub mod hooks;
pub mod keeper;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod publish;
pub mod reason;
pub mod remote;
pub mod scheduler;
pub mod secret;
pub mod state;
pub mod stream;
pub mod systemd;

pub use keeper::Keeper;
