//! The models on the appliance as a CycloneDX 1.6 ML-BOM: one
//! `machine-learning-model` component per model loaded at the checkpoint,
//! with its digest, format, quantisation, licence and provenance as its
//! `model.loaded` record states them, and its files as sub-components.

use serde_json::{json, Value};

use super::models::ModelFacts;

/// What the BOM says about the log it was made from.
pub struct Appliance<'a> {
    /// The log's origin (names the appliance).
    pub origin: &'a str,
    /// The identity key's fingerprint.
    pub fingerprint: &'a str,
    /// The checkpoint the inventory was read at.
    pub checkpoint_size: u64,
    /// Its root, base64.
    pub checkpoint_root: &'a str,
}

/// SPDX identifiers model licences are commonly given as, matched without
/// regard to case; anything else is a named licence.
const SPDX: [&str; 13] = [
    "Apache-2.0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "CC0-1.0",
    "GPL-3.0-only",
    "LGPL-3.0-only",
    "MPL-2.0",
    "Unlicense",
];

fn license(l: &str) -> Value {
    match SPDX.iter().find(|id| id.eq_ignore_ascii_case(l.trim())) {
        Some(id) => json!({"license": {"id": id}}),
        None => json!({"license": {"name": l}}),
    }
}

fn property(name: &str, value: impl ToString) -> Value {
    json!({"name": name, "value": value.to_string()})
}

/// A model's component.
fn component(m: &ModelFacts) -> Value {
    let p = &m.provenance;
    let hex = m.digest.strip_prefix("blake3:").unwrap_or(&m.digest);
    let mut c = json!({
        "type": "machine-learning-model",
        "bom-ref": m.digest,
        "name": p.get("general.name").unwrap_or(&m.name),
        "hashes": [{"alg": "BLAKE3", "content": hex}],
    });
    if let Some(v) = p.get("general.version") {
        c["version"] = json!(v);
    }
    if let Some(d) = p.get("general.description") {
        c["description"] = json!(d);
    }
    if let Some(a) = p.get("general.author") {
        c["authors"] = json!([{"name": a}]);
    }
    if let Some(o) = p.get("general.organization") {
        c["supplier"] = json!({"name": o});
    }
    if let Some(l) = &m.license {
        c["licenses"] = json!([license(l)]);
    }
    let refs: Vec<Value> = p
        .iter()
        .filter(|(k, v)| k.ends_with("url") && v.contains("://"))
        .map(|(k, v)| json!({"type": "other", "url": v, "comment": k}))
        .collect();
    if !refs.is_empty() {
        c["externalReferences"] = json!(refs);
    }
    let mut props = vec![
        property("cairn:name", &m.name),
        property("cairn:digest", &m.digest),
        property("cairn:loaded-record", m.seq),
        property("cairn:loaded-at", &m.time),
        property("cairn:loaded-by", &m.loaded_by),
    ];
    let facts = [
        ("cairn:format", m.format.clone()),
        ("cairn:quantization", m.quantization.clone()),
        ("cairn:parameters", m.parameters.map(|n| n.to_string())),
        (
            "cairn:context-length",
            m.context_length.map(|n| n.to_string()),
        ),
    ];
    props.extend(
        facts
            .iter()
            .filter_map(|(k, v)| Some(property(k, v.as_ref()?))),
    );
    props.extend(
        p.iter()
            .map(|(k, v)| property(&format!("cairn:provenance:{k}"), v)),
    );
    c["properties"] = json!(props);
    let mut params = json!({});
    if let Some(a) = &m.arch {
        params["architectureFamily"] = json!(a);
    }
    if let Some(q) = &m.quantization {
        params["modelArchitecture"] = json!(format!(
            "{} {}",
            m.arch.as_deref().unwrap_or("transformer"),
            q
        ));
    }
    c["modelCard"] = json!({"modelParameters": params});
    let files: Vec<Value> = m
        .files
        .iter()
        .map(|f| {
            json!({
                "type": "file",
                "bom-ref": format!("{}#{}", m.digest, f.name),
                "name": f.name,
                "hashes": [{"alg": "BLAKE3", "content": f.blake3}],
                "properties": [property("cairn:bytes", f.bytes)],
            })
        })
        .collect();
    if !files.is_empty() {
        c["components"] = json!(files);
    }
    c
}

/// The ML-BOM of `models`. `serial`: a random UUID (`urn:uuid:…`).
pub fn cyclonedx(
    models: &[&ModelFacts],
    a: &Appliance<'_>,
    timestamp: &str,
    serial: &str,
) -> Value {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{
                "type": "application",
                "name": "cairn",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "device",
                "bom-ref": "appliance",
                "name": a.origin,
                "description": "cairn appliance; the inventory comes from its signed ledger",
            },
            "properties": [
                property("cairn:log", a.origin),
                property("cairn:identity-fingerprint", a.fingerprint),
                property("cairn:checkpoint-size", a.checkpoint_size),
                property("cairn:checkpoint-root", a.checkpoint_root),
            ],
        },
        "components": models.iter().map(|m| component(m)).collect::<Vec<_>>(),
    })
}

/// A random (version 4) UUID as a URN.
pub fn random_serial() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_and_serials() {
        assert_eq!(license("apache-2.0")["license"]["id"], "Apache-2.0");
        assert_eq!(license("llama3.2")["license"]["name"], "llama3.2");
        let s = random_serial().unwrap();
        assert_eq!(s.len(), 45);
        assert_eq!(&s[23..24], "4");
    }
}
