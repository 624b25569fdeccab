//! Everything that talks to Binance: endpoints, parameters, signing and the
//! classification of answers. It knows nothing about scheduling.

pub mod sign;
