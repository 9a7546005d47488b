//! Round trips to the stream's leader shared by every reader waiting at
//! once: a read needs the leader's last sequence as of some moment after
//! it began, so it waits for the next round to start (never one already
//! in flight) and takes that round's answer. One round is in flight at a
//! time, and the next starts as soon as it ends if anyone waits, so under
//! load one request to the leader answers for every read that arrived
//! while the one before was out.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What a round found: the stream's last sequence, or why not.
pub type Found = Result<u64, String>;

/// The rounds' state.
#[derive(Debug, Default)]
struct State {
    /// The number of the last round started (0: none yet).
    started: u64,
    /// True while a round is out.
    in_flight: bool,
    /// The latest round a reader waits for.
    wanted: u64,
}

/// Shared leader round trips ([`Rounds::next`]).
#[derive(Debug)]
pub struct Rounds {
    state: Mutex<State>,
    done: watch::Sender<(u64, Found)>,
}

impl Default for Rounds {
    fn default() -> Self {
        Rounds {
            state: Mutex::new(State::default()),
            done: watch::channel((0, Ok(0))).0,
        }
    }
}

impl Rounds {
    /// The answer of a round that starts after this call: `ask` is the
    /// round trip (run on a task of its own, so that a reader that gives
    /// up stops no round).
    pub async fn next<F, Fut>(self: &Arc<Self>, ask: F) -> Found
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Found> + Send + 'static,
    {
        let mut rx = self.done.subscribe();
        let (target, drive) = {
            let Ok(mut s) = self.state.lock() else {
                return Err("the rounds' lock is poisoned".into());
            };
            if s.in_flight {
                s.wanted = s.wanted.max(s.started + 1);
                (s.started + 1, false)
            } else {
                s.started += 1;
                s.in_flight = true;
                (s.started, true)
            }
        };
        if drive {
            let rounds = Arc::clone(self);
            tokio::spawn(async move { rounds.drive(ask).await });
        }
        match rx.wait_for(|(round, _)| *round >= target).await {
            Ok(found) => found.1.clone(),
            Err(_) => Err("the rounds stopped".into()),
        }
    }

    /// Runs rounds while readers wait for one.
    async fn drive<F, Fut>(&self, ask: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Found>,
    {
        loop {
            let round = match self.state.lock() {
                Ok(s) => s.started,
                Err(_) => return,
            };
            let found = ask().await;
            let _previous = self.done.send_replace((round, found));
            let Ok(mut s) = self.state.lock() else { return };
            if s.wanted > round {
                s.started = round + 1;
            } else {
                s.in_flight = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn readers_share_rounds_and_never_take_one_already_out() {
        let rounds = Arc::new(Rounds::default());
        let asked = Arc::new(AtomicU64::new(0));
        let ask = {
            let asked = Arc::clone(&asked);
            move || {
                let asked = Arc::clone(&asked);
                async move {
                    let n = asked.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(n)
                }
            }
        };
        // The first reader starts round 1.
        let first = tokio::spawn({
            let (rounds, ask) = (Arc::clone(&rounds), ask.clone());
            async move { rounds.next(ask).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Ten readers arrive while round 1 is out: all take round 2.
        let later: Vec<_> = (0..10)
            .map(|_| {
                let (rounds, ask) = (Arc::clone(&rounds), ask.clone());
                tokio::spawn(async move { rounds.next(ask).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(1));
        for l in later {
            assert_eq!(l.await.unwrap(), Ok(2));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }
}
