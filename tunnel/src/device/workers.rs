//! Data-plane worker threads: each runs its own single-threaded tokio
//! runtime, on which its TUN queue and UDP sockets are registered and its
//! loops run.
//!
//! One multi-threaded runtime for every loop lets any thread poll any
//! socket: each wakeup also wakes idle threads to steal work, and a flow's
//! receive and send halves hop between cores. Measured on 16 cores, one
//! TCP stream through such a daemon used ~1.5 cores against 1.0 for the
//! same traffic on one thread, and moved less. A thread per worker keeps a
//! peer's decryption (its `SO_REUSEPORT` socket) and the replies to it (the
//! TUN queue the kernel steers that flow to, the one its packets were
//! written to) on one core, and other peers on other cores.

use std::io;
use std::thread::JoinHandle;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// One worker: its runtime's handle (to register IO and spawn loops on it)
/// and what stops it.
struct Worker {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The running workers. Dropping them stops every worker's runtime (its
/// loops and their sockets and queues with it) and waits for the threads.
pub(super) struct Workers(Vec<Worker>);

impl Workers {
    /// Starts `count` worker threads, named `{name}-w{i}`.
    pub(super) fn start(name: &str, count: usize) -> io::Result<Self> {
        let mut workers = Self(Vec::with_capacity(count));
        for i in 0..count {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("{name}-w{i}"))
                .spawn(move || {
                    // Spawned loops run while this blocks; a dropped sender
                    // (the daemon is gone) stops it too.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            workers.0.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(workers)
    }

    /// How many workers run.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The runtime of worker `i`: IO objects created while it is entered
    /// are driven by that worker, tasks spawned on it run there.
    pub(super) fn handle(&self, i: usize) -> &Handle {
        &self.0[i % self.0.len()].handle
    }

    /// Every worker's runtime, in order.
    pub(super) fn handles(&self) -> Vec<Handle> {
        self.0.iter().map(|w| w.handle.clone()).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
        }
        let me = std::thread::current().id();
        for worker in &mut self.0 {
            if let Some(thread) = worker.thread.take() {
                // The last reference can go away on a worker itself (a task
                // it was running held the daemon): it cannot wait for itself.
                if thread.thread().id() != me {
                    let _ = thread.join();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn each_worker_runs_its_tasks_on_its_own_thread_and_stops_when_dropped() {
        let workers = Workers::start("t", 3).unwrap();
        assert_eq!(workers.len(), 3);
        let names: Vec<String> = (0..3)
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::channel();
                workers.handle(i).spawn(async move {
                    let name = std::thread::current().name().map(str::to_string);
                    tx.send(name).unwrap();
                });
                rx.recv().unwrap().unwrap()
            })
            .collect();
        assert_eq!(names, ["t-w0", "t-w1", "t-w2"]);

        // A task still pending when the workers go is dropped with them.
        let alive = Arc::new(AtomicUsize::new(0));
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let guard = Guard(alive.clone());
        workers.handle(1).spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert_eq!(alive.load(Ordering::SeqCst), 1, "pending task dropped");
    }
}
