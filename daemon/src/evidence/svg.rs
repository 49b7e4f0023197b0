//! Inline SVG charts: requests per day per model (stacked bars),
//! request-to-result times per day (lines), and export cadence (a time
//! line with gaps). Plain SVG, no script, readable printed.

use std::fmt::Write as _;

use super::html::esc;
use super::report::{Anchor, Export, Gap, Series};

/// Okabe–Ito colours: distinct for colour-blind readers and in print.
pub(super) const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D00", "#000000",
];

const W: f64 = 900.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

fn plot_w() -> f64 {
    W - LEFT - RIGHT
}

fn plot_h() -> f64 {
    H - TOP - BOTTOM
}

fn open(title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{}" class="chart"><rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>"##,
        esc(title)
    )
}

/// A "nice" axis maximum at or above `max` (1, 2 or 5 times a power of 10).
fn nice(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

/// The y axis with 5 gridlines and the x axis with day labels thinned to
/// fit.
fn axes(out: &mut String, ymax: f64, unit: &str, days: &[String]) {
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let y = TOP + plot_h() - plot_h() * f64::from(i) / 5.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#333">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let _ = write!(
        out,
        r##"<text x="12" y="{:.1}" font-size="11" fill="#333" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"##,
        TOP + plot_h() / 2.0,
        TOP + plot_h() / 2.0,
        esc(unit)
    );
    x_labels(out, days);
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        W - RIGHT,
        TOP + plot_h(),
        TOP + plot_h()
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Requests per day, one stacked colour per model.
pub(super) fn requests_per_day(days: &[String], series: &[Series]) -> String {
    let totals: Vec<u64> = (0..days.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.counts.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let ymax = nice(totals.iter().copied().max().unwrap_or(0) as f64);
    let mut out = open("Requests per day per model");
    axes(&mut out, ymax, "requests", days);
    let bw = plot_w() / days.len().max(1) as f64;
    for (i, day) in days.iter().enumerate() {
        let mut y = TOP + plot_h();
        for (k, s) in series.iter().enumerate() {
            let n = s.counts.get(i).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = plot_h() * n as f64 / ymax;
            y -= h;
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {n}</title></rect>"#,
                LEFT + bw * i as f64 + bw * 0.1,
                bw * 0.8,
                PALETTE[k % PALETTE.len()],
                esc(day),
                esc(&s.label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// One line of a line chart: its name, colour, dash pattern, and a value
/// per day.
pub(super) struct Line<'a> {
    /// The name (in tooltips; the legend is the page's).
    pub name: &'a str,
    /// Its colour.
    pub colour: &'a str,
    /// An SVG dash pattern ("" for a solid line).
    pub dash: &'a str,
    /// Per day of the chart's days that has a value: the day, the value
    /// and how many results it is over.
    pub points: Vec<(&'a str, f64, u64)>,
}

/// A line chart of per-day values in milliseconds.
pub(super) fn lines(title: &str, days: &[String], lines: &[Line<'_>]) -> String {
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let ymax = nice(max);
    let mut out = open(title);
    axes(&mut out, ymax, "milliseconds", days);
    let bw = plot_w() / days.len().max(1) as f64;
    let x_of = |day: &str| {
        days.iter()
            .position(|d| d == day)
            .map(|i| LEFT + bw * (i as f64 + 0.5))
    };
    let y_of = |v: f64| TOP + plot_h() - plot_h() * (v / ymax).min(1.0);
    for l in lines {
        let points: Vec<String> = l
            .points
            .iter()
            .filter_map(|(d, v, _)| Some(format!("{:.1},{:.1}", x_of(d)?, y_of(*v))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            l.colour,
            l.dash,
            esc(l.name)
        );
        for (d, v, n) in &l.points {
            if let Some(x) = x_of(d) {
                let _ = write!(
                    out,
                    r#"<circle cx="{x:.1}" cy="{:.1}" r="2.5" fill="{}"><title>{} {}: {v} ms ({n} results)</title></circle>"#,
                    y_of(*v),
                    l.colour,
                    esc(d),
                    esc(l.name)
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// Exports (ticks), anchors (diamonds) and gaps (shaded) along the period.
pub(super) fn cadence(
    days: &[String],
    exports: &[&Export],
    anchors: &[&Anchor],
    gaps: &[Gap],
) -> String {
    let mut out = open("Export cadence");
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        out.push_str("</svg>");
        return out;
    };
    let start = super::period::instant(&format!("{first}T00:00:00Z"));
    let end =
        super::period::instant(&format!("{last}T00:00:00Z")).map(|t| t + time::Duration::days(1));
    let (Some(start), Some(end)) = (start, end) else {
        out.push_str("</svg>");
        return out;
    };
    let span = (end - start).as_seconds_f64().max(1.0);
    let x_of = |t: &str| {
        super::period::instant(t)
            .map(|t| LEFT + plot_w() * ((t - start).as_seconds_f64() / span).clamp(0.0, 1.0))
    };
    let band = |y: f64, label: &str, out: &mut String| {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#333">{}</text><line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#bbb"/>"##,
            LEFT - 6.0,
            y + 4.0,
            esc(label),
            W - RIGHT
        );
    };
    for g in gaps {
        if let (Some(a), Some(b)) = (x_of(&g.from), x_of(&g.to)) {
            let _ = write!(
                out,
                r##"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#D55E00" fill-opacity="0.15" stroke="#D55E00" stroke-dasharray="3 2"><title>no export for {} days: {} to {}</title></rect>"##,
                (b - a).max(1.0),
                plot_h(),
                g.days,
                esc(&g.from),
                esc(&g.to)
            );
        }
    }
    let (ye, ya) = (TOP + plot_h() * 0.3, TOP + plot_h() * 0.7);
    band(ye, "exports", &mut out);
    band(ya, "anchors", &mut out);
    for e in exports {
        if let Some(x) = x_of(&e.time) {
            let colour = if e.matches_log {
                PALETTE[0]
            } else {
                PALETTE[3]
            };
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"><title>{} export of {} records ({})</title></line>"#,
                ye - 14.0,
                ye + 14.0,
                esc(&e.time),
                e.records,
                esc(&e.bundle)
            );
        }
    }
    for a in anchors {
        if let Some(x) = x_of(&a.time) {
            let colour = if a.check == "verified" {
                PALETTE[2]
            } else {
                PALETTE[3]
            };
            let _ = write!(
                out,
                r#"<path d="M{x:.1} {:.1} l7 9 l-7 9 l-7 -9 z" fill="{colour}"><title>{} {} anchor of checkpoint {} ({})</title></path>"#,
                ya - 9.0,
                esc(&a.time),
                esc(&a.kind),
                a.checkpoint_size,
                esc(&a.check)
            );
        }
    }
    x_labels(&mut out, days);
    out.push_str("</svg>");
    out
}

/// Day labels under the plot, thinned to about twelve.
fn x_labels(out: &mut String, days: &[String]) {
    let step = days.len().div_ceil(12).max(1);
    let bw = plot_w() / days.len().max(1) as f64;
    for (i, d) in days.iter().enumerate().step_by(step) {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#333">{}</text>"##,
            LEFT + bw * (i as f64 + 0.5),
            H - BOTTOM + 14.0,
            esc(d.get(5..).unwrap_or(d))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(130.0), 200.0);
        assert_eq!(nice(4_100.0), 5_000.0);
    }

    #[test]
    fn bars_stack_per_day_and_escape_labels() {
        let days = vec!["2026-01-01".to_string(), "2026-01-02".to_string()];
        let series = vec![
            Series {
                label: "a<b".into(),
                digest: "d1".into(),
                counts: vec![3, 0],
            },
            Series {
                label: "c".into(),
                digest: "d2".into(),
                counts: vec![1, 4],
            },
        ];
        let svg = requests_per_day(&days, &series);
        // The background and three bars.
        assert_eq!(svg.matches("<rect x=").count(), 4, "{svg}");
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }
}
