//! [`Shutdown`]: the owner's handle on a graceful stop; [`StopSignal`]: what
//! a task holds to learn that it must stop; [`TaskGuard`] / [`TaskGroup`]:
//! how the owner learns that every task has ended.
//!
//! The shape follows tokio's mini-redis (`shutdown.rs`, `server.rs`): the
//! signal is a named type rather than a bare channel, and completion is
//! one channel whose senders the tasks hold, so the owner waits for the
//! channel to close instead of counting.
//!
//! ```
//! use atrelay::lifecycle::Shutdown;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let shutdown = Shutdown::new();
//! let (mut stop, guard) = (shutdown.signal(), shutdown.guard());
//! tokio::spawn(async move {
//!     let _guard = guard; // held until the task ends
//!     stop.stopping().await;
//! });
//! shutdown.begin();
//! // Returns once the task above has dropped its guard.
//! assert!(shutdown.finish(std::time::Duration::from_secs(1)).await.is_ok());
//! # }
//! ```

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// "Stop now", as a task sees it: cheap to clone, awaited in a `select!`
/// beside the task's work, or read without waiting by a thread.
///
/// A `watch` channel rather than mini-redis's `broadcast`: a blocking
/// thread (the sequencer, the mirror's writer) must read the state without
/// a runtime, and a task that subscribes after the signal still sees it.
/// The signal also counts as given when its [`Shutdown`] is dropped, so a
/// task never outlives a forgotten owner.
#[derive(Clone, Debug)]
pub struct StopSignal {
    stopping: watch::Receiver<bool>,
}

impl StopSignal {
    /// True once the stop has begun (or the owner is gone and had begun it).
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Returns once the stop has begun or the owner is gone. Cancel-safe,
    /// so it can sit in a `select!` inside a loop.
    pub async fn stopping(&mut self) {
        let _ = self.stopping.wait_for(|stopping| *stopping).await;
    }
}

/// Held by a task the owner must wait for (one that holds the log, say):
/// when the last guard is dropped, [`TaskGroup::ended`] returns. Holding a
/// guard is the whole contract; it has no methods.
#[derive(Clone, Debug)]
pub struct TaskGuard {
    _alive: mpsc::Sender<()>,
}

/// Hands out [`TaskGuard`]s and waits until every one is gone.
///
/// The channel's capacity is 1 and nothing is ever sent: only its closing
/// (every sender dropped) is observed.
#[derive(Debug)]
pub struct TaskGroup {
    guard: TaskGuard,
    gone: mpsc::Receiver<()>,
}

impl TaskGroup {
    /// A group with no task in it yet.
    pub fn new() -> TaskGroup {
        let (alive, gone) = mpsc::channel(1);
        TaskGroup {
            guard: TaskGuard { _alive: alive },
            gone,
        }
    }

    /// A guard for one more task.
    pub fn guard(&self) -> TaskGuard {
        self.guard.clone()
    }

    /// Returns once every guard handed out has been dropped.
    pub async fn ended(self) {
        let TaskGroup { guard, mut gone } = self;
        drop(guard);
        while gone.recv().await.is_some() {}
    }
}

impl Default for TaskGroup {
    fn default() -> TaskGroup {
        TaskGroup::new()
    }
}

/// The owner's side of a graceful stop: gives out [`StopSignal`]s and
/// [`TaskGuard`]s at start, then [`begin`](Self::begin)s the stop and
/// [`finish`](Self::finish)es it by waiting for every guard.
#[derive(Debug)]
pub struct Shutdown {
    notify: watch::Sender<bool>,
    tasks: TaskGroup,
}

/// [`Shutdown::finish`]'s grace ran out with tasks still holding guards.
#[derive(Debug, thiserror::Error)]
#[error("some tasks did not end within {0:?}")]
pub struct StillRunning(pub Duration);

impl Shutdown {
    /// Not stopping, no task yet.
    pub fn new() -> Shutdown {
        Shutdown {
            notify: watch::Sender::new(false),
            tasks: TaskGroup::new(),
        }
    }

    /// A signal for one task (any number may be taken).
    pub fn signal(&self) -> StopSignal {
        StopSignal {
            stopping: self.notify.subscribe(),
        }
    }

    /// A guard for one task that [`finish`](Self::finish) must wait for.
    pub fn guard(&self) -> TaskGuard {
        self.tasks.guard()
    }

    /// Tells every task to stop, without waiting. Giving it again is
    /// harmless.
    pub fn begin(&self) {
        self.notify.send_replace(true);
    }

    /// Begins the stop (if not yet begun) and waits until every guard is
    /// dropped, for up to `grace`.
    pub async fn finish(self, grace: Duration) -> Result<(), StillRunning> {
        self.begin();
        let Shutdown { notify, tasks } = self;
        let ended = tokio::time::timeout(grace, tasks.ended()).await;
        // Kept until here: dropping it earlier would also stop the tasks,
        // but a stop that is only a side effect of a drop is harder to read.
        drop(notify);
        ended.map_err(|_| StillRunning(grace))
    }
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_taken_after_the_stop_still_sees_it() {
        let shutdown = Shutdown::new();
        shutdown.begin();
        let mut stop = shutdown.signal();
        assert!(stop.is_stopping());
        stop.stopping().await;
    }

    #[tokio::test]
    async fn dropping_the_owner_stops_the_tasks() {
        let shutdown = Shutdown::new();
        let mut stop = shutdown.signal();
        drop(shutdown);
        // Not `is_stopping`: nobody began the stop; but a waiting task ends.
        assert!(!stop.is_stopping());
        tokio::time::timeout(Duration::from_secs(1), stop.stopping())
            .await
            .expect("the signal counts as given once its owner is gone");
    }

    #[tokio::test]
    async fn finish_waits_for_every_guard() {
        let shutdown = Shutdown::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let guard = shutdown.guard();
        tokio::spawn(async move {
            let _guard = guard;
            let _ = rx.await;
        });
        let finishing = tokio::spawn(shutdown.finish(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!finishing.is_finished(), "a guard is still held");
        tx.send(()).unwrap();
        finishing
            .await
            .unwrap()
            .expect("ends once the guard is gone");
    }

    #[tokio::test]
    async fn finish_gives_up_after_the_grace() {
        let shutdown = Shutdown::new();
        let _held = shutdown.guard();
        let err = shutdown
            .finish(Duration::from_millis(20))
            .await
            .expect_err("a guard is still held");
        assert_eq!(err.0, Duration::from_millis(20));
    }
}
