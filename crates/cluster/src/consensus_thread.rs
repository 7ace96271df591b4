//! A node's consensus work (building blocks, importing committed ones) on an OS thread of its
//! own. On tokio's shared blocking pool it queued behind client requests (`eth_call`, logs,
//! traces), so enough of them could stop block production; here a request can only take CPU
//! time from it, never its turn.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::mpsc,
};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures in order on one thread; it ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct ConsensusThread {
    jobs: mpsc::Sender<Job>,
}

/// The job did not finish: it panicked, or the thread is gone.
#[derive(Debug, thiserror::Error)]
#[error("the consensus thread did not finish the job (it panicked or stopped)")]
pub struct JobLost;

impl ConsensusThread {
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || {
                for job in queue {
                    // A panicking job loses its answer (its caller sees `JobLost`), not the
                    // thread.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// `job`'s result, once the thread has run it and everything queued before it.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, JobLost> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(job());
            }))
            .map_err(|_| JobLost)?;
        result.await.map_err(|_| JobLost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_off_the_runtime_and_a_panic_loses_only_its_own() {
        let thread = ConsensusThread::start().unwrap();
        let name = thread
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("consensus"));
        assert!(thread.run(|| panic!("a bad block")).await.is_err());
        assert_eq!(thread.run(|| 7).await.unwrap(), 7);
    }
}
