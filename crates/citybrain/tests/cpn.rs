//! `citybrain cpn simulate` as users run it, on a small trace in the Alibaba format.

use std::process::Command;

const TRACE: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p0,8000,16384,1,1000,,LS,Running,0,86400,0
p1,4000,8192,1,500,,BE,Succeeded,60,1000,60
p2,16000,65536,2,1000,,Burstable,Succeeded,120,7320,120
p3,2000,4096,0,0,,BE,Succeeded,300,900,300
p4,4000,8192,1,1000,,LS,Pending,400,900,
";

fn citybrain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(args)
        .output()
        .expect("run citybrain");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cpn_simulate_prints_the_comparison_and_writes_chart_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, TRACE).unwrap();
    let svg = dir.path().join("out.svg");
    let json = dir.path().join("out.json");
    let (code, stdout, stderr) = citybrain(&[
        "cpn",
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("5 pods -> 4 jobs (1 never scheduled"),
        "{stdout}"
    );
    for policy in [
        "cost-aware (ours)",
        "karmada-greedy",
        "cheapest-price",
        "lowest-carbon",
        "LP lower bound",
    ] {
        assert!(stdout.contains(policy), "{policy} missing from {stdout}");
    }
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["rows"].as_array().map(Vec::len), Some(4));
    assert_eq!(value["rows"][0]["jobs"], 4);
}

#[test]
fn cpn_simulate_rejects_a_missing_or_malformed_trace() {
    let (code, _, stderr) = citybrain(&["cpn", "simulate", "--trace", "/nonexistent/trace.csv"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/nonexistent/trace.csv"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.csv");
    std::fs::write(&trace, "name,cpu_milli\nx,1\n").unwrap();
    let (code, _, stderr) = citybrain(&["cpn", "simulate", "--trace", trace.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("memory_mib"), "{stderr}");
}
