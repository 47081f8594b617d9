//! The policy comparison as an SVG bar chart, written by hand (no plotting dependency).
//!
//! One group of bars per metric (total cost, CO2, cross-region bytes, deadline misses, mean
//! wait), one bar per policy, each normalised to the Karmada-style greedy = 100 % so metrics with
//! different units share one axis. The absolute values are printed above the bars.

use crate::sim::{Comparison, SimReport};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 90.0;
const COLOURS: [&str; 6] = [
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// (name, value of a row, label of a value).
type Metric = (&'static str, fn(&SimReport) -> f64, fn(f64) -> String);

fn metrics() -> [Metric; 5] {
    [
        (
            "total cost",
            |r| r.total_cost,
            |v| format!("{:.0}k", v / 1000.0),
        ),
        ("CO2", |r| r.carbon_kg, |v| format!("{:.1}t", v / 1000.0)),
        (
            "cross-region bytes",
            |r| r.bytes_moved as f64,
            |v| format!("{:.1}TB", v / 1e12),
        ),
        (
            "deadline misses",
            |r| r.deadline_misses as f64,
            |v| format!("{v:.0}"),
        ),
        (
            "mean wait",
            |r| r.mean_wait_s,
            |v| format!("{:.0}m", v / 60.0),
        ),
    ]
}

/// Renders the comparison; `title` is escaped.
pub fn comparison_svg(cmp: &Comparison, title: &str) -> String {
    let reference = cmp
        .rows
        .iter()
        .find(|r| r.policy.starts_with("karmada"))
        .or(cmp.rows.first());
    let groups = metrics();
    let plot_w = WIDTH - LEFT - 20.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let group_w = plot_w / groups.len() as f64;
    let bar_w = (group_w * 0.8) / cmp.rows.len().max(1) as f64;
    // Normalised values, capped for drawing at 250 %.
    let max_pct = 250.0;
    let y = |pct: f64| TOP + plot_h * (1.0 - pct.min(max_pct) / max_pct);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    for pct in [0.0, 50.0, 100.0, 150.0, 200.0, 250.0] {
        let yy = y(pct);
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"{}\" stroke-width=\"1\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{pct:.0}%</text>\n",
            LEFT + plot_w,
            if pct == 100.0 { "#888" } else { "#eee" },
            LEFT - 6.0,
            yy + 4.0
        ));
    }
    for (g, (name, value, label)) in groups.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + group_w * 0.1;
        let base = reference.map(value).unwrap_or(0.0);
        for (i, row) in cmp.rows.iter().enumerate() {
            let v = value(row);
            let pct = if base > 0.0 {
                100.0 * v / base
            } else if v > 0.0 {
                max_pct
            } else {
                0.0
            };
            let x = gx + i as f64 * bar_w;
            let top = y(pct);
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>\n",
                bar_w * 0.92,
                (TOP + plot_h - top).max(0.0),
                COLOURS[i % COLOURS.len()],
                escape(row.policy),
                escape(&label(v)),
                x + bar_w * 0.46,
                top - 3.0,
                escape(&label(v))
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            gx + group_w * 0.4,
            TOP + plot_h + 16.0,
            escape(name)
        ));
    }
    for (i, row) in cmp.rows.iter().enumerate() {
        let lx = LEFT + i as f64 * 200.0;
        let ly = HEIGHT - 30.0;
        svg.push_str(&format!(
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>\n",
            ly - 10.0,
            COLOURS[i % COLOURS.len()],
            lx + 16.0,
            escape(row.policy)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Policy;
    use crate::sim::{SimReport, measure};
    use crate::sites::{EastWestOptions, east_west};

    fn row(policy: Policy, cost: f64) -> SimReport {
        let world = east_west(&EastWestOptions::default());
        let mut r = measure(&world, &[], &[], policy, None);
        r.total_cost = cost;
        r
    }

    #[test]
    fn svg_has_one_bar_per_policy_and_metric_and_escapes_title() {
        let cmp = Comparison {
            rows: vec![
                row(Policy::CostAware, 50.0),
                row(Policy::KarmadaGreedy, 100.0),
            ],
            lp_bound: None,
            capacity_free_bound: None,
            lp_solver: None,
            lp_size: None,
        };
        let svg = comparison_svg(&cmp, "a < b & c");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b &amp; c"));
        // 2 policies × 5 metrics bars + 2 legend swatches + background.
        assert_eq!(svg.matches("<rect").count(), 2 * 5 + 2 + 1);
        // Ours at half the greedy's cost: bar top at 50 % of the axis.
        let plot_h = HEIGHT - TOP - BOTTOM;
        let expected_top = TOP + plot_h * (1.0 - 50.0 / 250.0);
        assert!(svg.contains(&format!("y=\"{expected_top:.1}\"")));
    }
}
