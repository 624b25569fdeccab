//! The text `listenkeyd check-config` prints: what the daemon will do, with
//! every secret masked (the API key by its length, the signer by its algorithm).

use std::fmt::Write as _;
use std::time::Duration;

use super::{ApiListen, Config, HookAction};
use crate::stream::StreamId;

/// The resolved configuration as a human summary.
pub(crate) fn describe(c: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, c);
    out
}

fn write_all(out: &mut String, c: &Config) -> std::fmt::Result {
    match &c.source {
        Some(p) => writeln!(out, "config: {}", p.display())?,
        None => writeln!(out, "config: (text)")?,
    }
    write_accounts(out, c)?;
    write_streams(out, c)?;
    write_timing(out, c)?;
    write_outputs(out, c)?;
    write_hooks(out, c)
}

/// A duration as the config writes it (`30m`, `1h 30m`).
fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Each account: venue, key (masked), signing, timeouts, egress.
fn write_accounts(out: &mut String, c: &Config) -> std::fmt::Result {
    let single = c.accounts.len() == 1 && c.accounts[0].name == crate::stream::DEFAULT_ACCOUNT;
    for a in &c.accounts {
        if single {
            writeln!(out, "binance:")?;
        } else {
            writeln!(out, "account {}: venue {} ({})", a.name, a.venue.name, a.venue.title)?;
            writeln!(out, "  api key header: {}", a.api_key_header)?;
            writeln!(out, "  facts: {}", a.venue.confidence)?;
            if !a.venue.uncertain.is_empty() {
                writeln!(out, "  uncertain: {}", a.venue.uncertain.join("; "))?;
                for u in a.venue.unverified {
                    writeln!(out, "    unverified: {} (override: {})", u.fact, u.override_with)?;
                }
            }
        }
        writeln!(
            out,
            "  api key: ******** ({} characters)",
            a.api_key.expose().chars().count()
        )?;
        match (&a.signer, a.signing) {
            (_, crate::exchange::venue::Signing::None) if !single => writeln!(out, "  signing: none")?,
            (Some(s), g) if !single => writeln!(out, "  signing: {g} ({})", s.algorithm())?,
            (Some(s), _) => writeln!(out, "  signing: {}", s.algorithm())?,
            (None, _) => writeln!(out, "  signing: none (listen-token requests are sent unsigned)")?,
        }
        writeln!(out, "  request timeout: {}", show(a.request_timeout))?;
        writeln!(out, "  close on exit: {}", a.close_on_exit)?;
        if let Some(ip) = a.egress {
            writeln!(out, "  egress: {ip}")?;
        }
    }
    if !single {
        writeln!(
            out,
            "accounts ({}): {}",
            c.accounts.len(),
            c.accounts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(())
}

/// Each stream with its kind, symbol, credential and URL.
fn write_streams(out: &mut String, c: &Config) -> std::fmt::Result {
    writeln!(out, "streams ({}):", c.streams.len())?;
    for s in &c.streams {
        let url = c
            .accounts
            .iter()
            .find(|a| a.name == s.account)
            .and_then(|a| a.url_for(s.kind))
            .map_or_else(|| "-".to_owned(), ToString::to_string);
        writeln!(
            out,
            "  {}  kind={} symbol={} credential={} url={}",
            s.id,
            s.kind,
            s.symbol.as_deref().unwrap_or("-"),
            s.credential,
            url
        )?;
    }
    Ok(())
}

/// Lifetimes, intervals and the request-weight limits.
fn write_timing(out: &mut String, c: &Config) -> std::fmt::Result {
    let t = &c.timing;
    writeln!(out, "timing:")?;
    writeln!(out, "  keepalive interval: {}", show(t.keepalive_interval))?;
    writeln!(out, "  listen key validity: {}", show(t.listen_key_validity))?;
    writeln!(out, "  token validity: {}", show(t.token_validity))?;
    writeln!(out, "  token renew before: {}", show(t.token_renew_before))?;
    writeln!(out, "  jitter: ±{} of each interval", t.jitter)?;
    let l = &c.limits;
    let given: Vec<String> = l.weight_limits.iter().map(|(f, w)| format!("{f} {w}")).collect();
    writeln!(
        out,
        "limits: share {}, ceiling {} of each per-IP weight limit; given: {}",
        l.share,
        l.ceiling,
        if given.is_empty() {
            "none (learned or documented)".to_owned()
        } else {
            given.join(", ")
        }
    )?;
    Ok(())
}

/// Where values go: the state file, Redis and replicas, the API, the log.
fn write_outputs(out: &mut String, c: &Config) -> std::fmt::Result {
    writeln!(out, "state: {} (mode {:04o})", c.state.file.display(), c.state.mode)?;
    match &c.redis {
        None => writeln!(out, "redis: off")?,
        Some(r) => writeln!(out, "redis: {} (prefix {:?}, tls: {})", r.shown, r.prefix, r.tls)?,
    }
    match c.ha.mode {
        super::HaMode::Standalone => writeln!(out, "ha: standalone")?,
        super::HaMode::Lease => writeln!(out, "ha: lease per account in Redis (ttl {})", show(c.ha.lease_ttl))?,
    }
    match &c.api.listen {
        None => writeln!(out, "api: off")?,
        Some(ApiListen::Tcp(a)) => writeln!(out, "api: http://{a} (allow_remote: {})", c.api.allow_remote)?,
        Some(ApiListen::Unix(p)) => writeln!(out, "api: unix:{}", p.display())?,
    }
    if let Some(t) = &c.api.token {
        writeln!(out, "  bearer token for /v1/*: {t} ({} characters)", t.expose().len())?;
    }
    writeln!(out, "log: format {}, level {}", c.log.format.as_str(), c.log.level)?;
    Ok(())
}

/// The hooks.
fn write_hooks(out: &mut String, c: &Config) -> std::fmt::Result {
    writeln!(out, "hooks ({}):", c.hooks.len())?;
    for (i, h) in c.hooks.iter().enumerate() {
        let action = match &h.action {
            HookAction::Exec(argv) => format!("exec {argv:?}"),
            HookAction::Signal { signal, pid_file } => {
                format!("signal {signal} to the pid in {}", pid_file.display())
            }
        };
        let streams = h.streams.as_ref().map_or_else(
            || "all streams".to_owned(),
            |s| s.iter().map(StreamId::as_str).collect::<Vec<_>>().join(", "),
        );
        writeln!(out, "  [{i}] {action}, timeout {}, for {streams}", show(h.timeout))?;
    }
    Ok(())
}
