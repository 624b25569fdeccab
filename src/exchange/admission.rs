//! Admission by urgency: at most a fixed number of attempts exist at once,
//! and when one ends the next admitted is the waiting one whose credential
//! expires first (ties in arrival order), not the one that came first. A
//! cold start of thousands of creations therefore never holds back a
//! keepalive that is due: it is admitted at the next free place, and then
//! waits in the weight budget's queue in the same order.
//!
//! A place is handed from the attempt that ends straight to the next waiter
//! (one wake per place, not one per waiter); a waiter that gives up leaves
//! the queue, and a place handed to it as it gave up is passed on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::oneshot;

/// Places and the waiters, by (credential expiry, arrival).
#[derive(Debug)]
struct Places {
    free: usize,
    waiting: BTreeMap<(SystemTime, u64), oneshot::Sender<()>>,
    arrivals: u64,
}

/// At most `places` attempts at once, admitted by urgency.
#[derive(Debug, Clone)]
pub struct Admission(Arc<Mutex<Places>>);

/// An admitted attempt's place; freed (handed on) when dropped.
#[derive(Debug)]
pub struct Admitted(Admission);

impl Admission {
    /// `places` attempts at once.
    pub fn new(places: usize) -> Admission {
        Admission(Arc::new(Mutex::new(Places {
            free: places,
            waiting: BTreeMap::new(),
            arrivals: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Places> {
        // Every update is a whole step (a count, one insert or removal): a
        // poisoned lock still holds a consistent state.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a place; `by` is when the attempt's credential expires.
    pub async fn admit(&self, by: SystemTime) -> Admitted {
        let (key, rx) = {
            let mut p = self.lock();
            if p.free > 0 && p.waiting.is_empty() {
                p.free -= 1;
                return Admitted(self.clone());
            }
            let key = (by, p.arrivals);
            p.arrivals += 1;
            let (tx, rx) = oneshot::channel();
            p.waiting.insert(key, tx);
            (key, rx)
        };
        let mut waiter = Waiter {
            admission: self,
            key,
            rx: Some(rx),
        };
        if let Some(rx) = waiter.rx.as_mut() {
            // The sender lives in the queue until a place is handed over: never dropped unsent.
            let _ = rx.await;
        }
        waiter.rx = None;
        Admitted(self.clone())
    }

    /// Hands a place to the most urgent waiter, else frees it.
    fn release(&self) {
        let mut p = self.lock();
        while let Some((_, tx)) = p.waiting.pop_first() {
            if tx.send(()).is_ok() {
                return;
            }
        }
        p.free += 1;
    }

    /// Places free and waiters, for tests.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let p = self.lock();
        (p.free, p.waiting.len())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A waiter's place in the queue, left when it gives up.
struct Waiter<'a> {
    admission: &'a Admission,
    key: (SystemTime, u64),
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let removed = self.admission.lock().waiting.remove(&self.key).is_some();
        // Handed a place as it gave up: pass it on.
        if !removed && rx.try_recv().is_ok() {
            self.admission.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn the_credential_expiring_first_is_admitted_first() {
        let a = Admission::new(1);
        let held = a.admit(at(10)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |name: &'static str, by| {
            let (a, order) = (a.clone(), order.clone());
            tokio::spawn(async move {
                let _p = a.admit(by).await;
                order.lock().unwrap().push(name);
            })
        };
        let creation = spawn("creation", at(3600));
        tokio::task::yield_now().await;
        let keepalive = spawn("keepalive", at(60));
        tokio::task::yield_now().await;
        assert_eq!(a.counts(), (0, 2));
        drop(held);
        creation.await.unwrap();
        keepalive.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["keepalive", "creation"]);
        assert_eq!(a.counts(), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_and_loses_no_place() {
        let a = Admission::new(1);
        let held = a.admit(at(1)).await;
        let gave_up = tokio::time::timeout(Duration::from_secs(1), a.admit(at(0))).await;
        assert!(gave_up.is_err());
        assert_eq!(a.counts(), (0, 0));
        drop(held);
        assert_eq!(a.counts(), (1, 0));
        let _again = a.admit(at(5)).await;
        assert_eq!(a.counts(), (0, 0));
    }
}
