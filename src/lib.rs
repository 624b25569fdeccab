//! listenkeyd keeps Binance user-data credentials (listen keys and listen
//! tokens) fresh for every configured stream and publishes the current value to
//! local processes: a state file, a local API, hooks, and `watch` channels for
//! Rust programs that embed it.
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
//!
//! # Inside
//!
//! Data enters through `config` (what to keep, for which accounts) and
//! `binance` (what the exchange answers, read by each account's venue
//! profile); decisions are made in `scheduler`, one task per stream,
//! whose failure ladder is a table (`scheduler::ladder`); each new state goes
//! into the hub (`publish`), and every publisher (state file, hooks, API,
//! systemd) is started in one place, `publishers`, and reads only the hub.
//! `keeper` wires them together; `cli` is the command line. None of these is
//! public: the cargo feature `test-seams` exposes them, hidden and unstable, to
//! this repository's own tests, tools and fuzz targets. The simulated Binance
//! the demo and the tests run against is its own package, `listenkeyd-sim`.
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
