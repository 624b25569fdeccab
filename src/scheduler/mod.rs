//! One task per stream: obtain the credential, keep it fresh, and climb the
//! failure ladder of `binance-api.md` when the exchange misbehaves.
//!
//! The task is a loop of *plan → wait → attempt → apply*. Plans are deadlines
//! in wall time (the exchange's expiry is wall time); waiting is done on tokio's
//! timer and is interrupted by the clock-jump watcher, so a suspended host or a
//! stepped clock is noticed within one check period (a backward step re-plans:
//! a keepalive now for a listen key, the same time left for a token). Every outcome is
//! published: new values as new generations, failures as `stale` (value still
//! valid), `refreshing` (value gone, replacement under way) or `failed`.

pub mod follow;
pub mod ladder;
#[cfg(test)]
mod tests;

use ladder::Action;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::exchange::{Client, Issued};
use crate::reason::ApiError;
use crate::clock::{SharedClock, later, until};
use crate::config::Timing;
use crate::hub::Publisher;
use crate::reason::Reason;
use crate::secret::fingerprint;
use crate::state::{Held, Status, StreamState};
use crate::stream::{CredentialKind, StreamSpec};

/// How far past the requested lifetime a stated expiry may lie and still be
/// believed (then capped at the lifetime) rather than reported as a clock problem.
const EXPIRY_SLACK: Duration = Duration::from_secs(60);

/// How long the optional DELETE on shutdown may take.
pub const CLOSE_TIMEOUT: Duration = Duration::from_millis(800);

/// How far ahead a standby sets its plan: it re-plans (and republishes) when
/// it passes, well inside the systemd watchdog's `STUCK_AFTER` (a minute).
const STANDBY_PLAN: Duration = Duration::from_secs(20);

/// Resolves when this replica's role for the stream's account changes (never
/// outside lease mode). The wait for a change is boxed: every waiting task
/// holds this future, and only in lease mode does it need the room.
async fn role_changed(lease: &mut Option<Box<crate::replicas::StreamLease>>) {
    let Some(l) = lease else {
        return std::future::pending().await;
    };
    if Box::pin(l.gate.changed()).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why [`StreamTask::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// The planned time came (perhaps moved earlier by a clock step).
    Due,
    /// This replica's role for the account changed (lease mode).
    Role,
    /// Cancelled.
    Stop,
}

/// The next call and when it is due.
#[derive(Debug, Clone, Copy)]
struct Plan {
    action: Action,
    at: SystemTime,
}

/// A test hook run before every attempt a scheduler makes (it may panic, to
/// prove that supervision restarts the task).
pub type AttemptHook = Arc<dyn Fn(&StreamSpec) + Send + Sync>;

/// Where a scheduler counts its refresh outcomes (the metrics'
/// `listenkeyd_refresh_total`), so that this room does not import the
/// publisher that renders them.
pub trait RefreshCounter: Send + Sync {
    /// Counts one refresh of `stream` that ended in `outcome` (`ok` or an
    /// error class).
    fn refresh(&self, stream: &str, outcome: &'static str);
}

/// What every stream task of a keeper shares: one allocation for all of
/// them, so a task's own record stays a handful of pointers.
pub struct Shared {
    /// Lifetimes and intervals.
    pub timing: Timing,
    /// The time seam.
    pub clock: SharedClock,
    /// Fired on shutdown.
    pub cancel: CancellationToken,
    /// Counts outcomes.
    pub metrics: Arc<dyn RefreshCounter>,
    /// A test hook run before every attempt.
    pub before_attempt: Option<AttemptHook>,
    /// The number of stream tasks running.
    pub live: Arc<AtomicUsize>,
}

/// Everything one stream's task needs. Cheap to clone; a supervisor runs the
/// same task again after a panic. It lives as long as its stream, thousands
/// of them in one keeper, so what all tasks share sits behind one [`Shared`]
/// and what only lease mode needs is boxed.
#[derive(Clone)]
pub struct StreamTask {
    /// The stream kept.
    pub spec: Arc<StreamSpec>,
    /// The client of the stream's account.
    pub client: Arc<Client>,
    /// What every task of the keeper shares.
    pub shared: Arc<Shared>,
    /// Where new states go.
    pub publisher: Arc<Publisher>,
    /// Bumped by the clock-jump watcher.
    pub jumps: watch::Receiver<u64>,
    /// DELETE the listen key on shutdown.
    pub close_on_exit: bool,
    /// The highest generation a previous run published for this id, whatever
    /// its credential: a new value is always above it, so generations never
    /// move backwards, even when the operator switches credential kinds.
    pub generation_floor: u64,
    /// The fingerprint of the account's API key, recorded with every value obtained.
    pub api_key_fp: Arc<str>,
    /// In lease mode: this replica's role for the stream's account, and what
    /// Redis holds for the stream (served while another replica holds the lease).
    pub lease: Option<Box<crate::replicas::StreamLease>>,
}

/// Counts a running task in [`StreamTask::live`] for as long as it lives,
/// panics and cancellation included.
struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    fn new(live: &Arc<AtomicUsize>) -> LiveGuard {
        live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(live.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for StreamTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTask")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl StreamTask {
    /// Runs the stream until cancelled. Borrowed, so that a supervisor can
    /// run the same task again after a panic without keeping a second copy.
    pub async fn run(&mut self) {
        let _live = LiveGuard::new(&self.shared.live);
        let mut state = self.publisher.current();
        let mut failures = 0u32;
        // The lifetime the exchange last stated for this stream's listen key, if it states one.
        let mut stated_lifetime: Option<Duration> = None;
        let mut plan = match self.active() {
            true => self.first_plan(&mut state),
            false => Plan {
                action: Action::Obtain,
                at: self.shared.clock.now(),
            },
        };
        loop {
            if !self.active() {
                // Another replica keeps the account: serve what it writes, and
                // take over from there when this replica may call again.
                // Boxed: only a standby replica pays for this future's room.
                if !Box::pin(self.stand_by(&mut state)).await {
                    break;
                }
                (failures, stated_lifetime) = (0, None);
                plan = self.first_plan(&mut state);
                continue;
            }
            match self.wait(plan.at, &mut state).await {
                Wake::Stop => break,
                // A change of role: stand by, or wait on.
                Wake::Role => continue,
                Wake::Due if !self.active() => continue,
                Wake::Due => {}
            }
            let now = self.shared.clock.now();
            let action = match plan.action {
                Action::Keepalive if !state.valid_at(now) => Action::Obtain,
                a => a,
            };
            // The attempt's future (a whole HTTP exchange, ~1 KiB) lives on
            // the heap and only once admitted, so a waiting stream's task
            // stays small and a burst of thousands holds a few dozen of them.
            let outcome = tokio::select! {
                biased;
                _ = self.shared.cancel.cancelled() => break,
                r = async {
                    let _admitted = self.client.admit(self.urgency(&state)).await;
                    Box::pin(self.attempt(action, &state)).await
                } => r,
            };
            self.shared.metrics.refresh(
                self.spec.id.as_str(),
                outcome.as_ref().map_or_else(|e| e.class.as_str(), |_| "ok"),
            );
            // Only where a create mints beside the old key is it kept to be closed.
            let replaced = self.mints_per_create().then(|| state.held.clone()).flatten();
            plan = self.apply(&mut state, action, outcome, &mut failures, &mut stated_lifetime);
            state.next_at = Some(plan.at);
            self.publisher.publish(state.clone());
            if let Some(old) = replaced.filter(|old| self.closes_replaced(old, &state)) {
                Box::pin(self.close_replaced(&old)).await;
            }
        }
        // A standby never closes the key: it is the holder's, and consumers on
        // every host still use it.
        if self.close_on_exit && self.active() {
            Box::pin(self.close(&state)).await;
        }
    }

    /// The first call: at once, except for a token the keeper kept from the
    /// previous run (seeded `fresh`), which is re-minted on its schedule; that
    /// state is published with its plan, so the stream counts as started.
    fn first_plan(&self, state: &mut StreamState) -> Plan {
        let now = self.shared.clock.now();
        if self.reuses_persisted_key(state, now) {
            tracing::info!(stream = %self.spec.id, expires_in_s = state.held.as_ref().map_or(0, |h| until(now, h.expires_at).as_secs()),
                "keeping alive the listen key from the previous run (a create would mint another)");
            return Plan {
                action: Action::Keepalive,
                at: now,
            };
        }
        let kept = match (&state.held, self.spec.credential, state.status) {
            (Some(h), c, Status::Fresh) if !c.extendable() && h.expires_at > now => Some(h.expires_at),
            _ => None,
        };
        let Some(expires_at) = kept else {
            return Plan {
                action: Action::Obtain,
                at: now,
            };
        };
        let t = &self.shared.timing;
        let at = ladder::next_mint(now, expires_at, t.token_renew_before, t.jitter, rand::random::<f64>());
        tracing::info!(stream = %self.spec.id, expires_in_s = until(now, expires_at).as_secs(),
            mint_in_s = until(now, at).as_secs(), "kept the token from the previous run");
        state.next_at = Some(at);
        self.publisher.publish(state.clone());
        Plan {
            action: Action::Obtain,
            at,
        }
    }

    /// Whether the stream's venue mints a new listen key on every create
    /// (MEXC), so that a key it still holds is kept alive rather than
    /// created anew, and a key it replaces is closed.
    fn mints_per_create(&self) -> bool {
        self.spec.credential == CredentialKind::ListenKey && !self.client.account().venue.create_returns_active_key
    }

    /// Whether to start by keeping alive the key persisted by the previous
    /// run: on a venue that mints per create, a key still valid and obtained
    /// with this API key.
    fn reuses_persisted_key(&self, state: &StreamState, now: SystemTime) -> bool {
        self.mints_per_create()
            && state
                .held
                .as_ref()
                .is_some_and(|h| h.expires_at > now && h.api_key_fp.as_deref() == Some(&*self.api_key_fp))
    }

    /// Whether `old`, held before the last attempt, was replaced by another
    /// value obtained with this API key on a venue that mints per create,
    /// and so is closed.
    fn closes_replaced(&self, old: &Held, state: &StreamState) -> bool {
        self.mints_per_create()
            && old.api_key_fp.as_deref() == Some(&*self.api_key_fp)
            && state.held.as_ref().is_some_and(|h| h.value != old.value)
    }

    /// DELETEs a listen key the stream replaced (best effort: a key already
    /// gone answers so, and lapses anyway).
    async fn close_replaced(&self, old: &Held) {
        let fp = fingerprint(&old.value);
        match tokio::time::timeout(CLOSE_TIMEOUT, self.client.close(&self.spec, &old.value)).await {
            Ok(Ok(())) => tracing::info!(stream = %self.spec.id, fp = %fp, "closed the listen key it replaced"),
            Ok(Err(e)) => {
                tracing::debug!(stream = %self.spec.id, fp = %fp, error = %e, "could not close the listen key it replaced")
            }
            Err(_) => tracing::debug!(stream = %self.spec.id, fp = %fp, "closing the replaced listen key timed out"),
        }
    }

    /// Whether this replica may call the exchange for the stream now: always
    /// outside lease mode; in it, while it holds the account's lease (on this
    /// host's monotonic clock) or keeps the account alone, Redis being unreachable.
    fn active(&self) -> bool {
        self.lease
            .as_ref()
            .is_none_or(|l| l.gate.borrow().active(tokio::time::Instant::now()))
    }

    /// Serves what Redis holds for the stream while another replica holds the
    /// lease; returns false when cancelled, true once this replica may call.
    /// The plan is pushed [`STANDBY_PLAN`] ahead at each wake-up, so a standby
    /// never looks stuck to the watchdog.
    async fn stand_by(&mut self, state: &mut StreamState) -> bool {
        let Some(mut lease) = self.lease.as_deref().cloned() else {
            return true;
        };
        tracing::info!(stream = %self.spec.id, account = %lease.account,
            "standing by: another replica keeps this account; serving what it writes to Redis");
        loop {
            let entry = lease.mirror.borrow_and_update().clone();
            if let Some(e) = entry {
                self.adopt(state, &e);
            }
            if self.active() {
                tracing::info!(stream = %self.spec.id, account = %lease.account, "taking over from what Redis holds");
                return true;
            }
            let now = self.shared.clock.now();
            if state.next_at.is_none_or(|at| at <= now) {
                state.next_at = Some(now + STANDBY_PLAN);
            }
            self.publisher.publish(state.clone());
            let replan = until(now, state.next_at.unwrap_or(now));
            tokio::select! {
                _ = self.shared.cancel.cancelled() => return false,
                r = lease.gate.changed() => if r.is_err() { return false },
                r = lease.mirror.changed() => if r.is_err() { return false },
                _ = tokio::time::sleep(replan) => {}
            }
        }
    }

    /// Takes the holder's value for the stream from what Redis holds (its
    /// state-file JSON), if it is for this stream's kind and credential.
    fn adopt(&self, state: &mut StreamState, e: &crate::state::Entry) {
        if e.kind != self.spec.kind || e.credential != self.spec.credential {
            return;
        }
        let mut held = e.held();
        // Generations never go back here, even when this replica kept the
        // account alone (Redis unreachable) and minted values of its own.
        if let Some(h) = &state.held {
            if h.value == held.value {
                held.generation = held.generation.max(h.generation);
            } else if held.generation <= h.generation {
                held.generation = h.generation + 1;
            }
        }
        let moved = state.held.as_ref().is_none_or(|h| h.value != held.value);
        if state.held.as_ref() == Some(&held) && state.status == e.status
            && state.last_error == e.last_error
            && state.error_class == e.error_class
        {
            return;
        }
        if moved {
            tracing::info!(stream = %self.spec.id, fp = %fingerprint(&held.value), generation = held.generation,
                "new credential from the replica holding the lease");
        }
        state.held = Some(held);
        state.status = e.status;
        state.reason = None;
        state.last_error = e.last_error.clone();
        state.error_class = e.error_class;
    }

    /// Sleeps until `at` ([`Wake::Due`]), or until cancelled or this
    /// replica's role changes. Wakes early when the held value expires (to
    /// publish that honestly) and when the wall clock jumps: a backward jump
    /// makes every deadline due now, since deadlines computed before it can no
    /// longer be trusted.
    async fn wait(&mut self, mut at: SystemTime, state: &mut StreamState) -> Wake {
        loop {
            let now = self.shared.clock.now();
            if now >= at {
                return if self.shared.cancel.is_cancelled() {
                    Wake::Stop
                } else {
                    Wake::Due
                };
            }
            let expiry = state.held.as_ref().map(|h| h.expires_at).filter(|e| *e > now);
            let wake = expiry.map_or(at, |e| e.min(at));
            let (wall0, mono0) = (now, tokio::time::Instant::now());
            tokio::select! {
                biased;
                _ = self.shared.cancel.cancelled() => return Wake::Stop,
                _ = tokio::time::sleep(until(now, wake)) => {}
                _ = role_changed(&mut self.lease) => return Wake::Role,
                r = self.jumps.changed() => {
                    if r.is_err() {
                        return Wake::Stop;
                    }
                    // Wall time that went back, or moved less than tokio's clock did.
                    let behind = match self.shared.clock.now().duration_since(wall0) {
                        Ok(forward) => mono0.elapsed().saturating_sub(forward),
                        Err(back) => back.duration() + mono0.elapsed(),
                    };
                    if behind > crate::clock::JUMP_THRESHOLD {
                        at = self.replan_after_step_back(at, behind, state);
                    }
                }
            }
            let now = self.shared.clock.now();
            if expiry.is_some_and(|e| now >= e) && state.status != Status::Failed {
                state.status = Status::Failed;
                let cause = state.reason.take().map(Box::new);
                state.set_reason(Some(Reason::Expired(cause)));
                tracing::error!(stream = %self.spec.id, "credential expired before it could be refreshed");
                self.publisher.publish(state.clone());
            }
        }
    }

    /// The new deadline after the wall clock went back by `behind`.
    ///
    /// A listen key is kept alive now: a PUT costs nothing, keeps the same key
    /// and anchors its expiry to the new clock. A token is not re-minted (that
    /// would hand every consumer a new generation): its lifetime runs in real
    /// time, so its expiry and deadline move back by the step, which keeps the
    /// time left on each exactly as it was, and the new expiry is published.
    fn replan_after_step_back(&self, at: SystemTime, behind: Duration, state: &mut StreamState) -> SystemTime {
        let now = self.shared.clock.now();
        let held = state.held.as_mut().filter(|h| h.expires_at > now);
        let (false, Some(h)) = (self.spec.credential.extendable(), held) else {
            tracing::info!(stream = %self.spec.id, "wall clock went back; refreshing now");
            return now;
        };
        h.expires_at = h.expires_at.checked_sub(behind).unwrap_or(now).max(now);
        let at = at.checked_sub(behind).unwrap_or(now).max(now);
        tracing::info!(stream = %self.spec.id, back_s = behind.as_secs(), expires_in_s = until(now, h.expires_at).as_secs(),
            "wall clock went back; moved the token's expiry and next mint back with it");
        state.next_at = Some(at);
        self.publisher.publish(state.clone());
        at
    }

    /// When the credential an attempt keeps expires: attempts are admitted,
    /// and wait for the weight budget, in that order. A credential held
    /// ranks by its expiry; a first one as the new one's expiry would.
    fn urgency(&self, state: &StreamState) -> SystemTime {
        match &state.held {
            Some(h) => h.expires_at,
            None => later(self.shared.clock.now(), self.shared.timing.listen_key_validity),
        }
    }

    /// Makes one call.
    async fn attempt(&self, action: Action, state: &StreamState) -> Result<Issued, ApiError> {
        if let Some(hook) = &self.shared.before_attempt {
            hook(&self.spec);
        }
        match (action, &state.held) {
            (Action::Keepalive, Some(h)) => {
                let echoed = self.client.keepalive(&self.spec, &h.value, h.expires_at).await?;
                Ok(echoed.unwrap_or_else(|| Issued {
                    value: h.value.clone(),
                    expires_at: None,
                }))
            }
            _ => {
                let by = self.urgency(state);
                self.client.obtain(&self.spec, self.shared.timing.token_validity, by).await
            }
        }
    }

    /// Records an outcome in `state` and returns the next plan.
    fn apply(
        &self,
        state: &mut StreamState,
        action: Action,
        outcome: Result<Issued, ApiError>,
        failures: &mut u32,
        stated_lifetime: &mut Option<Duration>,
    ) -> Plan {
        let now = self.shared.clock.now();
        let r = rand::random::<f64>();
        let t = &self.shared.timing;
        match outcome {
            Ok(issued) => {
                *failures = 0;
                let expires_at = self.trusted_expiry(issued.expires_at, now, stated_lifetime);
                self.accept(state, issued.value, expires_at, now, action);
                match self.spec.credential {
                    CredentialKind::ListenKey => Plan {
                        action: Action::Keepalive,
                        at: ladder::next_keepalive(now, expires_at, t.keepalive_interval, t.jitter, r),
                    },
                    CredentialKind::ListenToken | CredentialKind::RotatingKey => Plan {
                        action: Action::Obtain,
                        at: ladder::next_mint(now, expires_at, t.token_renew_before, t.jitter, r),
                    },
                }
            }
            Err(e) => self.fail(state, action, e, failures, now, r),
        }
    }

    /// The lifetime asked for (or assumed) for this stream's credential.
    fn lifetime(&self) -> Duration {
        match self.spec.credential {
            CredentialKind::ListenKey => self.shared.timing.listen_key_validity,
            CredentialKind::ListenToken | CredentialKind::RotatingKey => self.shared.timing.token_validity,
        }
    }

    /// The expiry to plan with: the exchange's stated one when it is plausible
    /// on our clock, else our own lifetime from now. A stated expiry already in
    /// the past (our clock runs ahead of the exchange's) would otherwise make
    /// the next renewal due at once, again and again.
    ///
    /// A lifetime the exchange stated once (the options create answer) also
    /// bounds the answers that state none (its keepalives): `learned` keeps it.
    fn trusted_expiry(
        &self,
        stated: Option<SystemTime>,
        now: SystemTime,
        learned: &mut Option<Duration>,
    ) -> SystemTime {
        let lifetime = self.lifetime();
        let own = later(now, lifetime);
        match stated {
            // Never later than the lifetime asked for, counted from now (after the
            // exchange issued it): an exchange clock ahead of ours states a later
            // expiry than the credential really has on our clock.
            Some(e) if e > now && e <= later(own, EXPIRY_SLACK) => {
                let e = e.min(own);
                if self.spec.credential == CredentialKind::ListenKey {
                    *learned = Some(until(now, e));
                }
                e
            }
            Some(e) => {
                let off = match e.duration_since(now) {
                    Ok(ahead) => format!("{}s ahead", ahead.as_secs()),
                    Err(behind) => format!("{}s in the past", behind.duration().as_secs()),
                };
                // Logged as a number: the stated time is untrusted and may not be writable as a date.
                tracing::warn!(stream = %self.spec.id, stated_ms = crate::clock::epoch_ms(e),
                    "the exchange's expiry is {off} on this host's clock; planning with {}s instead (is the clock right?)",
                    lifetime.as_secs());
                own
            }
            None => later(now, learned.map_or(lifetime, |l| l.min(lifetime))),
        }
    }

    /// Takes a value the exchange confirmed; a different value is a new generation.
    fn accept(&self, state: &mut StreamState, value: String, expires_at: SystemTime, now: SystemTime, action: Action) {
        let same = state.held.as_ref().is_some_and(|h| h.value == value);
        let held = if let Some(mut h) = state.held.take_if(|h| h.value == value) {
            h.refreshed_at = now;
            h.expires_at = expires_at;
            // Confirmed by the exchange with this run's API key.
            h.api_key_fp = Some(self.api_key_fp.to_string());
            h
        } else {
            // A new value is the next generation, also across restarts (the
            // keeper seeds `held` from the previous state file).
            let last = state
                .held
                .as_ref()
                .map_or(0, |h| h.generation)
                .max(self.generation_floor);
            let (generation, obtained_at) = (last + 1, now);
            Held {
                value,
                generation,
                obtained_at,
                refreshed_at: now,
                expires_at,
                api_key_fp: Some(self.api_key_fp.to_string()),
            }
        };
        let left = until(now, expires_at).as_secs();
        if !same {
            tracing::info!(stream = %self.spec.id, fp = %fingerprint(&held.value), generation = held.generation,
                expires_in_s = left, via = if action == Action::Keepalive { "keepalive" } else { "obtain" },
                "new credential published");
        } else if tracing::enabled!(tracing::Level::DEBUG) {
            // The fingerprint is a SHA-256: computed only when the line is written.
            tracing::debug!(stream = %self.spec.id, fp = %fingerprint(&held.value), expires_in_s = left, "refreshed");
        }
        if state.status != Status::Fresh && state.held.is_none() && state.reason.is_some() {
            tracing::info!(stream = %self.spec.id, "recovered");
        }
        state.held = Some(held);
        state.status = Status::Fresh;
        state.set_reason(None);
    }

    /// Records a failure: looks its class up in the failure ladder
    /// ([`ladder::decide`]), applies the row to `state` and returns the next plan.
    fn fail(
        &self,
        state: &mut StreamState,
        action: Action,
        e: ApiError,
        failures: &mut u32,
        now: SystemTime,
        r: f64,
    ) -> Plan {
        let situation = ladder::Situation {
            call: action,
            left: state
                .held
                .as_ref()
                .filter(|h| h.expires_at > now)
                .map(|h| until(now, h.expires_at)),
            held: state.held.is_some(),
            lifetime: self.lifetime(),
            failures: *failures,
            has_tokens: self.spec.kind.supports_token(),
        };
        let d = ladder::decide(&e, &situation, r);
        if d.rung.value == ladder::Value::Dropped
            && let Some(h) = state.held.as_mut()
        {
            h.expires_at = h.expires_at.min(now);
        }
        *failures = d.failures;
        let (id, retry_in_ms, hint) = (&self.spec.id, d.wait.as_millis() as u64, d.hint.map(|h| h.text()));
        match d.rung.level {
            ladder::Level::Warn if d.rung.wait == ladder::Wait::Backoff => {
                tracing::warn!(stream = %id, error = %e, attempt = d.failures, retry_in_ms, "{}", d.rung.log)
            }
            ladder::Level::Warn => tracing::warn!(stream = %id, error = %e, retry_in_ms, "{}", d.rung.log),
            ladder::Level::Error => {
                tracing::error!(stream = %id, error = %e, retry_in_ms, hint, "{}", d.rung.log)
            }
        }
        state.status = d.status;
        state.set_reason(Some(Reason::Refresh { error: e, hint: d.hint }));
        Plan {
            action: d.next,
            at: now + d.wait,
        }
    }

    /// DELETEs the listen key on shutdown, when the operator asked for it.
    async fn close(&self, state: &StreamState) {
        let Some(h) = &state.held else { return };
        if !self.spec.credential.extendable() || !state.valid_at(self.shared.clock.now()) {
            return;
        }
        let fp = fingerprint(&h.value);
        match tokio::time::timeout(CLOSE_TIMEOUT, self.client.close(&self.spec, &h.value)).await {
            Ok(Ok(())) => tracing::info!(stream = %self.spec.id, fp = %fp, "closed the listen key (close_on_exit)"),
            Ok(Err(e)) => tracing::warn!(stream = %self.spec.id, error = %e, "could not close the listen key"),
            Err(_) => tracing::warn!(stream = %self.spec.id, "closing the listen key timed out"),
        }
    }
}
