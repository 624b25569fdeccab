//! The state file: one JSON document for every stream, replaced atomically.
//!
//! The [`writer`] task renders the hub ([`render`]) and replaces the file
//! ([`file`]) when a change falls due; [`lock`] keeps a second instance off
//! the same file. The document's shape is [`crate::state::Document`].

pub mod due;
pub mod file;
pub mod lock;
pub mod render;
pub mod writer;
