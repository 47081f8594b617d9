//! The writer thread, the reader pool and error mapping.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use store::{StoreError, StoreErrorKind, StoreResult};

/// How hard a commit tries to reach the disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: acknowledged writes survive a crash of the process
    /// (kill -9); the last transactions may be lost on power failure. The default.
    #[default]
    ProcessCrash,
    /// `synchronous=FULL`: every commit is fsynced; survives power loss, slower.
    PowerLoss,
}

/// Options for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// See [`Durability`].
    pub durability: Durability,
    /// Most writes folded into one transaction.
    pub max_batch: usize,
    /// Idle read connections kept open.
    pub max_idle_readers: usize,
    /// The WAL size (bytes) past which the writer lets the WAL start over (see
    /// [`checkpoint_loop`]); the file is also cut back to this size when it does.
    pub wal_restart_bytes: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            max_batch: 512,
            max_idle_readers: 8,
            wal_restart_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Runs after the batch's commit with the commit's outcome and delivers the reply.
type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A queued write: runs inside the writer's transaction and returns its completion.
/// Given an error instead of a connection (no transaction could be started), it does
/// not run and its completion reports that error.
type WriteJob = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> Completion + Send>;

/// A write that can run more than once (its work only borrows its data): the writer runs a
/// sequence of them without a savepoint each, and only if one fails undoes the sequence
/// and runs it again, each in its own savepoint (see [`writer_loop`]).
struct RerunJob {
    /// One attempt inside the writer's transaction.
    attempt: RerunAttempt,
    /// Told the last attempt's outcome and the commit's error, once the fate is known.
    finish: RerunFinish,
}

/// One attempt of a [`RerunJob`].
type RerunAttempt = Box<dyn FnMut(&Connection) -> StoreResult<()> + Send>;
/// A [`RerunJob`]'s completion: its last attempt's outcome, the commit's error, and the
/// attempt itself, handed back so that its data (a batch's rows and history, thousands of
/// allocations made on the request workers) is freed by the caller, not by the writer.
type RerunFinish = Box<dyn FnOnce(StoreResult<()>, Option<&StoreError>, RerunAttempt) + Send>;

/// What the writer queue carries.
enum Job {
    /// Runs once, in its own savepoint.
    Once(WriteJob),
    /// See [`RerunJob`].
    Rerun(RerunJob),
}

/// The embedded store. Cheap to clone; all clones share one writer and one pool.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Dropped with the store: stops the checkpoint thread.
    _stop_checkpoints: Mutex<mpsc::Sender<()>>,
    readers: Mutex<Vec<Connection>>,
    max_idle_readers: usize,
    /// The NGSI-LD broker's in-memory index (see `NgsiStore::index_slot`).
    ngsi_index: store::IndexSlot,
    /// Numbers new temporal series (see `ngsi_temporal::SeriesIds`).
    series_ids: Arc<crate::ngsi_temporal::SeriesIds>,
    /// Tenants whose `ngsi_tenants` row a committed write of this store has seen or made.
    ngsi_tenants: Arc<crate::ngsi::RegisteredTenants>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` with default options.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_with(data_dir, OpenOptions::default())
    }

    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open_with(data_dir: &Path, options: OpenOptions) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::backend(format!(
                "creating data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(crate::DATABASE_FILE);
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::backend(format!("opening {}: {e}", path.display())))?;
        configure(&conn, options.durability)?;
        crate::migrations::migrate(&mut conn)?;

        conn.pragma_update(None, "journal_size_limit", options.wal_restart_bytes as i64)
            .map_err(backend)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let max_batch = options.max_batch.max(1);
        let restart_wal = Arc::new(AtomicBool::new(false));
        let writer_restart = Arc::clone(&restart_wal);
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, receiver, max_batch, &writer_restart))
            .map_err(|e| StoreError::backend(format!("starting the writer thread: {e}")))?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let checkpoint_path = path.clone();
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                checkpoint_loop(
                    &checkpoint_path,
                    stopped,
                    options.wal_restart_bytes,
                    &restart_wal,
                )
            })
            .map_err(|e| StoreError::backend(format!("starting the checkpoint thread: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                writer: Mutex::new(Some(sender)),
                writer_thread: Mutex::new(Some(writer_thread)),
                _stop_checkpoints: Mutex::new(stop_checkpoints),
                readers: Mutex::new(Vec::new()),
                max_idle_readers: options.max_idle_readers,
                ngsi_index: store::IndexSlot::new(),
                series_ids: Arc::default(),
                ngsi_tenants: Arc::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// See `NgsiStore::index_slot`.
    pub(crate) fn ngsi_index_slot(&self) -> &store::IndexSlot {
        &self.shared.ngsi_index
    }

    /// The NGSI-LD tenants known to be registered (see `ngsi::RegisteredTenants`).
    pub(crate) fn ngsi_tenants(&self) -> Arc<crate::ngsi::RegisteredTenants> {
        Arc::clone(&self.shared.ngsi_tenants)
    }

    /// The writer's numbering of new temporal series.
    pub(crate) fn series_ids(&self) -> Arc<crate::ngsi_temporal::SeriesIds> {
        Arc::clone(&self.shared.series_ids)
    }

    /// Runs `work` in the writer's transaction; resolves once it is committed.
    pub(crate) async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        self.write_then(work, |_| {}).await
    }

    /// Like [`SqliteStore::write`]; `then` runs on the writer once the write's fate is
    /// known (`true`: committed), in commit order, before the call resolves.
    pub(crate) async fn write_then<R, F, T>(&self, work: F, then: T) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
        T: FnOnce(bool) + Send + 'static,
    {
        self.queue_then(work, then).await
    }

    /// [`SqliteStore::write_then`], queued at once (before the returned future is first
    /// polled), so writes queued one after another by one caller run in that order. `then`
    /// runs exactly once, also when the store is closed.
    pub(crate) fn queue_then<R, F, T>(
        &self,
        work: F,
        then: T,
    ) -> impl std::future::Future<Output = StoreResult<R>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
        T: FnOnce(bool) + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<StoreResult<R>>();
        let job: WriteJob = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => in_savepoint(conn, work),
                Err(error) => Err(error.clone()),
            };
            Box::new(move |commit_error| {
                let outcome = match commit_error {
                    Some(error) => Err(error.clone()),
                    None => result,
                };
                then(outcome.is_ok());
                // The caller may have gone away (request cancelled); the write stands.
                let _ = reply.send(outcome);
            })
        });
        self.send(Job::Once(job));
        async move { answer.await.map_err(|_| unavailable())? }
    }

    /// Like [`SqliteStore::queue_then`] for a write that may run more than once: `work`
    /// must have the same effect each time it runs in the same transaction state (it only
    /// reads what it was given). Such writes queued back to back share one savepoint (or
    /// none, at the start of a transaction) instead of one each; a failing one costs a
    /// re-run of its neighbours.
    pub(crate) fn queue_rerunnable<F, T>(
        &self,
        work: F,
        then: T,
    ) -> impl std::future::Future<Output = StoreResult<()>> + Send + 'static
    where
        F: FnMut(&Connection) -> StoreResult<()> + Send + 'static,
        T: FnOnce(bool) + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<(StoreResult<()>, RerunAttempt)>();
        self.send(Job::Rerun(RerunJob {
            attempt: Box::new(work),
            finish: Box::new(move |result, commit_error, spent| {
                let outcome = match commit_error {
                    Some(error) => Err(error.clone()),
                    None => result,
                };
                then(outcome.is_ok());
                // If the caller has gone away, the attempt comes back here and is freed on
                // the writer after all.
                let _ = reply.send((outcome, spent));
            }),
        }));
        async move {
            let (outcome, spent) = answer.await.map_err(|_| unavailable())?;
            drop(spent);
            outcome
        }
    }

    /// Queues `job` on the writer, or reports the refusal through it (so `then` still runs).
    fn send(&self, job: Job) {
        let refused = match self.shared.writer.lock() {
            Ok(writer) => match writer.as_ref() {
                Some(sender) => sender.send(job).err().map(|mpsc::SendError(job)| job),
                None => Some(job),
            },
            Err(_) => Some(job),
        };
        if let Some(job) = refused {
            let error = unavailable();
            fail(job, &error);
        }
    }

    /// Runs `work` on a pooled read connection on a blocking thread.
    pub(crate) async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let conn = shared.take_reader()?;
            let result = work(&conn);
            shared.return_reader(conn);
            result
        })
        .await
        .map_err(|e| StoreError::backend(format!("read task failed: {e}")))?
    }

    /// Stops the writer after it has finished every queued write. Later writes fail
    /// with `Unavailable`. Called on graceful shutdown; dropping the last clone has the
    /// same effect without waiting.
    pub fn close(&self) {
        if let Ok(mut writer) = self.shared.writer.lock() {
            writer.take();
        }
        if let Ok(mut thread) = self.shared.writer_thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }
}

impl Shared {
    fn take_reader(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.readers.lock().map_err(|_| unavailable())?.pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::backend(format!("opening a read connection: {e}")))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        Ok(conn)
    }

    fn return_reader(&self, conn: Connection) {
        if let Ok(mut readers) = self.readers.lock()
            && readers.len() < self.max_idle_readers
        {
            readers.push(conn);
        }
    }
}

/// The page size of a new database. SQLite's default is 4 KiB; with 16 KiB pages a batch
/// of history instances splits and rebalances a quarter as many B-tree pages, and the page
/// cache has a quarter as many entries to walk at each commit (measured: batches of 1000
/// entities +20-25% on the store alone, single writes unchanged). An existing database keeps
/// the page size it was created with (SQLite changes it only by `VACUUM` outside WAL mode),
/// and works the same either way.
pub const NEW_DATABASE_PAGE_SIZE: i64 = 16 * 1024;

fn configure(conn: &Connection, durability: Durability) -> StoreResult<()> {
    // Before the switch to WAL: on an empty database this sets the page size its first
    // write lays down; on an existing one it is a no-op.
    conn.pragma_update(None, "page_size", NEW_DATABASE_PAGE_SIZE)
        .map_err(backend)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(format!(
            "could not switch to WAL mode (got {mode})"
        )));
    }
    let synchronous = match durability {
        Durability::ProcessCrash => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    // The writer's page cache: SQLite's default (2 MiB) is far smaller than the working set
    // of a busy store, so inserts re-read pages from the OS and spill dirty pages mid
    // transaction. Savepoint journals stay in memory. The writer does not checkpoint: the
    // checkpoint thread does (see `checkpoint_loop`), off the write path. Durability is
    // unchanged (commits are in the WAL either way).
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(backend)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(backend)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    // Every statement of the write path stays prepared (rusqlite keeps 16 by default, fewer
    // than the writer uses, and an evicted statement is compiled again on its next use).
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Runs one write inside a savepoint so its failure undoes only its own changes.
fn in_savepoint<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<R>,
) -> StoreResult<R> {
    conn.prepare_cached("SAVEPOINT write_job")
        .and_then(|mut s| s.execute([]))
        .map_err(backend)?;
    match work(conn) {
        Ok(value) => {
            conn.prepare_cached("RELEASE write_job")
                .and_then(|mut s| s.execute([]))
                .map_err(backend)?;
            Ok(value)
        }
        Err(error) => {
            // If even the rollback fails the transaction is broken; the commit will
            // fail too and every job in the batch gets that error.
            let _ = conn.execute_batch("ROLLBACK TO write_job; RELEASE write_job");
            Err(error)
        }
    }
}

/// How often the checkpoint thread copies the WAL back into the database file while the WAL
/// is below its bound (above it, at every size check). Each checkpoint also syncs the database
/// file: on a disk, single writes ran about a fifth slower with a checkpoint every 250 ms than
/// every 2 s (measured, stop 18).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(2000);

/// Runs passive checkpoints on its own connection until `stop`'s sender is dropped, so that
/// the writer never spends its time copying the WAL (a passive checkpoint neither waits for
/// nor blocks the writer or readers). The last connection to close checkpoints what is left.
///
/// The WAL starts over from its beginning only when a write transaction begins after every
/// frame has been copied. Under a steady stream of commits a checkpoint running beside the
/// writer never catches up with it, so the WAL would grow for as long as the load lasts
/// (measured: 650-800 MB by the end of `citybrain bench ngsi-ld`, growing all through it).
/// Once the WAL is larger than `restart_bytes`, this asks the writer (`restart`) to run one
/// passive checkpoint itself between two transactions, when it is the only writer: that
/// copies the few frames left, and its next transaction restarts the WAL
/// (`journal_size_limit` then cuts the file back).
fn checkpoint_loop(
    path: &Path,
    stop: mpsc::Receiver<()>,
    restart_bytes: u64,
    restart: &AtomicBool,
) {
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(%error, "no checkpoint connection; the WAL is copied on close only");
            return;
        }
    };
    let wal = wal_path(path);
    let mut last = std::time::Instant::now();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(WAL_SIZE_CHECK_EVERY) {
        let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > restart_bytes);
        if !large && last.elapsed() < CHECKPOINT_EVERY {
            continue;
        }
        last = std::time::Instant::now();
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {
                if large {
                    restart.store(true, Ordering::Relaxed);
                }
            }
            Err(error) => tracing::debug!(%error, "passive checkpoint failed"),
        }
    }
}

/// How often the checkpoint thread looks at the WAL's size.
const WAL_SIZE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Reports `error` through a job that did not run.
fn fail(job: Job, error: &StoreError) {
    match job {
        Job::Once(job) => job(Err(error))(Some(error)),
        Job::Rerun(job) => (job.finish)(Err(error.clone()), Some(error), job.attempt),
    }
}

/// A job of the current transaction, waiting for the commit.
enum Pending {
    Once(Completion),
    Rerun(RerunJob, StoreResult<()>),
}

/// The sequence of re-runnable jobs being run back to back (`pending[start..]`).
struct Run {
    start: usize,
    /// Whether the sequence began the transaction (it then runs without a savepoint: undoing
    /// it is a rollback of the transaction).
    at_begin: bool,
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(backend)
}

/// Ends the current run of re-runnable jobs. If one of them failed (`failed`), the run's
/// changes are undone and every job of the run is run again, each in its own savepoint, so
/// the failure undoes only its own changes. Errors here leave the transaction broken: the
/// run's jobs get the error and the commit fails.
fn close_run(conn: &Connection, pending: &mut [Pending], run: Run, failed: bool) {
    let jobs = &mut pending[run.start..];
    let outcome = if !failed {
        if run.at_begin {
            Ok(())
        } else {
            exec(conn, "RELEASE write_run")
        }
    } else {
        let undone = if run.at_begin {
            exec(conn, "ROLLBACK").and_then(|()| exec(conn, "BEGIN IMMEDIATE"))
        } else {
            exec(conn, "ROLLBACK TO write_run").and_then(|()| exec(conn, "RELEASE write_run"))
        };
        undone.map(|()| {
            for job in jobs.iter_mut() {
                if let Pending::Rerun(job, result) = job {
                    *result = in_savepoint(conn, &mut job.attempt);
                }
            }
        })
    };
    if let Err(error) = outcome {
        for job in jobs.iter_mut() {
            if let Pending::Rerun(_, result) = job {
                *result = Err(error.clone());
            }
        }
    }
}

/// Runs `job` in the open transaction: a once-job in its own savepoint; a re-runnable one in
/// the current run (opened here if needed) without a savepoint of its own.
fn run_job(conn: &Connection, pending: &mut Vec<Pending>, run: &mut Option<(Run, bool)>, job: Job) {
    match job {
        Job::Once(job) => {
            if let Some((r, failed)) = run.take() {
                close_run(conn, pending, r, failed);
            }
            pending.push(Pending::Once(job(Ok(conn))));
        }
        Job::Rerun(mut job) => {
            if run.is_none() {
                let at_begin = pending.is_empty();
                let start = pending.len();
                if !at_begin && let Err(error) = exec(conn, "SAVEPOINT write_run") {
                    pending.push(Pending::Rerun(job, Err(error)));
                    return;
                }
                *run = Some((Run { start, at_begin }, false));
            }
            let Some((_, failed)) = run.as_mut() else {
                return;
            };
            // After a failure the run is re-run from its start anyway; later jobs wait.
            let result = if *failed { Ok(()) } else { (job.attempt)(conn) };
            if result.is_err() {
                *failed = true;
            }
            pending.push(Pending::Rerun(job, result));
        }
    }
}

/// The writer: each group is the writes queued when it starts, up to `max_batch`, committed
/// together. It never waits for more: a 200 µs linger for stragglers once cost single creates
/// 8-30% on a 2-core machine, where the writer is what requests wait on (stop 17; see
/// docs/bench-ngsi-ld.md, round 6).
fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    max_batch: usize,
    restart_wal: &AtomicBool,
) {
    let mut pending: Vec<Pending> = Vec::with_capacity(max_batch);
    while let Ok(first) = jobs.recv() {
        if restart_wal.swap(false, Ordering::Relaxed) {
            // Between transactions: see `checkpoint_loop`.
            if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(%error, "the writer's passive checkpoint failed");
            }
        }
        if let Err(error) = exec(&conn, "BEGIN IMMEDIATE") {
            fail(first, &error);
            continue;
        }
        let mut run = None;
        run_job(&conn, &mut pending, &mut run, first);
        while pending.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => run_job(&conn, &mut pending, &mut run, job),
                Err(_) => break,
            }
        }
        if let Some((r, failed)) = run.take() {
            close_run(&conn, &mut pending, r, failed);
        }
        let commit_error = exec(&conn, "COMMIT").err();
        if commit_error.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in pending.drain(..) {
            match job {
                Pending::Once(completion) => completion(commit_error.as_ref()),
                Pending::Rerun(job, result) => {
                    (job.finish)(result, commit_error.as_ref(), job.attempt)
                }
            }
        }
    }
    // All senders are gone: every queued write has been committed and answered.
}

fn unavailable() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "the store is closed")
}

/// Maps a SQLite error: uniqueness violations become `AlreadyExists`.
pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &error
        && failure.code == rusqlite::ErrorCode::ConstraintViolation
        && matches!(
            failure.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        )
    {
        return StoreError::already_exists(error.to_string());
    }
    StoreError::backend(error.to_string())
}
