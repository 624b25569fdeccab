//! Everything that talks to Binance: endpoints, parameters, signing and the
//! classification of answers. It knows nothing about scheduling.

pub mod answer;
pub mod client;
pub mod endpoints;
pub mod error;
pub mod redact;
pub mod sign;

pub use client::{Client, Issued};
pub use error::{ApiError, ErrorClass};
