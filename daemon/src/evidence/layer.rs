//! The four responsibility layers of an AI system (model provider, product,
//! deploying enterprise, implementation team), and which layer each record
//! kind is evidence for.

use serde::Serialize;

/// A responsibility layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Whoever made the model: its behaviour, training, licence and
    /// provenance.
    ModelProvider,
    /// The product built on it (here cairn itself): the gate, the ledger,
    /// prompt handling, integration security.
    Product,
    /// The site that deploys it: configuration, access control, keys,
    /// exports and anchoring, human oversight.
    DeployingEnterprise,
    /// The team that implements the workflow: which models run, change
    /// management, review, the applications that call the model.
    ImplementationTeam,
}

impl Layer {
    /// Every layer, in report order.
    pub const ALL: [Layer; 4] = [
        Layer::ModelProvider,
        Layer::Product,
        Layer::DeployingEnterprise,
        Layer::ImplementationTeam,
    ];

    /// The layer's name.
    pub fn title(self) -> &'static str {
        match self {
            Layer::ModelProvider => "Model provider",
            Layer::Product => "Product",
            Layer::DeployingEnterprise => "Deploying enterprise",
            Layer::ImplementationTeam => "Implementation team",
        }
    }

    /// What the layer answers for.
    pub fn duty(self) -> &'static str {
        match self {
            Layer::ModelProvider => {
                "model behaviour, training data, licence and provenance disclosures"
            }
            Layer::Product => "the audit gate and ledger, request handling, integration security",
            Layer::DeployingEnterprise => {
                "configuration, access control, keys, exports and anchoring, oversight"
            }
            Layer::ImplementationTeam => {
                "model choice and changes, review and sign-off, the calling workflows"
            }
        }
    }

    /// The layer a record kind is evidence for. Kinds cairn does not know
    /// are the product's (it wrote them).
    pub fn of_kind(kind: &str) -> Layer {
        match kind {
            "model.loaded" | "inference.result" => Layer::ModelProvider,
            "log.genesis" | "daemon.start" | "daemon.stop" | "access.denied" | "ledger.export"
            | "ledger.anchor" => Layer::DeployingEnterprise,
            "model.load" | "model.unload" | "model.load_failed" | "inference.request"
            | "review.record" => Layer::ImplementationTeam,
            k if k.starts_with("key.") => Layer::DeployingEnterprise,
            _ => Layer::Product,
        }
    }
}

/// Why each known kind belongs to its layer, for the report's appendix.
pub const KIND_REASONS: [(&str, &str); 16] = [
    ("log.genesis", "the site's keys, published in the log"),
    (
        "daemon.start",
        "the configuration the site runs (its digest)",
    ),
    ("daemon.stop", "the site's operation of the appliance"),
    (
        "model.load",
        "a model chosen or swapped by the implementation team",
    ),
    (
        "model.loaded",
        "what the provider's files declare: digest, licence, provenance",
    ),
    ("model.load_failed", "a model change that did not happen"),
    (
        "model.unload",
        "a model withdrawn by the implementation team",
    ),
    (
        "inference.request",
        "a call from the team's workflow, with its parameters",
    ),
    (
        "inference.result",
        "what the model did: tokens, finish reason, timings",
    ),
    ("inference.failed", "the product failed to serve a request"),
    (
        "inference.aborted",
        "the product stopped before a request finished",
    ),
    (
        "access.denied",
        "the site's access control refusing a caller",
    ),
    (
        "ledger.export",
        "the site's operators taking signed roots off the box",
    ),
    (
        "ledger.anchor",
        "the site's operators anchoring a checkpoint in time",
    ),
    (
        "review.record",
        "a reviewer signing off the model and configuration state",
    ),
    ("(other kinds)", "written by cairn, the product"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kind_has_the_layer_its_reason_describes() {
        assert_eq!(Layer::of_kind("inference.result"), Layer::ModelProvider);
        assert_eq!(Layer::of_kind("inference.failed"), Layer::Product);
        assert_eq!(Layer::of_kind("access.denied"), Layer::DeployingEnterprise);
        assert_eq!(Layer::of_kind("review.record"), Layer::ImplementationTeam);
        assert_eq!(Layer::of_kind("key.rotate"), Layer::DeployingEnterprise);
        assert_eq!(Layer::of_kind("test.event"), Layer::Product);
        let kinds: std::collections::BTreeSet<_> = KIND_REASONS.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds.len(), KIND_REASONS.len());
    }
}
