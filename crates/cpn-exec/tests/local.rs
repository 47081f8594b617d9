//! The local executor against real processes.

use std::time::Duration;

use cpn_exec::local::LocalExecutor;
use cpn_exec::{ExecSpec, Executor, JobState, Limits};

fn sh(script: &str) -> ExecSpec {
    ExecSpec {
        name: "t".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..ExecSpec::default()
    }
}

fn executor() -> (LocalExecutor, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "cpn-exec-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    (LocalExecutor::new(&dir).expect("executor"), dir)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn runs_a_job_and_reports_logs_and_exit_code() {
    let (ex, dir) = executor();
    let mut spec = sh("echo hello $DEMO; echo oops >&2; exit 0");
    spec.env
        .insert("DEMO".into(), "east-data-west-compute".into());
    let id = ex.submit(&spec).unwrap();
    let st = ex.wait(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(st.state, JobState::Succeeded);
    assert_eq!(st.exit_code, Some(0));
    let logs = ex.logs(&id).unwrap();
    assert!(logs.contains("hello east-data-west-compute"), "{logs}");
    assert!(logs.contains("oops"), "{logs}");

    let id = ex.submit(&sh("exit 7")).unwrap();
    let st = ex.wait(&id, Duration::from_secs(10)).unwrap();
    assert_eq!((st.state, st.exit_code), (JobState::Failed, Some(7)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cancel_kills_the_whole_process_group() {
    let (ex, dir) = executor();
    let marker = dir.join("child.pid");
    // The job starts a grandchild that would outlive a plain kill of the shell.
    let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
    let id = ex.submit(&sh(&script)).unwrap();
    let mut tries = 0;
    while !marker.exists() && tries < 200 {
        std::thread::sleep(Duration::from_millis(10));
        tries += 1;
    }
    assert_eq!(ex.status(&id).unwrap().state, JobState::Running);
    ex.cancel(&id).unwrap();
    let st = ex.wait(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(st.state, JobState::Cancelled);
    let grandchild = std::fs::read_to_string(&marker).unwrap().trim().to_owned();
    std::thread::sleep(Duration::from_millis(200));
    let alive = std::path::Path::new(&format!("/proc/{grandchild}")).exists()
        && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "grandchild {grandchild} survived cancel");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn timeout_and_memory_limit_fail_the_job() {
    let (ex, dir) = executor();
    let mut spec = sh("sleep 30");
    spec.timeout = Some(Duration::from_millis(200));
    let id = ex.submit(&spec).unwrap();
    let st = ex.wait(&id, Duration::from_secs(10)).unwrap();
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.detail, "timeout");

    if ex.supports_limits() {
        // Under 64 MiB of address space the shell cannot hold a 200 MB string.
        let mut spec = sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}");
        spec.limits = Limits {
            memory_bytes: Some(64 * 1024 * 1024),
            ..Limits::default()
        };
        let id = ex.submit(&spec).unwrap();
        let st = ex.wait(&id, Duration::from_secs(30)).unwrap();
        assert_eq!(
            st.state,
            JobState::Failed,
            "{st:?} {}",
            ex.logs(&id).unwrap_or_default()
        );
    }
    assert!(
        ex.submit(&ExecSpec::default()).is_err(),
        "empty argv is rejected"
    );
    let _ = std::fs::remove_dir_all(dir);
}
