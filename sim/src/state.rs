//! The simulated exchange's memory: listen keys and listen tokens per account
//! and scope, with their expiry.
//!
//! An account is an API key; a scope is a stream id (`usdm-futures`,
//! `isolated-margin:BTCUSDT`, …). Each (account, scope) holds at most one
//! listen key and any number of tokens, except on a venue whose every create
//! mints a new key (MEXC): there it holds up to a cap of keys, each extended
//! and closed on its own ([`Store::create_new`]). Every method takes `now` (ms on the
//! simulator's unskewed clock) so the rules can be tested without waiting;
//! expired entries are pruned as they are met and behave as unknown.

use std::collections::HashMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A live credential, as listed by `GET /_sim/keys` and [`super::SimHandle::active`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveCredential {
    /// The stream id it belongs to, e.g. `isolated-margin:BTCUSDT` or `usdm-futures`.
    pub scope: String,
    /// `listen-key` or `listen-token`.
    pub kind: String,
    /// The full value (the simulator is a test tool).
    pub value: String,
    /// When it expires, ms since the epoch on the simulator's (skewed) clock.
    pub expires_at_ms: i64,
    /// The fingerprint of the API key (account) that owns it.
    pub account: String,
}

/// What [`Store::lookup`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The API key that owns it.
    pub account: String,
    /// The stream id it belongs to.
    pub scope: String,
    /// Expiry, ms on the unskewed clock.
    pub expires_at: i64,
    /// A listen token (else a listen key).
    pub token: bool,
}

/// One stored credential.
#[derive(Debug, Clone)]
struct Entry {
    /// The API key that owns it.
    account: String,
    /// The stream id it belongs to.
    scope: String,
    /// The key or token.
    value: String,
    /// Expiry, ms on the unskewed clock.
    expires_at: i64,
}

/// All listen keys and tokens of the simulated exchange.
#[derive(Debug, Default)]
pub struct Store {
    /// The active listen key per (account, scope).
    keys: HashMap<(String, String), Entry>,
    /// Minted tokens, oldest first.
    tokens: Vec<Entry>,
    /// Keys of venues that mint a new key per create, oldest first.
    many: Vec<Entry>,
}

/// A random alphanumeric string of `len` characters.
fn random_value(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Store {
    /// Drops everything that has expired at `now`.
    fn prune(&mut self, now: i64) {
        self.keys.retain(|_, e| e.expires_at > now);
        self.tokens.retain(|e| e.expires_at > now);
        self.many.retain(|e| e.expires_at > now);
    }

    /// POST on a venue that mints a new key per create: a new key for
    /// (account, scope), valid `ttl_ms`, beside the live ones; `None` when
    /// the account already holds `cap` live keys in all its scopes.
    pub fn create_new(&mut self, account: &str, scope: &str, now: i64, ttl_ms: i64, cap: usize) -> Option<String> {
        self.prune(now);
        if self.many.iter().filter(|e| e.account == account).count() >= cap {
            return None;
        }
        let value = random_value(60);
        self.many.push(Entry {
            account: account.to_owned(),
            scope: scope.to_owned(),
            value: value.clone(),
            expires_at: now + ttl_ms,
        });
        Some(value)
    }

    /// PUT on such a venue: extends the account's key `key` of `scope`.
    pub fn extend_one(&mut self, account: &str, scope: &str, key: &str, now: i64, ttl_ms: i64) -> bool {
        self.prune(now);
        let found = self
            .many
            .iter_mut()
            .find(|e| e.account == account && e.scope == scope && e.value == key);
        found.map(|e| e.expires_at = now + ttl_ms).is_some()
    }

    /// DELETE on such a venue: closes the account's key `key` of `scope`.
    pub fn delete_one(&mut self, account: &str, scope: &str, key: &str, now: i64) -> bool {
        self.prune(now);
        let before = self.many.len();
        self.many
            .retain(|e| !(e.account == account && e.scope == scope && e.value == key));
        before != self.many.len()
    }

    /// POST: the account's active key for `scope`, extended by `ttl_ms`, or a new one.
    /// The flag says whether the key is new.
    pub fn create_or_extend(&mut self, account: &str, scope: &str, now: i64, ttl_ms: i64) -> (String, bool) {
        self.prune(now);
        let slot = (account.to_owned(), scope.to_owned());
        if let Some(e) = self.keys.get_mut(&slot) {
            e.expires_at = now + ttl_ms;
            return (e.value.clone(), false);
        }
        let value = random_value(60);
        let entry = Entry {
            account: slot.0.clone(),
            scope: slot.1.clone(),
            value: value.clone(),
            expires_at: now + ttl_ms,
        };
        self.keys.insert(slot, entry);
        (value, true)
    }

    /// PUT: extends the account's key for `scope` (which must equal `key` when given);
    /// `None` when there is no such live key.
    pub fn extend(&mut self, account: &str, scope: &str, key: Option<&str>, now: i64, ttl_ms: i64) -> Option<String> {
        self.prune(now);
        let e = self.keys.get_mut(&(account.to_owned(), scope.to_owned()))?;
        if key.is_some_and(|k| k != e.value) {
            return None;
        }
        e.expires_at = now + ttl_ms;
        Some(e.value.clone())
    }

    /// DELETE: removes the account's key for `scope` (which must equal `key` when given).
    pub fn delete(&mut self, account: &str, scope: &str, key: Option<&str>, now: i64) -> bool {
        self.prune(now);
        let slot = (account.to_owned(), scope.to_owned());
        match self.keys.get(&slot) {
            Some(e) if key.is_none_or(|k| k == e.value) => self.keys.remove(&slot).is_some(),
            _ => false,
        }
    }

    /// Mints a new token for (account, scope), valid `validity_ms`; returns it and its expiry.
    pub fn mint_token(&mut self, account: &str, scope: &str, now: i64, validity_ms: i64) -> (String, i64) {
        self.prune(now);
        let value = random_value(64);
        let expires_at = now + validity_ms;
        let entry = Entry {
            account: account.to_owned(),
            scope: scope.to_owned(),
            value: value.clone(),
            expires_at,
        };
        self.tokens.push(entry);
        (value, expires_at)
    }

    /// Silently removes the account's key and tokens for `scope`.
    pub fn revoke_account_scope(&mut self, account: &str, scope: &str) -> bool {
        let before = self.len();
        self.keys.retain(|_, e| !(e.account == account && e.scope == scope));
        self.tokens.retain(|e| !(e.account == account && e.scope == scope));
        self.many.retain(|e| !(e.account == account && e.scope == scope));
        before != self.len()
    }

    /// Silently removes every key and token of `scope`, whatever the account.
    pub fn revoke_scope(&mut self, scope: &str) -> bool {
        let before = self.len();
        self.keys.retain(|_, e| e.scope != scope);
        self.tokens.retain(|e| e.scope != scope);
        self.many.retain(|e| e.scope != scope);
        before != self.len()
    }

    /// Silently removes the key or token equal to `value`.
    pub fn revoke_value(&mut self, value: &str) -> bool {
        let before = self.len();
        self.keys.retain(|_, e| e.value != value);
        self.tokens.retain(|e| e.value != value);
        self.many.retain(|e| e.value != value);
        before != self.len()
    }

    /// How many entries are stored, live or not yet pruned.
    fn len(&self) -> usize {
        self.keys.len() + self.tokens.len() + self.many.len()
    }

    /// Whether `value` is a live key or token at `now`.
    pub fn is_live(&mut self, value: &str, now: i64) -> bool {
        self.prune(now);
        self.keys
            .values()
            .chain(&self.tokens)
            .chain(&self.many)
            .any(|e| e.value == value)
    }

    /// The live key or token equal to `value` at `now`: its account, scope,
    /// expiry (unskewed ms) and whether it is a token.
    pub fn lookup(&mut self, value: &str, now: i64) -> Option<Lookup> {
        self.prune(now);
        let found = |e: &Entry, token: bool| Lookup {
            account: e.account.clone(),
            scope: e.scope.clone(),
            expires_at: e.expires_at,
            token,
        };
        if let Some(e) = self.keys.values().chain(&self.many).find(|e| e.value == value) {
            return Some(found(e, false));
        }
        self.tokens.iter().find(|e| e.value == value).map(|e| found(e, true))
    }

    /// Every live key and token at `now`, sorted by scope then expiry; `skew_ms` is added to expiries.
    pub fn active(&mut self, now: i64, skew_ms: i64) -> Vec<ActiveCredential> {
        self.prune(now);
        let view = |kind: &str, e: &Entry| ActiveCredential {
            scope: e.scope.clone(),
            kind: kind.to_owned(),
            value: e.value.clone(),
            expires_at_ms: e.expires_at.saturating_add(skew_ms),
            account: crate::log::fingerprint(&e.account),
        };
        let mut all: Vec<ActiveCredential> = self
            .keys
            .values()
            .chain(&self.many)
            .map(|e| view("listen-key", e))
            .collect();
        all.extend(self.tokens.iter().map(|e| view("listen-token", e)));
        all.sort_by(|a, b| (&a.scope, &a.kind, a.expires_at_ms).cmp(&(&b.scope, &b.kind, b.expires_at_ms)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 3_600_000;

    #[test]
    fn post_returns_the_same_key_and_extends_it() {
        let mut s = Store::default();
        let (k1, new1) = s.create_or_extend("api", "usdm-futures", 0, TTL);
        let (k2, new2) = s.create_or_extend("api", "usdm-futures", 1_000, TTL);
        assert_eq!(k1, k2);
        assert!(new1 && !new2);
        assert_eq!(k1.len(), 60);
        assert_eq!(s.active(1_000, 0)[0].expires_at_ms, 1_000 + TTL);
        let (other, _) = s.create_or_extend("other-api", "usdm-futures", 1_000, TTL);
        assert_ne!(other, k1, "each API key is its own account");
    }

    #[test]
    fn keys_expire_ttl_after_the_last_extension() {
        let mut s = Store::default();
        let (k, _) = s.create_or_extend("api", "cross-margin", 0, TTL);
        assert_eq!(s.extend("api", "cross-margin", Some(&k), TTL - 1, TTL), Some(k.clone()));
        assert!(s.is_live(&k, 2 * TTL - 2));
        assert!(!s.is_live(&k, 2 * TTL - 1));
        assert_eq!(s.extend("api", "cross-margin", Some(&k), 2 * TTL, TTL), None);
        let (k2, new) = s.create_or_extend("api", "cross-margin", 2 * TTL, TTL);
        assert!(new && k2 != k);
    }

    #[test]
    fn put_and_delete_check_the_key_and_scope() {
        let mut s = Store::default();
        let (k, _) = s.create_or_extend("api", "isolated-margin:BTCUSDT", 0, TTL);
        assert_eq!(s.extend("api", "isolated-margin:ETHUSDT", Some(&k), 1, TTL), None);
        assert_eq!(s.extend("api", "isolated-margin:BTCUSDT", Some("nope"), 1, TTL), None);
        assert!(!s.delete("api", "isolated-margin:BTCUSDT", Some("nope"), 1));
        assert!(s.delete("api", "isolated-margin:BTCUSDT", Some(&k), 1));
        assert!(!s.is_live(&k, 1));
    }

    #[test]
    fn tokens_are_new_each_time_and_expire_on_their_own() {
        let mut s = Store::default();
        let (t1, e1) = s.mint_token("api", "cross-margin", 0, 1_000);
        let (t2, e2) = s.mint_token("api", "cross-margin", 500, 1_000);
        assert_ne!(t1, t2);
        assert_eq!((e1, e2), (1_000, 1_500));
        assert!(s.is_live(&t1, 999) && s.is_live(&t2, 999));
        assert!(!s.is_live(&t1, 1_000) && s.is_live(&t2, 1_000));
    }

    #[test]
    fn revocation() {
        let mut s = Store::default();
        let (k, _) = s.create_or_extend("api", "options", 0, TTL);
        assert!(s.revoke_scope("options"));
        assert!(!s.revoke_scope("options"));
        assert_eq!(s.extend("api", "options", None, 1, TTL), None);
        let (t, _) = s.mint_token("api", "cross-margin", 0, TTL);
        assert!(s.revoke_value(&t));
        let (k2, _) = s.create_or_extend("api", "options", 2, TTL);
        assert_ne!(k2, k);
        assert!(!s.revoke_account_scope("someone-else", "options"));
        assert!(s.revoke_account_scope("api", "options"));
        assert!(s.active(3, 0).is_empty());
    }

    #[test]
    fn lookup_tells_keys_from_tokens() {
        let mut s = Store::default();
        let (k, _) = s.create_or_extend("api", "usdm-futures", 0, TTL);
        let (t, _) = s.mint_token("api", "cross-margin", 0, 1_000);
        let key = s.lookup(&k, 1).unwrap();
        assert_eq!((key.scope.as_str(), key.token), ("usdm-futures", false));
        assert!(s.lookup(&t, 1).unwrap().token);
        assert_eq!(s.lookup(&t, 1_000), None);
        assert_eq!(s.lookup("nope", 1), None);
    }
}
