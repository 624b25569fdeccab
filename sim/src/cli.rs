//! `listenkeyd sim`: the command-line flags of the simulator and the
//! function that binds, announces the address on stdout and serves until
//! cancelled.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::shared::MAX_SKEW_MS;
use super::{Fault, Profile, SimConfig, Venue, weight};

/// Flags of `listenkeyd sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Listen-key lifetime after each POST or PUT (humantime, e.g. 60m, 90s).
    #[arg(long, default_value = "60m", value_parser = humantime::parse_duration)]
    pub listen_key_ttl: Duration,
    /// An accepted API key (repeatable); without any, every non-empty key is accepted.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// Which Binance to play: `binance` (today: spot and margin listen keys answer 410)
    /// or `binance-2025` (margin listen keys served, for compatible venues and older deployments).
    #[arg(long, default_value = "binance", value_name = "PROFILE")]
    pub profile: Profile,
    /// HMAC secret: signed listen-token requests are checked against it.
    #[arg(long, value_name = "SECRET")]
    pub secret_key: Option<String>,
    /// Ed25519 public key (SPKI PEM file) accepted for listen-token signatures.
    #[arg(long, value_name = "PATH")]
    pub ed25519_public_key_file: Option<PathBuf>,
    /// The venue played at paths without a venue prefix: binance, binance-us, mexc, bingx, aster,
    /// toobit, hashkey or woox. Every venue is also served under its own prefix (`/mexc/api/v3/…`).
    #[arg(long, default_value = "binance", value_name = "VENUE")]
    pub venue: Venue,
    /// An API key's own HMAC secret, `KEY=SECRET` (repeatable): other venues' signed calls made
    /// with KEY are checked against it (`--secret-key` for keys not listed).
    #[arg(long = "account-secret", value_name = "KEY=SECRET", value_parser = parse_account_secret)]
    pub account_secrets: Vec<(String, String)>,
    /// Refuse unsigned listen-token requests (by default signed and unsigned ones are both accepted).
    #[arg(long)]
    pub require_signature: bool,
    /// Do not print a line per request.
    #[arg(long, short)]
    pub quiet: bool,
    /// Skew of the simulator's clock against real time: ms (`-1500`) or humantime (`30s`, `-2m`),
    /// at most 366 days either way.
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = parse_skew)]
    pub clock_skew: i64,
    /// A fault to inject (repeatable): `METHOD PATH [status=N] [count=N] [after=N] [delay=DUR]
    /// [header=Name:Value] [drop] [reset] [revoke] [pad=BYTES] [body64=BASE64] [body=REST]`, `*` for any method or path.
    #[arg(long = "fault", value_name = "SPEC", value_parser = Fault::parse)]
    pub faults: Vec<Fault>,
    /// The WebSocket flags (boxed: they would make every subcommand as large as this one).
    #[command(flatten)]
    pub ws: Box<WsArgs>,
    /// The request-weight flags (boxed, as the WebSocket ones).
    #[command(flatten)]
    pub weight: Box<WeightArgs>,
}

/// The request-weight flags of `listenkeyd sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct WeightArgs {
    /// A family's per-IP request-weight limit, `FAMILY=N/DURATION` (repeatable), instead of the
    /// published one (fapi 2400/1m, dapi 2400/1m, api 6000/1m, sapi 12000/1m, papi 6000/1m,
    /// eapi 3000/1m): `fapi=50/2s` makes the window seconds long for tests.
    #[arg(long = "weight-limit", value_name = "FAMILY=N/DUR", value_parser = weight::parse_family_limit)]
    pub weight_limits: Vec<(String, weight::Limit)>,
    /// Weight the other clients of every IP (the bots beside the keeper) spend in each window of
    /// FAMILY, spread evenly over it, `FAMILY=N` (repeatable).
    #[arg(long = "background-weight", value_name = "FAMILY=N", value_parser = weight::parse_family_weight)]
    pub background_weight: Vec<(String, u64)>,
    /// The first IP ban's length (418); each later ban of the same IP doubles it, up to 3 days.
    #[arg(long, default_value = "2m", value_name = "DUR", value_parser = humantime::parse_duration)]
    pub ban_base: Duration,
    /// Count and report request weight, but never answer 429 or 418 for it.
    #[arg(long)]
    pub no_weight_limits: bool,
}

/// The WebSocket flags of `listenkeyd sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct WsArgs {
    /// Send each live user-data subscription and stream an event at this interval (humantime);
    /// none by default (`POST /_sim/events` and test orders still make them).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub events_every: Option<Duration>,
    /// WebSocket ping interval (default: Binance's, 20 s on /ws-api/v3 and 3 min on listen-key streams).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub ws_ping_every: Option<Duration>,
    /// How long a WebSocket ping may go unanswered before the connection is closed
    /// (default: Binance's, 1 min on /ws-api/v3 and 10 min on listen-key streams).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub ws_pong_timeout: Option<Duration>,
    /// WebSocket connections end at this age (Binance: 24 h).
    #[arg(long, default_value = "24h", value_name = "DUR", value_parser = humantime::parse_duration)]
    pub max_connection_age: Duration,
    /// Send `serverShutdown` on a WebSocket API connection before ending it at its maximum age.
    #[arg(long)]
    pub server_shutdown_at_max_age: bool,
    /// WebSocket connection attempts accepted per IP address per 5 minutes (Binance: 300).
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub ws_attempts_per_ip: u32,
}

/// `KEY=SECRET`, both non-empty.
pub fn parse_account_secret(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err("expected KEY=SECRET".into()),
    }
}

/// A signed skew: whole ms, or a humantime duration, either with a leading `-`;
/// at most [`MAX_SKEW_MS`] either way.
pub fn parse_skew(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (neg, mag) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.trim()),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let ms = match mag.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => {
            let d = humantime::parse_duration(mag).map_err(|e| format!("{s:?}: not ms or a duration ({e})"))?;
            i64::try_from(d.as_millis()).map_err(|_| format!("{s:?}: too large"))?
        }
    };
    // `--9223372036854775808` parses as i64::MIN, which has no negation.
    let ms = if neg { ms.checked_neg() } else { Some(ms) };
    match ms {
        Some(ms) if ms.unsigned_abs() <= MAX_SKEW_MS.unsigned_abs() => Ok(ms),
        _ => Err(format!("{s:?}: more than 366 days either way")),
    }
}

impl SimArgs {
    /// The simulator configuration these flags describe (reads the public key file).
    pub fn to_config(&self) -> io::Result<SimConfig> {
        let ed25519_public_pem = match &self.ed25519_public_key_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        let cfg = SimConfig {
            listen_key_ttl: self.listen_key_ttl,
            api_keys: self.api_keys.clone(),
            hmac_secret: self.secret_key.clone(),
            ed25519_public_pem,
            clock_skew_ms: self.clock_skew,
            faults: self.faults.clone(),
            profile: self.profile,
            account_secrets: self.account_secrets.clone(),
            venue: self.venue,
            require_signature: self.require_signature,
            log_requests: !self.quiet,
            weights: weight::Rules {
                enforce: !self.weight.no_weight_limits,
                limits: self.weight.weight_limits.clone(),
                background: self.weight.background_weight.clone(),
                ban_base: self.weight.ban_base,
            },
            ws: super::WsConfig {
                ping_every: self.ws.ws_ping_every,
                pong_timeout: self.ws.ws_pong_timeout,
                max_connection_age: self.ws.max_connection_age,
                shutdown_notice: self.ws.server_shutdown_at_max_age,
                events_every: self.ws.events_every,
                attempts_per_ip: self.ws.ws_attempts_per_ip,
                ..super::WsConfig::default()
            },
        };
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(cfg)
    }
}

/// Binds, prints `listenkeyd sim listening on http://ADDR` and the profile,
/// and serves until `cancel` fires, printing a line per request unless quiet.
pub async fn run(args: SimArgs, cancel: CancellationToken) -> io::Result<()> {
    let cfg = args.to_config()?;
    let venue = cfg.venue;
    let listener = TcpListener::bind(args.listen).await?;
    let handle = super::start(listener, cfg, cancel.clone()).await;
    println!("listenkeyd sim listening on {}", handle.url());
    if venue == Venue::Binance {
        println!("profile {}: {}", handle.profile(), handle.profile().describe());
    } else {
        let prefixes: Vec<String> = Venue::ALL.iter().map(|v| format!("/{v}/")).collect();
        println!(
            "venue {venue} at unprefixed paths; every venue also under its prefix ({})",
            prefixes.join(" ")
        );
    }
    cancel.cancelled().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A wrapper to parse the flags alone.
    #[derive(Parser)]
    struct Cli {
        /// The flags under test.
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn a_skew_without_a_negation_is_refused() {
        assert!(parse_skew("--9223372036854775808").is_err());
    }

    #[test]
    fn skews() {
        assert_eq!(parse_skew("1500"), Ok(1500));
        assert_eq!(parse_skew("-1500"), Ok(-1500));
        assert_eq!(parse_skew("30s"), Ok(30_000));
        assert_eq!(parse_skew("-2m"), Ok(-120_000));
        assert!(parse_skew("soon").is_err());
        assert_eq!(parse_skew("366days"), Ok(MAX_SKEW_MS));
        assert_eq!(parse_skew("-31622400000"), Ok(-MAX_SKEW_MS));
        for far in ["367days", "-31622400001", "9223372036854775807", "-500years"] {
            assert!(parse_skew(far).is_err(), "{far} was accepted");
        }
    }

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from([
            "sim",
            "--listen-key-ttl",
            "90s",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--clock-skew",
            "-30s",
            "--fault",
            "PUT /fapi/v1/listenKey status=503 count=3",
            "--fault",
            "POST * status=429 header=Retry-After:5 count=1",
        ])
        .unwrap();
        let cfg = cli.sim.to_config().unwrap();
        assert_eq!(cli.sim.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(cfg.listen_key_ttl, Duration::from_secs(90));
        assert_eq!(cfg.api_keys, ["a", "b"]);
        assert_eq!(cfg.clock_skew_ms, -30_000);
        assert_eq!(cfg.faults.len(), 2);
        assert_eq!(
            (cfg.profile, cfg.require_signature, cfg.log_requests),
            (Profile::Binance, false, true)
        );
        let cli = Cli::try_parse_from(["sim", "--profile", "binance-2025", "--quiet"]).unwrap();
        let cfg = cli.sim.to_config().unwrap();
        assert_eq!((cfg.profile, cfg.log_requests), (Profile::Binance2025, false));
        assert!(Cli::try_parse_from(["sim", "--profile", "kraken"]).is_err());
        let demand = Cli::try_parse_from(["sim", "--require-signature"]).unwrap();
        assert!(demand.sim.to_config().is_err(), "nothing to check signatures with");
        assert!(Cli::try_parse_from(["sim", "--fault", "PUT"]).is_err());
        assert_eq!(cfg.ws.max_connection_age, Duration::from_secs(86_400));
        let ws = Cli::try_parse_from([
            "sim",
            "--events-every",
            "2s",
            "--ws-ping-every",
            "1s",
            "--ws-pong-timeout",
            "3s",
            "--max-connection-age",
            "30s",
            "--server-shutdown-at-max-age",
            "--ws-attempts-per-ip",
            "5",
        ])
        .unwrap();
        let ws = ws.sim.to_config().unwrap().ws;
        assert_eq!(
            (ws.events_every, ws.ping_every, ws.pong_timeout, ws.max_connection_age),
            (
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(3)),
                Duration::from_secs(30)
            )
        );
        assert!(ws.shutdown_notice);
        assert_eq!(ws.attempts_per_ip, 5);
    }

    #[test]
    fn weight_flags() {
        let cfg = Cli::try_parse_from(["sim"]).unwrap().sim.to_config().unwrap();
        assert!(cfg.weights.enforce);
        assert_eq!(cfg.weights.limit("fapi").map(|l| l.limit), Some(2400));
        assert_eq!(cfg.weights.ban_base, Duration::from_secs(120));
        let cli = Cli::try_parse_from([
            "sim",
            "--weight-limit",
            "fapi=50/2s",
            "--background-weight",
            "fapi=30",
            "--ban-base",
            "3s",
            "--no-weight-limits",
        ])
        .unwrap();
        let cfg = cli.sim.to_config().unwrap();
        assert_eq!(cfg.weights.limit("fapi"), weight::Limit::parse("50/2s").ok());
        assert_eq!(cfg.weights.background, [("fapi".to_owned(), 30)]);
        assert!(!cfg.weights.enforce);
        for bad in [
            ["--weight-limit", "fapi=50"],
            ["--background-weight", "fapi"],
            ["--ban-base", "x"],
        ] {
            assert!(Cli::try_parse_from(["sim", bad[0], bad[1]]).is_err(), "{bad:?}");
        }
    }
}
