//! The local process executor: jobs run for real on this machine.
//!
//! * Each job is a child process in its **own process group**, so cancellation reaches everything
//!   the job started (`kill -TERM -<pgid>`, then `KILL` after a grace period).
//! * **Limits** are applied by running the job under util-linux `prlimit` (`--cpu`, `--as`,
//!   `--nofile`, `--nproc`), which sets them before exec and so binds the whole process tree
//!   without any `unsafe` `pre_exec` hook. If limits are requested and `prlimit` is missing, the
//!   submission is refused rather than silently run unlimited.
//! * **Logs**: stdout and stderr go to `<root>/<id>.log`.
//! * **Exit codes** and signals are reported in [`JobStatus`]; a job whose wall-clock `timeout`
//!   passes is killed and reported as failed with detail `timeout`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{ExecError, ExecId, ExecSpec, Executor, JobState, JobStatus};

struct LocalJob {
    child: Child,
    started: Instant,
    timeout: Option<Duration>,
    log: PathBuf,
    /// Final status once observed (the child is reaped only once).
    done: Option<JobStatus>,
    cancel_requested: bool,
    timed_out: bool,
}

/// Runs jobs as local processes.
pub struct LocalExecutor {
    root: PathBuf,
    prlimit: Option<PathBuf>,
    next: Mutex<u64>,
    jobs: Mutex<BTreeMap<ExecId, LocalJob>>,
    /// Time between TERM and KILL on cancel.
    pub grace: Duration,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExecError {
    let context = context.into();
    move |source| ExecError::Io { context, source }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl LocalExecutor {
    /// An executor keeping logs under `root` (created if missing).
    pub fn new(root: impl AsRef<Path>) -> Result<Self, ExecError> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(io(format!("creating {}", root.display())))?;
        Ok(Self {
            root,
            prlimit: find_on_path("prlimit"),
            next: Mutex::new(1),
            jobs: Mutex::new(BTreeMap::new()),
            grace: Duration::from_secs(2),
        })
    }

    /// Whether resource limits can be enforced here.
    pub fn supports_limits(&self) -> bool {
        self.prlimit.is_some()
    }

    fn command(&self, spec: &ExecSpec) -> Result<Command, ExecError> {
        let Some((program, args)) = spec.argv.split_first() else {
            return Err(ExecError::InvalidSpec("argv is empty".into()));
        };
        let l = &spec.limits;
        let wants_limits = l.cpu_seconds.is_some()
            || l.memory_bytes.is_some()
            || l.open_files.is_some()
            || l.processes.is_some();
        let mut cmd = if wants_limits {
            let prlimit = self.prlimit.as_ref().ok_or_else(|| {
                ExecError::InvalidSpec(
                    "resource limits requested but `prlimit` is not installed".into(),
                )
            })?;
            let mut c = Command::new(prlimit);
            if let Some(v) = l.cpu_seconds {
                c.arg(format!("--cpu={v}"));
            }
            if let Some(v) = l.memory_bytes {
                c.arg(format!("--as={v}"));
            }
            if let Some(v) = l.open_files {
                c.arg(format!("--nofile={v}"));
            }
            if let Some(v) = l.processes {
                c.arg(format!("--nproc={v}"));
            }
            c.arg("--").arg(program).args(args);
            c
        } else {
            let mut c = Command::new(program);
            c.args(args);
            c
        };
        cmd.envs(&spec.env)
            .current_dir(spec.workdir.as_deref().unwrap_or(&self.root));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Ok(cmd)
    }

    fn signal_group(pid: u32, signal: &str) {
        // The job leads its own process group (pgid = pid); a negative pid addresses the group.
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(format!("-{pid}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn observe(job: &mut LocalJob) -> Result<JobStatus, ExecError> {
        if let Some(done) = &job.done {
            return Ok(done.clone());
        }
        if let Some(limit) = job.timeout
            && job.started.elapsed() > limit
            && !job.timed_out
        {
            job.timed_out = true;
            Self::signal_group(job.child.id(), "KILL");
        }
        match job.child.try_wait().map_err(io("waiting for job"))? {
            None => Ok(JobStatus {
                state: JobState::Running,
                exit_code: None,
                signal: None,
                detail: "running".into(),
            }),
            Some(status) => {
                use std::os::unix::process::ExitStatusExt;
                let (state, detail) = if job.cancel_requested {
                    (JobState::Cancelled, "cancelled".to_owned())
                } else if job.timed_out {
                    (JobState::Failed, "timeout".to_owned())
                } else if status.success() {
                    (JobState::Succeeded, "exit 0".to_owned())
                } else {
                    (JobState::Failed, format!("{status}"))
                };
                let done = JobStatus {
                    state,
                    exit_code: status.code(),
                    signal: status.signal(),
                    detail,
                };
                job.done = Some(done.clone());
                Ok(done)
            }
        }
    }

    /// Waits until the job is terminal or `limit` passes; returns the last status.
    pub fn wait(&self, id: &ExecId, limit: Duration) -> Result<JobStatus, ExecError> {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(id)?;
            if status.state.is_terminal() || Instant::now() >= deadline {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Executor for LocalExecutor {
    fn submit(&self, spec: &ExecSpec) -> Result<ExecId, ExecError> {
        let mut cmd = self.command(spec)?;
        let n = {
            let mut next = self
                .next
                .lock()
                .map_err(|_| ExecError::Engine("lock poisoned".into()))?;
            let n = *next;
            *next += 1;
            n
        };
        let id = ExecId(format!("local-{n}"));
        let log = self.root.join(format!("{}.log", id.0));
        let out = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicating log handle"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawning {:?}", spec.argv.first())))?;
        let job = LocalJob {
            child,
            started: Instant::now(),
            timeout: spec.timeout,
            log,
            done: None,
            cancel_requested: false,
            timed_out: false,
        };
        self.jobs
            .lock()
            .map_err(|_| ExecError::Engine("lock poisoned".into()))?
            .insert(id.clone(), job);
        Ok(id)
    }

    fn status(&self, id: &ExecId) -> Result<JobStatus, ExecError> {
        let mut jobs = self
            .jobs
            .lock()
            .map_err(|_| ExecError::Engine("lock poisoned".into()))?;
        let job = jobs
            .get_mut(id)
            .ok_or_else(|| ExecError::UnknownJob(id.0.clone()))?;
        Self::observe(job)
    }

    fn logs(&self, id: &ExecId) -> Result<String, ExecError> {
        let path = {
            let jobs = self
                .jobs
                .lock()
                .map_err(|_| ExecError::Engine("lock poisoned".into()))?;
            jobs.get(id)
                .ok_or_else(|| ExecError::UnknownJob(id.0.clone()))?
                .log
                .clone()
        };
        let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn cancel(&self, id: &ExecId) -> Result<(), ExecError> {
        let (pid, grace) = {
            let mut jobs = self
                .jobs
                .lock()
                .map_err(|_| ExecError::Engine("lock poisoned".into()))?;
            let job = jobs
                .get_mut(id)
                .ok_or_else(|| ExecError::UnknownJob(id.0.clone()))?;
            if Self::observe(job)?.state.is_terminal() {
                return Ok(());
            }
            job.cancel_requested = true;
            (job.child.id(), self.grace)
        };
        Self::signal_group(pid, "TERM");
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if self.status(id)?.state.is_terminal() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self::signal_group(pid, "KILL");
        Ok(())
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        // Never leave orphaned jobs behind when the executor goes away.
        if let Ok(jobs) = self.jobs.get_mut() {
            for job in jobs.values_mut() {
                if job.done.is_none() && matches!(job.child.try_wait(), Ok(None)) {
                    Self::signal_group(job.child.id(), "KILL");
                    let _ = job.child.wait();
                }
            }
        }
    }
}
