//! The Slurm executor against a real one-node Slurm cluster.
//!
//! Needs the cluster `scripts/slurm-up.sh` starts and its printed settings in the environment, so it
//! is `#[ignore]`d in a plain `cargo test`; CI runs it with:
//! `eval "$(scripts/slurm-up.sh | sed 's/^/export /')" && cargo test -p cpn-exec --test slurm -- --ignored`.

use std::time::Duration;

use cpn_exec::slurm::SlurmExecutor;
use cpn_exec::{ExecSpec, Executor, JobState};

fn sh(script: &str) -> ExecSpec {
    ExecSpec {
        name: "cpn-test".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        timeout: Some(Duration::from_secs(120)),
        ..ExecSpec::default()
    }
}

#[test]
#[ignore = "needs scripts/slurm-up.sh"]
fn slurm_runs_reports_and_cancels_jobs() {
    let ex = SlurmExecutor::from_env().expect("run scripts/slurm-up.sh and export its output");

    let mut spec = sh("echo hello from slurm $DEMO; exit 0");
    spec.env
        .insert("DEMO".into(), "east-data-west-compute".into());
    let id = ex.submit(&spec).expect("submit");
    let st = ex.wait(&id, Duration::from_secs(60)).unwrap();
    assert_eq!(st.state, JobState::Succeeded, "{st:?}");
    assert_eq!(st.exit_code, Some(0));
    let logs = ex.logs(&id).unwrap();
    assert!(
        logs.contains("hello from slurm east-data-west-compute"),
        "{logs:?}"
    );

    let id = ex.submit(&sh("exit 3")).unwrap();
    let st = ex.wait(&id, Duration::from_secs(60)).unwrap();
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    assert_eq!(st.exit_code, Some(3), "{st:?}");

    let id = ex.submit(&sh("sleep 120")).unwrap();
    let mut running = false;
    for _ in 0..100 {
        if ex.status(&id).unwrap().state == JobState::Running {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(running, "job never started");
    ex.cancel(&id).unwrap();
    let st = ex.wait(&id, Duration::from_secs(30)).unwrap();
    assert_eq!(st.state, JobState::Cancelled, "{st:?}");

    assert!(ex.status(&cpn_exec::ExecId("999999".into())).is_err());
}
