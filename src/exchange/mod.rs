//! The exchange side: everything that talks to a venue and nothing about
//! scheduling or publishing. The venue profiles ([`venue`]: kinds, families,
//! endpoints, the API-key header, the signing rule, error codes), the
//! [`account`] a client calls for, the [`admission`] of attempts by urgency, the HTTP [`client`] with its host gates and
//! request-weight [`budget`]s and
//! its name lookups ([`dns`]),
//! the [`endpoints`] and parameters of each call, request [`sign`]ing, the
//! reading of success [`answer`]s, the classification of failed ones
//! ([`error`]) and the [`redact`]ion of credentials from what a venue echoes.
//! The WebSocket side of the coming event relay lands here too.

pub mod account;
pub mod admission;
pub mod answer;
pub mod budget;
pub mod client;
pub mod dns;
pub mod endpoints;
pub mod error;
pub mod redact;
pub mod sign;
pub mod venue;

pub use client::{Client, ClientError, Issued};
