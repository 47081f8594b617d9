//! A grouped bar chart (SVG) of a value per scenario per controller, e.g. ATT, for
//! `citybrain signal eval --chart`.

use std::fmt::Write;

/// Bar colours, one per controller (cycled).
const COLOURS: [&str; 8] = [
    "#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG grouped bar chart: one group per scenario, one bar per controller, with a y axis,
/// value labels and a legend. `values[s][c]` is scenario `s`'s value for controller `c`
/// (`None`: no bar). `title` and `unit` label the chart and the y axis.
pub fn grouped_bar_svg(
    title: &str,
    unit: &str,
    scenarios: &[String],
    controllers: &[String],
    values: &[Vec<Option<f64>>],
) -> String {
    let bar_w = 18.0;
    let gap = 24.0;
    let group_w = bar_w * controllers.len().max(1) as f64 + gap;
    let left = 70.0;
    let top = 50.0;
    let plot_h = 320.0;
    let legend_h = 22.0 * controllers.len().div_ceil(4) as f64 + 10.0;
    let width = (left + group_w * scenarios.len().max(1) as f64 + 20.0).max(480.0);
    let height = top + plot_h + 50.0 + legend_h;
    let max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // A round axis maximum (1, 1.2, 1.5, 2, ... 10 times a power of ten), at least the largest
    // value.
    let axis_max = if max <= 0.0 {
        1.0
    } else {
        let p = 10f64.powf(max.log10().floor());
        [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
            .iter()
            .map(|m| m * p)
            .find(|&v| v >= max)
            .unwrap_or(10.0 * p)
    };
    let y_of = |v: f64| top + plot_h - v / axis_max * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    // Axis and grid.
    for k in 0..=5 {
        let v = axis_max * f64::from(k) / 5.0;
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            width - 10.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"#,
            left - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(unit)
    );
    let _ = writeln!(
        s,
        r#"<line x1="{left:.1}" y1="{:.1}" x2="{left:.1}" y2="{:.1}" stroke="black"/>"#,
        top,
        top + plot_h
    );
    let _ = writeln!(
        s,
        r#"<line x1="{left:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        top + plot_h,
        width - 10.0,
        top + plot_h
    );
    // Bars.
    for (si, name) in scenarios.iter().enumerate() {
        let gx = left + gap / 2.0 + group_w * si as f64;
        for (ci, controller) in controllers.iter().enumerate() {
            let Some(v) = values
                .get(si)
                .and_then(|row| row.get(ci))
                .copied()
                .flatten()
                .filter(|v| v.is_finite())
            else {
                continue;
            };
            let x = gx + bar_w * ci as f64;
            let y = y_of(v.max(0.0));
            let h = top + plot_h - y;
            let colour = COLOURS[ci % COLOURS.len()];
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"><title>{} / {}: {v:.1}</title></rect>"#,
                bar_w - 2.0,
                escape(name),
                escape(controller)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="8" transform="rotate(-90 {:.1} {:.1})">{v:.0}</text>"#,
                x + bar_w / 2.0 - 1.0,
                y - 4.0,
                x + bar_w / 2.0 - 1.0,
                y - 4.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + (group_w - gap) / 2.0,
            top + plot_h + 18.0,
            escape(name)
        );
    }
    // Legend.
    for (ci, controller) in controllers.iter().enumerate() {
        let x = left + 130.0 * (ci % 4) as f64;
        let y = top + plot_h + 40.0 + 22.0 * (ci / 4) as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/>"#,
            y - 10.0,
            COLOURS[ci % COLOURS.len()]
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x + 16.0,
            escape(controller)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is closed in order, attributes are quoted, no stray `<` or `&`.
    fn well_formed(svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray > in {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "bare & in {text:?}"
                );
            }
            let close = rest[open..].find('>').expect("tag closed") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "{tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "{tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "closing {name}");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().expect("tag name"));
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    #[test]
    fn chart_has_one_bar_per_value_and_balanced_tags() {
        let sc = vec!["jn1".to_owned(), "a<b".to_owned()];
        let ctl = vec!["fixed-time".to_owned(), "adaptive".to_owned()];
        let svg = grouped_bar_svg(
            "ATT",
            "seconds",
            &sc,
            &ctl,
            &[vec![Some(586.4), Some(309.0)], vec![Some(100.0), None]],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        well_formed(&svg);
        // 1 background + 3 bars + 2 legend swatches.
        assert_eq!(svg.matches("<rect").count(), 6);
        assert_eq!(
            svg.matches("<rect").count(),
            svg.matches("</rect>").count() + 3
        );
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        // The tallest bar reaches the axis maximum scale (600 for 586.4): 586.4/600 of 320 px.
        assert!(svg.contains(r#"height="312.7""#), "{svg}");
    }
}
