//! Everything that talks to Binance: endpoints, parameters, signing and the
//! classification of answers. It knows nothing about scheduling.

pub mod account;
pub mod answer;
pub mod client;
pub mod endpoints;
pub mod error;
pub mod redact;

pub use client::{Client, ClientError, Issued};
