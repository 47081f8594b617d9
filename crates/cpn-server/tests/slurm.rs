//! Jobs submitted through `/cpn/v1` to a Slurm site run on the real one-node cluster that
//! `scripts/slurm-up.sh` starts: status, logs, exit codes and cancellation end to end.
//! `#[ignore]`d in a plain `cargo test`; `scripts/test` runs it with `--run-ignored all` after
//! exporting the script's settings.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Platform, sh, site};

const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs scripts/slurm-up.sh"]
async fn jobs_run_report_logs_and_cancel_on_slurm() {
    let slurm = cpn_exec::slurm::SlurmExecutor::from_env()
        .expect("run scripts/slurm-up.sh and export its output");
    let p = Platform::new(|c| {
        c.slurm = Some(slurm);
        c.heartbeat_timeout = Duration::from_secs(10);
    })
    .await;
    let r = p
        .register("slurm", site("hpc-west", "gansu", "CN-GS", 1.0, 0.05))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let id = p
        .submit(sh("echo hello from slurm job $CPN_JOB_ID", 1.0, 10.0))
        .await;
    let done = p.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["site"], "hpc-west");
    assert_eq!(done["exit_code"], 0);
    let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
    assert!(
        logs.text.contains(&format!("hello from slurm job {id}")),
        "{}",
        logs.text
    );

    let id = p.submit(sh("exit 4", 1.0, 10.0)).await;
    let failed = p.wait_state(&id, "failed", LONG).await;
    assert_eq!(failed["exit_code"], 4, "{failed}");

    let id = p.submit(sh("echo begun; sleep 120", 1.0, 120.0)).await;
    // Running for real: its output has started to arrive.
    let until = std::time::Instant::now() + LONG;
    loop {
        let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
        if logs.text.contains("begun") || std::time::Instant::now() > until {
            assert!(
                logs.text.contains("begun"),
                "job never started: {}",
                logs.text
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        p.get(&format!("/cpn/v1/jobs/{id}")).await.body["state"],
        "running"
    );
    let r = p
        .request(
            Method::POST,
            &format!("/cpn/v1/jobs/{id}/cancel"),
            Some(&p.root),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let cancelled = p.wait_state(&id, "cancelled", LONG).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let kinds = p.event_kinds(&id).await;
    assert_eq!(kinds.last().unwrap(), "cancelled", "{kinds:?}");
}
