//! The issue-7 goals on the real Alibaba trace (deterministic; not a timing test).
//!
//! The trace is read from `CPN_TRACE` or from `shared/` beside the repository (as CI lays it out).

use cpn_core::bench::{TraceBenchOptions, trace_benchmark};

fn trace_text() -> String {
    let path = std::env::var("CPN_TRACE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/cluster-traces/alibaba-gpu-v2023/openb_pod_list_default.csv"
        )
        .to_owned()
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read the trace at {path} ({e}); set CPN_TRACE to the openb pod list")
    })
}

#[test]
fn alibaba_trace_meets_the_issue_goals() {
    let report =
        trace_benchmark(&trace_text(), &TraceBenchOptions::default()).expect("trace parses");
    assert_eq!(report.mapping.pods, 8152);
    assert_eq!(
        report.rejected, 0,
        "the documented mapping yields only valid jobs"
    );
    let goals = report.goals.expect("all policies ran");
    let gap = goals.cost_gap_vs_lp.expect("LP bound computed");
    assert!(
        gap >= -1e-9,
        "a plan below the lower bound means the bound is wrong: {gap}"
    );
    assert!(gap <= 0.05, "cost gap to LP {gap}");
    assert!(
        goals.miss_ratio_vs_greedy <= 0.5,
        "misses ratio {}",
        goals.miss_ratio_vs_greedy
    );
    assert!(
        goals.co2_reduction_vs_greedy >= 0.25,
        "CO2 reduction {}",
        goals.co2_reduction_vs_greedy
    );
    assert!(
        goals.bytes_reduction_vs_greedy >= 0.5,
        "bytes reduction {}",
        goals.bytes_reduction_vs_greedy
    );
    assert_eq!(goals.sovereignty_violations, 0);
    assert_eq!(goals.overcommitted_slots, 0);
    for row in &report.comparison.rows {
        assert_eq!(row.unplaced, 0, "{}", row.policy);
        assert!(
            report
                .comparison
                .lp_bound
                .is_some_and(|lp| lp <= row.total_cost + 1e-6),
            "{}",
            row.policy
        );
    }
}
