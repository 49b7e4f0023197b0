//! The report as one self-contained HTML page: no script, no external
//! resource, inline SVG charts, readable printed. Its first screen says
//! whether the log verified.

use std::fmt::Write as _;

use super::framework::{catalogue, Framework};
use super::layer::{Layer, KIND_REASONS};
use super::report::{DayLatency, Evidence, Finding, Status};
use super::svg;

/// Rows of a long table shown in the page (the JSON has up to
/// [`super::report::MAX_ITEMS`]).
const PAGE_ROWS: usize = 50;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;margin:0 auto;max-width:1000px;padding:16px 24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #222;padding-bottom:2px}h3{font-size:16px;margin:18px 0 6px}
.verdict{border-radius:6px;padding:14px 18px;margin:0 0 12px;border:3px solid}
.verdict.ok{background:#e8f5ec;border-color:#1b7a3a}.verdict.fail{background:#fde8e8;border-color:#b00020}
.verdict .big{font-size:20px;font-weight:700}.verdict.fail .big{color:#b00020}.verdict.ok .big{color:#1b7a3a}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}.meta dt{color:#555}.meta dd{margin:0;word-break:break-all}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:8px;margin:10px 0}
.tile{border:1px solid #ccc;border-radius:6px;padding:8px 10px}.tile b{display:block;font-size:22px}.tile span{color:#555;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:6px 0}th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f3f3f3;overflow-wrap:normal;white-space:nowrap}
td.num,th.num{text-align:right}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11.5px;word-break:break-all}
.badge{display:inline-block;border-radius:3px;padding:1px 6px;font-size:11px;font-weight:700;color:#fff;white-space:nowrap}
.pass{background:#1b7a3a}.info{background:#55606e}.attention{background:#a05a00}.fail{background:#b00020}
.note{background:#fff7e0;border-left:4px solid #a05a00;padding:6px 10px;margin:6px 0}
.crit{font-size:11px;color:#333}figure{margin:8px 0 16px}figcaption{font-size:12px;color:#444}
.chart{width:100%;height:auto;border:1px solid #ddd}.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
pre{background:#f6f6f6;padding:8px;font-size:11px;white-space:pre-wrap;word-break:break-all}
@media print{body{max-width:none;padding:0}h2{break-after:avoid}tr,figure,.verdict,.tile{break-inside:avoid}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}@page{margin:14mm}}
"#;

/// Renders the report.
pub fn render(e: &Evidence) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let origin = e.source.origin.as_deref().unwrap_or("unknown log");
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>cairn evidence report {} to {} — {}</title><style>{STYLE}</style></head><body>\n",
        esc(&e.period.from),
        esc(&e.period.to),
        esc(origin)
    );
    verdict(&mut h, e);
    tiles(&mut h, e);
    findings(&mut h, e);
    charts(&mut h, e);
    models(&mut h, e);
    changes(&mut h, e);
    reassessment(&mut h, e);
    denials(&mut h, e);
    failures(&mut h, e);
    exports(&mut h, e);
    verification(&mut h, e);
    criteria(&mut h, e);
    layers(&mut h, e);
    let _ = writeln!(
        h,
        "<footer><p class=\"crit\">{} · made {} by cairn {} from the signed ledger only. The mapping of findings to criteria is cairn's reading; an auditor decides what evidence satisfies a criterion.</p></footer></body></html>",
        e.format,
        esc(&e.generated),
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn verdict(h: &mut String, e: &Evidence) {
    let v = &e.verification;
    let frameworks: Vec<&str> = e.frameworks.iter().map(|f| f.title()).collect();
    let (class, big, line) = if v.ok {
        (
            "ok",
            "VERIFIED".to_string(),
            format!(
                "Every one of the log's {} records and {} checkpoints verified: signatures, chain, sequence and Merkle roots.",
                v.records, v.checkpoints
            ),
        )
    } else {
        (
            "fail",
            "VERIFICATION FAILED — do not rely on this report".to_string(),
            format!(
                "{} problem(s). First: {}. The figures below come from records that could not be verified.",
                v.problems,
                v.findings
                    .first()
                    .map_or_else(String::new, |p| format!("{}: {}", p.subject, p.why))
            ),
        )
    };
    let _ = write!(
        h,
        "<header class=\"verdict {class}\"><h1>Evidence report — {}</h1><div class=\"big\">{}</div><p>{}</p><dl class=\"meta\">",
        esc(e.source.origin.as_deref().unwrap_or("unknown log")),
        esc(&big),
        esc(&line)
    );
    let cp = e.checkpoint.as_ref().map_or_else(
        || "none: the log has no valid checkpoint".to_string(),
        |c| format!("size {} · root {}", c.size, c.root),
    );
    let pinned = if e.source.key_pinned {
        "pinned with --key"
    } else {
        "not pinned: compare with the published fingerprint"
    };
    for (k, val) in [
        (
            "period",
            format!(
                "{} to {} ({} days, UTC)",
                e.period.from, e.period.to, e.period.days
            ),
        ),
        ("frameworks", frameworks.join(", ")),
        ("computed at checkpoint", cp),
        (
            "identity",
            format!(
                "{} ({pinned})",
                e.source.identity_fingerprint.as_deref().unwrap_or("?")
            ),
        ),
        (
            "source",
            format!(
                "{} {}{}",
                e.source.kind,
                e.source.path,
                if e.source.daemon_running {
                    " (checkpointed by the running daemon)"
                } else {
                    ""
                }
            ),
        ),
        ("generated", e.generated.clone()),
    ] {
        let _ = write!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&val));
    }
    h.push_str("</dl>");
    for n in &e.period.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    if v.left_out > 0 {
        let _ = write!(h, "<p class=\"note\">{} record(s) after the checkpoint are not covered by a signed root and are left out of this report.</p>", v.left_out);
    }
    h.push_str("</header>\n");
}

fn tiles(h: &mut String, e: &Evidence) {
    let open = e
        .reassessment
        .triggers
        .iter()
        .filter(|t| t.cleared_by.is_none())
        .count();
    let failures: u64 = e.gate_failures.counts.values().sum();
    let exports = e.exports.exports.iter().filter(|x| x.in_period).count();
    h.push_str("<section class=\"tiles\">");
    for (n, label) in [
        (e.summary.records.to_string(), "records in the period"),
        (e.summary.requests.to_string(), "inference requests"),
        (e.models.len().to_string(), "models that served"),
        (e.changes.len().to_string(), "model, config and key changes"),
        (open.to_string(), "open re-assessment triggers"),
        (e.access_denials.total.to_string(), "access denials"),
        (failures.to_string(), "failures recorded"),
        (
            format!("{exports} / {}", e.exports.gaps.len()),
            "exports / export gaps",
        ),
    ] {
        let _ = write!(
            h,
            "<div class=\"tile\"><b>{}</b><span>{label}</span></div>",
            esc(&n)
        );
    }
    h.push_str("</section>\n");
}

fn badge(s: Status) -> String {
    let (class, text) = match s {
        Status::Pass => ("pass", "PASS"),
        Status::Info => ("info", "INFO"),
        Status::Attention => ("attention", "ATTENTION"),
        Status::Fail => ("fail", "FAIL"),
    };
    format!("<span class=\"badge {class}\">{text}</span>")
}

fn seqs(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

fn finding_row(h: &mut String, f: &Finding) {
    let crit: Vec<String> = f
        .criteria
        .iter()
        .map(|c| format!("{} {}", c.framework.title(), c.id))
        .collect();
    let _ = write!(
        h,
        "<tr><td>{}</td><td><b>{}</b><br>{}<div class=\"crit\">{}</div></td><td class=\"mono\">{}</td></tr>",
        badge(f.status),
        esc(&f.title),
        esc(&f.detail),
        esc(&crit.join(" · ")),
        esc(&seqs(&f.evidence))
    );
}

fn findings(h: &mut String, e: &Evidence) {
    h.push_str("<section id=\"findings\"><h2>Findings by responsibility layer</h2>");
    for layer in Layer::ALL {
        let of: Vec<&Finding> = e.findings.iter().filter(|f| f.layer == layer).collect();
        let records = e
            .layers
            .iter()
            .find(|l| l.layer == layer)
            .map_or(0, |l| l.records);
        let _ = write!(
            h,
            "<h3>{} <span class=\"crit\">— {}; {records} records in the period</span></h3>",
            layer.title(),
            layer.duty()
        );
        if of.is_empty() {
            h.push_str("<p class=\"crit\">No finding for this layer.</p>");
            continue;
        }
        h.push_str("<table><tr><th>verdict</th><th>finding and criteria</th><th>evidence (records)</th></tr>");
        for f in of {
            finding_row(h, f);
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");
}

fn charts(h: &mut String, e: &Evidence) {
    let c = &e.charts;
    h.push_str("<section id=\"charts\"><h2>Charts</h2><figure>");
    h.push_str(&svg::requests_per_day(&c.days, &c.requests_per_day));
    h.push_str("<div class=\"legend\">");
    for (k, s) in c.requests_per_day.iter().enumerate() {
        let _ = write!(
            h,
            "<span><i style=\"background:{}\"></i>{} <code>{}</code></span>",
            svg::PALETTE[k % svg::PALETTE.len()],
            esc(&s.label),
            esc(&super::short(&s.digest))
        );
    }
    h.push_str("</div><figcaption>Inference requests per day (UTC), one colour per model digest, from the inference.request records.</figcaption></figure>");
    latency_chart(
        h,
        &c.days,
        &c.latency,
        "Time outside generation per day",
        [|d: &DayLatency| d.outside_p50_ms, |d: &DayLatency| d.outside_p95_ms],
        "<b>The ledger does not hold the gate's own latency</b>; this is what it does hold. For each answered request: the result record's time minus the request record's, minus the generation time the result record states. What remains is queueing, tokenising and the request record's signing and fsync — an upper bound on the gate's first pass.",
    );
    latency_chart(
        h,
        &c.days,
        &c.latency,
        "Request to result time per day",
        [
            |d: &DayLatency| d.total_p50_ms,
            |d: &DayLatency| d.total_p95_ms,
        ],
        "The result record's time minus the request record's: generation and everything around it.",
    );
    h.push_str("<figure>");
    let exports: Vec<_> = e.exports.exports.iter().filter(|x| x.in_period).collect();
    let anchors: Vec<_> = e.exports.anchors.iter().filter(|x| x.in_period).collect();
    h.push_str(&svg::cadence(&c.days, &exports, &anchors, &e.exports.gaps));
    let _ = writeln!(
        h,
        "<figcaption>Exports (bars) and anchors (diamonds) in the period; shaded: more than {} days without an export. Red marks an export or anchor that does not match the log.</figcaption></figure></section>",
        e.exports.gap_days
    );
}

/// A figure of two per-day series (median, 95th percentile) of `lat`.
fn latency_chart(
    h: &mut String,
    days: &[String],
    lat: &[DayLatency],
    title: &str,
    value: [fn(&DayLatency) -> f64; 2],
    caption: &str,
) {
    let series = |name, colour, dash, f: fn(&DayLatency) -> f64| svg::Line {
        name,
        colour,
        dash,
        points: lat
            .iter()
            .map(|d| (d.day.as_str(), f(d), d.results))
            .collect(),
    };
    let lines = [
        series("median", svg::PALETTE[0], "", value[0]),
        series("95th percentile", svg::PALETTE[3], "6 3", value[1]),
    ];
    let _ = write!(
        h,
        "<figure>{}<div class=\"legend\"><span><i style=\"background:{}\"></i>median</span><span><i style=\"background:{}\"></i>95th percentile</span></div><figcaption><b>{}.</b> {caption}</figcaption></figure>",
        svg::lines(title, days, &lines),
        svg::PALETTE[0],
        svg::PALETTE[3],
        esc(title)
    );
}

fn table(
    h: &mut String,
    id: &str,
    title: &str,
    head: &[&str],
    rows: Vec<Vec<String>>,
    total: usize,
) {
    let _ = write!(h, "<section id=\"{id}\"><h2>{}</h2>", esc(title));
    if rows.is_empty() {
        h.push_str("<p>None in the period.</p></section>\n");
        return;
    }
    h.push_str("<table><tr>");
    for c in head {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    let shown = rows.len().min(PAGE_ROWS);
    for r in rows.into_iter().take(PAGE_ROWS) {
        h.push_str("<tr>");
        for c in r {
            let _ = write!(h, "<td>{}</td>", esc(&c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if total > shown {
        let _ = write!(
            h,
            "<p class=\"crit\">{shown} of {total} shown; the JSON report lists more.</p>"
        );
    }
    h.push_str("</section>\n");
}

fn models(h: &mut String, e: &Evidence) {
    let rows = e
        .models
        .iter()
        .map(|m| {
            let f = m.facts.as_ref();
            let finish: Vec<String> = m
                .finish_reasons
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            vec![
                m.names.join(", "),
                m.digest.clone(),
                f.map_or("?".into(), |f| {
                    format!(
                        "{} {} {}",
                        f.format.as_deref().unwrap_or("?"),
                        f.arch.as_deref().unwrap_or("?"),
                        f.quantization.as_deref().unwrap_or("?")
                    )
                }),
                f.and_then(|f| f.license.clone())
                    .unwrap_or_else(|| "none declared".into()),
                format!("{} – {}", m.first_use, m.last_use),
                m.requests.to_string(),
                format!(
                    "{}; failed {}, aborted {}",
                    finish.join(", "),
                    m.failed,
                    m.aborted
                ),
                format!("{} / {}", m.prompt_tokens, m.completion_tokens),
            ]
        })
        .collect();
    table(
        h,
        "models",
        "Models that served requests",
        &[
            "name",
            "digest",
            "format",
            "licence",
            "first – last use",
            "requests",
            "answers",
            "tokens in / out",
        ],
        rows,
        e.models.len(),
    );
}

fn changes(h: &mut String, e: &Evidence) {
    let rows = e
        .changes
        .iter()
        .map(|c| {
            vec![
                c.seq.to_string(),
                c.time.clone(),
                c.kind.clone(),
                c.actor.clone(),
                c.what.clone(),
                c.layer.title().into(),
            ]
        })
        .collect();
    table(
        h,
        "changes",
        "Model, configuration and key changes",
        &["record", "time", "kind", "who", "what", "layer"],
        rows,
        e.changes.len(),
    );
}

fn reassessment(h: &mut String, e: &Evidence) {
    let r = &e.reassessment;
    let rows = r
        .triggers
        .iter()
        .map(|t| {
            vec![
                t.seq.to_string(),
                t.time.clone(),
                t.subject.into(),
                format!(
                    "{}{}",
                    t.name.as_deref().map_or(String::new(), |n| format!("{n} ")),
                    t.value
                ),
                t.cleared_by.map_or("OPEN".into(), |s| {
                    format!("record {s} ({})", t.cleared_at.as_deref().unwrap_or(""))
                }),
            ]
        })
        .collect();
    table(
        h,
        "reassessment",
        "Re-assessment triggers",
        &["record", "first seen", "what", "digest", "reviewed by"],
        rows,
        r.triggers.len(),
    );
    let rows = r
        .reviews
        .iter()
        .map(|v| {
            vec![
                v.seq.to_string(),
                v.time.clone(),
                v.reviewer.clone(),
                v.note.clone(),
                v.cleared.to_string(),
            ]
        })
        .collect();
    table(
        h,
        "reviews",
        "Reviews",
        &["record", "time", "reviewer", "note", "triggers cleared"],
        rows,
        r.reviews.len(),
    );
}

fn denials(h: &mut String, e: &Evidence) {
    let d = &e.access_denials;
    let rows = d
        .by_caller
        .iter()
        .map(|g| {
            vec![
                g.caller.clone(),
                g.path.clone(),
                g.count.to_string(),
                g.first_seq.to_string(),
            ]
        })
        .collect();
    table(
        h,
        "access",
        &format!("Access denials ({} in the period)", d.total),
        &["caller", "path", "times", "first record"],
        rows,
        d.by_caller.len(),
    );
}

fn failures(h: &mut String, e: &Evidence) {
    let f = &e.gate_failures;
    let total = f.counts.values().sum::<u64>() as usize;
    let rows = f
        .items
        .iter()
        .map(|x| {
            vec![
                x.seq.to_string(),
                x.time.clone(),
                x.what.clone(),
                x.detail.clone(),
            ]
        })
        .collect();
    table(
        h,
        "failures",
        "Gate and processing failures",
        &["record", "time", "what", "detail"],
        rows,
        total,
    );
}

fn exports(h: &mut String, e: &Evidence) {
    let x = &e.exports;
    let rows = x
        .exports
        .iter()
        .filter(|e| e.in_period)
        .map(|e| {
            vec![
                e.seq.to_string(),
                e.time.clone(),
                e.actor.clone(),
                match &e.failed {
                    Some(why) => format!("{} (FAILED, {why})", e.bundle),
                    None => e.bundle.clone(),
                },
                e.records.to_string(),
                if e.matches_log {
                    "yes".into()
                } else {
                    "NO".into()
                },
                if e.anchored_by.is_empty() {
                    "never".into()
                } else {
                    format!("records {}", seqs(&e.anchored_by))
                },
            ]
        })
        .collect::<Vec<_>>();
    let n = rows.len();
    table(
        h,
        "exports",
        "Exports",
        &[
            "record",
            "time",
            "who",
            "bundle",
            "records",
            "root is the log's",
            "anchored",
        ],
        rows,
        n,
    );
    let rows = x
        .anchors
        .iter()
        .filter(|a| a.in_period)
        .map(|a| {
            vec![
                a.seq.to_string(),
                a.time.clone(),
                a.actor.clone(),
                a.kind.clone(),
                a.checkpoint_size.to_string(),
                format!(
                    "{} {}",
                    a.gen_time.as_deref().unwrap_or(""),
                    a.tsa.as_deref().unwrap_or("")
                ),
                a.check.clone(),
            ]
        })
        .collect::<Vec<_>>();
    let n = rows.len();
    table(
        h,
        "anchors",
        "Anchors (each receipt checked again here)",
        &[
            "record",
            "time",
            "who",
            "kind",
            "checkpoint",
            "authority time",
            "check",
        ],
        rows,
        n,
    );
    let rows = x
        .gaps
        .iter()
        .map(|g| vec![g.from.clone(), g.to.clone(), format!("{:.1}", g.days)])
        .chain(x.unanchored.iter().map(|s| {
            vec![
                format!("checkpoint of {s} records"),
                "exported, never anchored".into(),
                String::new(),
            ]
        }))
        .collect::<Vec<_>>();
    let n = rows.len();
    table(
        h,
        "gaps",
        &format!(
            "Gaps: more than {} days without an export, and checkpoints never anchored",
            x.gap_days
        ),
        &["from", "to", "days"],
        rows,
        n,
    );
}

fn verification(h: &mut String, e: &Evidence) {
    let v = &e.verification;
    let _ = write!(
        h,
        "<section id=\"verification\"><h2>Verification</h2><p>{} — {} records (stored from record {}), {} checkpoints, the largest valid one covering {} records; {} problem(s); {:.1} s.</p>",
        if v.ok { "<b>Verified</b>" } else { "<b style=\"color:#b00020\">FAILED</b>" },
        v.records,
        v.from,
        v.checkpoints,
        v.checkpointed_size,
        v.problems,
        v.seconds
    );
    if !v.findings.is_empty() {
        h.push_str("<table><tr><th>where</th><th>problem</th></tr>");
        for p in &v.findings {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&p.subject),
                esc(&p.why)
            );
        }
        h.push_str("</table>");
    }
    if let Some(c) = &e.checkpoint {
        let fw: Vec<String> = e
            .frameworks
            .iter()
            .map(|f| format!("--framework {}", framework_arg(*f)))
            .collect();
        let _ = write!(
            h,
            "<p>This report covers exactly the {} records this signed checkpoint commits to. To check it again from any copy of the log (the ledger directory or an export bundle that holds this checkpoint):</p><pre>cairn evidence LOG --at {} --from {} --to {} {} --format json --key {}</pre><pre>{}</pre>",
            c.size,
            c.size,
            esc(&e.period.from),
            esc(&e.period.to),
            esc(&fw.join(" ")),
            esc(e.source.identity_fingerprint.as_deref().unwrap_or("FINGERPRINT")),
            esc(&c.note)
        );
    }
    h.push_str("</section>\n");
}

/// A framework as `--framework` spells it.
fn framework_arg(f: Framework) -> &'static str {
    match f {
        Framework::Soc2 => "soc2",
        Framework::EuAiAct => "eu-ai-act",
        Framework::Iso42001 => "iso42001",
        Framework::NistAiRmf => "nist-ai-rmf",
    }
}

fn criteria(h: &mut String, e: &Evidence) {
    h.push_str(
        "<section id=\"criteria\"><h2>Criteria and the findings that are evidence for them</h2>",
    );
    for f in &e.frameworks {
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr><th>criterion</th><th>findings</th></tr>",
            f.title()
        );
        for c in catalogue(&[*f]) {
            let cells: Vec<String> = e
                .findings
                .iter()
                .filter(|x| x.criteria.iter().any(|y| y.id == c.id))
                .map(|x| format!("{} {}", badge(x.status), esc(&x.title)))
                .collect();
            let _ = write!(
                h,
                "<tr><td><b>{}</b> {}</td><td>{}</td></tr>",
                esc(c.id),
                esc(c.title),
                cells.join("<br>")
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");
}

fn layers(h: &mut String, e: &Evidence) {
    h.push_str("<section id=\"layers\"><h2>Responsibility layers: which record kind is evidence for whom</h2><table><tr><th>record kind</th><th>layer</th><th>why</th><th class=\"num\">records in the period</th></tr>");
    for (kind, why) in KIND_REASONS {
        let layer = Layer::of_kind(kind);
        let n = e
            .layers
            .iter()
            .find(|l| l.layer == layer)
            .and_then(|l| l.kinds.get(kind))
            .copied()
            .unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>",
            esc(kind),
            layer.title(),
            esc(why)
        );
    }
    h.push_str("</table></section>\n");
}
