//! The open connections: how many, which are busy with a request, and which has been idle the longest,
//! so that a new connection at the limit (or when descriptors run out) can take the place of the
//! stalest idle one instead of waiting behind it. Idle means no request in progress: between keep-alive
//! requests, or not yet sent a complete header.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// One open connection.
pub struct Connection {
    id: u64,
    in_flight: AtomicUsize,
    /// Milliseconds since the registry started when the last request ended (or the connection opened).
    idle_since: AtomicU64,
    /// Asks the connection to finish its current response, if any, and close (shutdown).
    pub close: Notify,
    /// Tells an idle connection to close at once: it has no response to finish, and a header still
    /// trickling in must not hold its place until the header timeout.
    pub evict: Notify,
    registry: Arc<Registry>,
}

/// Marks a connection busy while a request is being answered.
pub struct Busy(Arc<Connection>);

impl Connection {
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .idle_since
            .store(self.0.registry.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[derive(Default)]
pub struct Registry {
    started: Option<Instant>,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, std::sync::Weak<Connection>>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Some(Instant::now()),
            ..Self::default()
        })
    }

    /// Registers a new connection; it leaves the registry when the last handle to it is dropped.
    pub fn open(self: &Arc<Self>) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
            evict: Notify::new(),
            registry: Arc::clone(self),
        });
        self.lock()
            .insert(connection.id, Arc::downgrade(&connection));
        connection
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tells the connection idle the longest to close; false when every connection is busy.
    pub fn evict_stalest_idle(&self) -> bool {
        let stalest = self
            .snapshot()
            .into_iter()
            .filter(|connection| connection.in_flight.load(Ordering::Relaxed) == 0)
            .min_by_key(|connection| connection.idle_since.load(Ordering::Relaxed));
        match stalest {
            Some(connection) => {
                // Idle now, so it is not counted again before it closes.
                connection.in_flight.fetch_add(1, Ordering::Relaxed);
                connection.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close once its current response is written.
    pub fn close_all(&self) {
        for connection in self.snapshot() {
            connection.close.notify_one();
        }
    }

    /// Handles to the open connections, taken under the lock and used after it is released: a handle
    /// may turn out to be a connection's last one (its task ended meanwhile), and dropping it runs
    /// `Connection::drop`, which takes the lock again.
    fn snapshot(&self) -> Vec<Arc<Connection>> {
        self.lock()
            .values()
            .filter_map(std::sync::Weak::upgrade)
            .collect()
    }

    fn now_ms(&self) -> u64 {
        self.started
            .map_or(0, |started| started.elapsed().as_millis())
            .try_into()
            .unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, std::sync::Weak<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stalest_idle_connection_is_evicted_and_busy_ones_never() {
        let registry = Registry::new();
        let first = registry.open();
        let second = registry.open();
        let _busy = first.busy();
        assert_eq!(registry.len(), 2);

        assert!(registry.evict_stalest_idle());
        assert!(!registry.evict_stalest_idle(), "second is already closing");

        drop(second);
        assert_eq!(registry.len(), 1);
    }

    /// Runs `act` against a registry while another thread drops the connection's own handle the moment
    /// `act` holds one too (as a connection's task ends when told to close), so that `act`'s handle is
    /// the last; many rounds. False if a round did not finish: a deadlock.
    fn survives_connections_ending_meanwhile(act: fn(&Registry)) -> bool {
        let (finished, rounds_done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..300 {
                let registry = Registry::new();
                // Idle the longest, so eviction picks it and lets go of the other handle it took.
                let _stalest = registry.open();
                let connection = registry.open();
                connection.idle_since.store(u64::MAX, Ordering::Relaxed);
                let start = Arc::new(std::sync::Barrier::new(2));
                let ending = std::thread::spawn({
                    let start = Arc::clone(&start);
                    move || {
                        start.wait();
                        let give_up = Instant::now() + std::time::Duration::from_millis(20);
                        while Arc::strong_count(&connection) < 2 && Instant::now() < give_up {
                            std::hint::spin_loop();
                        }
                        drop(connection);
                    }
                });
                start.wait();
                act(&registry);
                let _ = ending.join();
            }
            let _ = finished.send(());
        });
        rounds_done
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_ok()
    }

    #[test]
    fn closing_every_connection_never_deadlocks_when_a_connection_ends_meanwhile() {
        assert!(survives_connections_ending_meanwhile(Registry::close_all));
    }

    #[test]
    fn evicting_never_deadlocks_when_the_connection_ends_meanwhile() {
        assert!(survives_connections_ending_meanwhile(|registry| {
            registry.evict_stalest_idle();
        }));
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told_to_close() {
        let registry = Registry::new();
        let connection = registry.open();
        assert!(registry.evict_stalest_idle());
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            connection.evict.notified(),
        )
        .await
        .unwrap();
    }
}
