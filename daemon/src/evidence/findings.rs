//! The findings of a report: each a verdict on one topic, from the scan and
//! the verification, mapped to the chosen frameworks' criteria.

use super::framework::{Framework, Topic};
use super::layer::Layer;
use super::report::{Finding, Source, Status, Verification};
use super::scan::Scanned;

/// The most evidence records one finding names.
const MAX_EVIDENCE: usize = 20;

/// Every finding, grouped by layer (in [`Layer::ALL`] order).
pub(super) fn findings(
    sc: &Scanned,
    v: &Verification,
    src: &Source,
    frameworks: &[Framework],
) -> Vec<Finding> {
    let mut out = vec![
        integrity(v, src),
        retention(sc, v),
        models_in_use(sc),
        provenance(sc),
        changes(sc),
        reassessment(sc),
        access(sc),
        gate_failures(sc),
        exports(sc),
        layers(sc),
    ];
    for f in &mut out {
        f.criteria.retain(|c| frameworks.contains(&c.framework));
        f.evidence.truncate(MAX_EVIDENCE);
    }
    out.sort_by_key(|f| f.layer);
    out
}

fn finding(topic: Topic, layer: Layer, status: Status, title: String, detail: String) -> Finding {
    Finding {
        topic,
        title,
        status,
        layer,
        detail,
        evidence: Vec::new(),
        criteria: topic.criteria().to_vec(),
    }
}

fn integrity(v: &Verification, src: &Source) -> Finding {
    let t = Topic::Integrity;
    if let Some(first) = v.findings.first() {
        return finding(t, Layer::Product, Status::Fail, "The log does not verify".into(), format!(
            "{} problems; the first: {}: {}. The figures in this report come from records that could not be verified and must not be relied on.",
            v.problems, first.subject, first.why
        ));
    }
    let what = format!(
        "{} records and {} checkpoints verified (every ML-DSA-65 signature, chain link, sequence number, checkpoint signature and Merkle root) in {:.1} s.",
        v.records, v.checkpoints, v.seconds
    );
    let fp = src.identity_fingerprint.as_deref().unwrap_or("?");
    if src.key_pinned {
        finding(
            t,
            Layer::Product,
            Status::Pass,
            "The log verifies under the pinned identity key".into(),
            format!("{what} Identity key {fp}, as pinned."),
        )
    } else {
        finding(t, Layer::Product, Status::Attention, "The log verifies; its identity key was not pinned".into(),
            format!("{what} Compare the identity fingerprint {fp} with the one published for this appliance, or make the report again with --key."))
    }
}

fn retention(sc: &Scanned, v: &Verification) -> Finding {
    let t = Topic::Retention;
    let first = sc.summary.log_first_time.as_deref().unwrap_or("?");
    let last = sc.summary.log_last_time.as_deref().unwrap_or("?");
    if !v.ok {
        return finding(
            t,
            Layer::DeployingEnterprise,
            Status::Fail,
            "The log's completeness cannot be shown".into(),
            "The log does not verify, so records may be missing or altered.".into(),
        );
    }
    if v.from > 0 {
        return finding(t, Layer::DeployingEnterprise, Status::Info, format!("This bundle holds records {} onwards", v.from),
            format!("An incremental bundle: its first {} records are vouched for by the previous export's signed checkpoint but are not in it, so this report covers {first} to {last} only. Report on the ledger or a full bundle for the whole history.", v.from));
    }
    let days = match (super::period::instant(first), super::period::instant(last)) {
        (Some(a), Some(b)) => (b - a).whole_days(),
        _ => 0,
    };
    let age = if days >= 183 {
        format!("{days} days of logs, more than the six months Art. 19 asks for")
    } else {
        format!("{days} days of logs: the log is younger than six months and keeps everything since it began")
    };
    finding(t, Layer::DeployingEnterprise, Status::Pass, "The log is whole since its first record".into(),
        format!("Every record from the genesis record ({first}) to {last} is present, in order and chained; none was removed. {age}. Payloads (prompts, outputs) are kept apart and may be erased by policy without breaking the chain."))
}

fn models_in_use(sc: &Scanned) -> Finding {
    let t = Topic::ModelsInUse;
    if sc.models.is_empty() {
        return finding(
            t,
            Layer::ModelProvider,
            Status::Info,
            "No model served a request in the period".into(),
            "The ledger holds no inference request in the period.".into(),
        );
    }
    let unknown: Vec<&str> = sc
        .models
        .iter()
        .filter(|m| m.facts.is_none())
        .map(|m| m.digest.as_str())
        .collect();
    let list: Vec<String> = sc
        .models
        .iter()
        .map(|m| format!("{} ({} requests)", m.names.join("/"), m.requests))
        .collect();
    let mut f = finding(
        t,
        Layer::ModelProvider,
        Status::Pass,
        format!(
            "{} model(s) served {} requests, each known by its digest",
            sc.models.len(),
            sc.summary.requests
        ),
        format!(
            "{}. Every request record names the digest of the model that answered it.",
            list.join("; ")
        ),
    );
    if !unknown.is_empty() {
        f.status = Status::Attention;
        f.detail.push_str(&format!(" The log up to the checkpoint holds no model.loaded record for {}: what those files declare is not in this report.", unknown.join(", ")));
    }
    f.evidence = sc
        .models
        .iter()
        .filter_map(|m| m.facts.as_ref().map(|x| x.seq))
        .collect();
    f
}

fn provenance(sc: &Scanned) -> Finding {
    let t = Topic::Provenance;
    let known: Vec<_> = sc.models.iter().filter_map(|m| m.facts.as_ref()).collect();
    if known.is_empty() {
        return finding(
            t,
            Layer::ModelProvider,
            Status::Info,
            "No model to assess".into(),
            "No model with a model.loaded record served the period.".into(),
        );
    }
    let missing: Vec<&str> = known
        .iter()
        .filter(|f| f.license.is_none())
        .map(|f| f.name.as_str())
        .collect();
    let mut f = if missing.is_empty() {
        finding(
            t,
            Layer::ModelProvider,
            Status::Pass,
            "Every model that ran declares its licence".into(),
            known
                .iter()
                .map(|f| format!("{}: {}", f.name, f.license.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        finding(t, Layer::ModelProvider, Status::Attention, format!("{} of {} models declare no licence", missing.len(), known.len()),
            format!("No licence in the files of {}: obtain the provider's licence and model card before relying on them.", missing.join(", ")))
    };
    f.evidence = known.iter().map(|x| x.seq).collect();
    f
}

fn changes(sc: &Scanned) -> Finding {
    let count = |k: &str| sc.changes.iter().filter(|c| c.kind == k).count();
    let config = sc
        .changes
        .iter()
        .filter(|c| c.kind == "daemon.start")
        .count();
    let mut f = finding(Topic::Changes, Layer::ImplementationTeam, Status::Info,
        format!("{} model, configuration and key changes, each with who made it", sc.changes.len()),
        format!("{} model loads ({} failed), {} unloads, {} configuration digests, {} key events; each record names its actor and was written before the change took effect.",
            count("model.load"), count("model.load_failed"), count("model.unload"), config,
            sc.changes.iter().filter(|c| c.kind == "log.genesis" || c.kind.starts_with("key.")).count()));
    f.evidence = sc.changes.iter().map(|c| c.seq).collect();
    f
}

fn reassessment(sc: &Scanned) -> Finding {
    let r = &sc.reassessment;
    let open: Vec<_> = r
        .triggers
        .iter()
        .filter(|t| t.cleared_by.is_none())
        .collect();
    let t = Topic::Reassessment;
    let mut f = if !open.is_empty() {
        let what: Vec<String> = open
            .iter()
            .map(|t| {
                format!(
                    "{} {} (record {})",
                    t.subject,
                    t.name.as_deref().unwrap_or(&t.value),
                    t.seq
                )
            })
            .collect();
        finding(t, Layer::ImplementationTeam, Status::Attention, format!("{} re-assessment trigger(s) without a review", open.len()),
            format!("Not reviewed since they first appeared: {}. `cairn review record --note …` signs off the current state.", what.join("; ")))
    } else if r.triggers.is_empty() {
        finding(t, Layer::ImplementationTeam, Status::Pass, "Nothing needed a review in the period".into(),
            "No model digest, configuration or system prompt appeared that a review had not signed off.".into())
    } else {
        finding(t, Layer::ImplementationTeam, Status::Pass, format!("All {} re-assessment trigger(s) were reviewed", r.triggers.len()),
            format!("{} review(s) in the period signed off every new model digest, configuration and system prompt.", r.reviews.len()))
    };
    f.evidence = open
        .iter()
        .map(|t| t.seq)
        .chain(r.reviews.iter().map(|x| x.seq))
        .collect();
    f
}

fn access(sc: &Scanned) -> Finding {
    let d = &sc.denials;
    let t = Topic::Access;
    let mut f = if d.total == 0 {
        finding(t, Layer::DeployingEnterprise, Status::Pass, "No caller was refused".into(),
            format!("{} distinct callers made inference requests; every caller is identified (Unix peer credentials or a named token).", sc.summary.callers))
    } else {
        finding(t, Layer::DeployingEnterprise, Status::Info, format!("{} refused call(s), each recorded", d.total),
            format!("{} caller/path pairs refused by the access allow-lists or for lacking administrator rights; {} distinct callers made inference requests.", d.by_caller.len(), sc.summary.callers))
    };
    f.evidence = d.by_caller.iter().map(|g| g.first_seq).collect();
    f
}

fn gate_failures(sc: &Scanned) -> Finding {
    let fl = &sc.failures;
    let t = Topic::GateFailures;
    let note = "A gate write that fails leaves no record by design (the action does not happen); the ledger shows its traces: requests answered by inference.failed or inference.aborted, unclean stops and recoveries.";
    let mut f = if fl.counts.is_empty() {
        finding(t, Layer::Product, Status::Pass, "Every request in the period was answered by a result".into(),
            format!("No failed or aborted request, failed model load, unclean stop or recovery. {} request(s) were still running at the checkpoint. {note}", fl.in_flight))
    } else {
        let counts: Vec<String> = fl.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        finding(
            t,
            Layer::Product,
            Status::Attention,
            format!("{} failure(s) recorded", fl.counts.values().sum::<u64>()),
            format!(
                "{}; {} request(s) still running at the checkpoint. {note}",
                counts.join(", "),
                fl.in_flight
            ),
        )
    };
    f.evidence = fl.items.iter().map(|x| x.seq).collect();
    f
}

fn exports(sc: &Scanned) -> Finding {
    let e = &sc.exports;
    let t = Topic::ExportsAnchors;
    let in_p: Vec<_> = e.exports.iter().filter(|x| x.in_period).collect();
    let bad_exports: Vec<u64> = in_p
        .iter()
        .filter(|x| !x.matches_log)
        .map(|x| x.seq)
        .collect();
    let bad_anchors: Vec<u64> = e
        .anchors
        .iter()
        .filter(|a| a.in_period && a.check != "verified")
        .map(|a| a.seq)
        .collect();
    let anchors = e.anchors.iter().filter(|a| a.in_period).count();
    let base = format!("{} export(s) and {} anchor(s) in the period; {} gap(s) longer than {} days without an export; {} exported checkpoint(s) never anchored.",
        in_p.len(), anchors, e.gaps.len(), e.gap_days, e.unanchored.len());
    let mut f = if !bad_exports.is_empty() || !bad_anchors.is_empty() {
        let mut x = finding(t, Layer::DeployingEnterprise, Status::Fail, "An export or anchor does not match the log".into(),
            format!("{base} Records {:?} describe exports whose root or identity is not the log's; anchors {:?} do not verify against the log's checkpoints.", bad_exports, bad_anchors));
        x.evidence = bad_exports.into_iter().chain(bad_anchors).collect();
        return x;
    } else if in_p.is_empty() {
        finding(
            t,
            Layer::DeployingEnterprise,
            Status::Attention,
            "No export in the period".into(),
            format!("{base} The log's signed roots did not leave the appliance in the period."),
        )
    } else if !e.gaps.is_empty() || !e.unanchored.is_empty() {
        finding(
            t,
            Layer::DeployingEnterprise,
            Status::Attention,
            "Exports have gaps or unanchored checkpoints".into(),
            base,
        )
    } else {
        finding(
            t,
            Layer::DeployingEnterprise,
            Status::Pass,
            "Signed roots left the appliance regularly and were anchored".into(),
            base,
        )
    };
    f.evidence = in_p.iter().map(|x| x.seq).collect();
    f
}

fn layers(sc: &Scanned) -> Finding {
    let parts: Vec<String> = Layer::ALL
        .iter()
        .map(|l| {
            format!(
                "{}: {}",
                l.title(),
                sc.layers.get(l).map_or(0, |k| k.values().sum::<u64>())
            )
        })
        .collect();
    finding(Topic::Layers, Layer::DeployingEnterprise, Status::Info, "Every record is attributed to one responsibility layer".into(),
        format!("Records in the period by layer — {}. The attribution of each record kind is listed at the end of this report.", parts.join("; ")))
}
