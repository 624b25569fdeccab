//! The product's integration tests, as one test binary: each module is what
//! used to be a file of its own under `tests/`, and all their tests share one
//! pool of test threads. They spend most of their time waiting on the
//! simulator's and the keeper's timers (lifetimes of seconds), so a single
//! pool finishes in about the time of the slowest test, where a binary per
//! file ran one after another and cost the sum of each file's slowest test.
//! Run one file's tests with a filter: `cargo test --test it cli::`.
//!
//! Sharing a process means sharing its state: no test sets an environment
//! variable, changes the working directory or binds a fixed port (the daemon
//! and simulator take ephemeral ports; children get their environment through
//! `Command`); the panic counter of [`hostile`] counts only panics on its own
//! runtimes' threads, so the panics other modules inject on purpose do not
//! reach it; raising the open-file limit ([`api_access`]) only raises it.
#![forbid(unsafe_code)]

mod common;
mod harness;

mod accounts;
mod api_access;
mod budget;
mod cli;
mod config_fixtures;
mod crash;
mod daemon;
mod embed;
mod fault_matrix;
mod ha;
mod hostile;
mod instance;
mod redis;
mod restart;
mod secret_files;
mod secrets;
mod sentinel;
mod service;
mod supervision;
mod time;
mod today;
mod venues;
