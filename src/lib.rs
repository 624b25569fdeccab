//! listenkeyd keeps Binance user-data credentials (listen keys and listen
//! tokens) fresh for every configured stream and publishes the current value to
//! local processes: a state file, a local API, hooks, and `watch` channels for
//! Rust programs that embed it.
//!
//! Data enters through [`config`] (what to keep) and [`binance`] (what the
//! exchange answers); decisions are made in [`scheduler`], one task per stream;
//! values leave through [`publish`] (the hub and the state file).
#![forbid(unsafe_code)]

pub mod binance;
pub mod config;
pub mod secret;
pub mod stream;
