//! The frameworks a report maps its findings to, and the criteria each
//! finding is evidence for. The mapping is cairn's reading of the criteria
//! (titles paraphrased); an auditor decides what evidence satisfies one.

use serde::Serialize;

/// A compliance framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Framework {
    /// AICPA SOC 2 Trust Services Criteria.
    #[serde(rename = "soc2")]
    Soc2,
    /// Regulation (EU) 2024/1689, the AI Act.
    #[serde(rename = "eu-ai-act")]
    EuAiAct,
    /// ISO/IEC 42001:2023, Annex A controls.
    #[serde(rename = "iso42001")]
    Iso42001,
    /// NIST AI Risk Management Framework 1.0.
    #[serde(rename = "nist-ai-rmf")]
    NistAiRmf,
}

impl Framework {
    /// Every framework, in report order.
    pub const ALL: [Framework; 4] = [
        Framework::Soc2,
        Framework::EuAiAct,
        Framework::Iso42001,
        Framework::NistAiRmf,
    ];

    /// Its name.
    pub fn title(self) -> &'static str {
        match self {
            Framework::Soc2 => "SOC 2",
            Framework::EuAiAct => "EU AI Act",
            Framework::Iso42001 => "ISO/IEC 42001",
            Framework::NistAiRmf => "NIST AI RMF",
        }
    }
}

/// One criterion of a framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Criterion {
    /// The framework.
    pub framework: Framework,
    /// Its identifier, e.g. `CC8.1`, `Art. 12(1)`, `A.6.2.8`, `MEASURE 2.4`.
    pub id: &'static str,
    /// What it asks, paraphrased.
    pub title: &'static str,
}

/// What a finding is about; each topic is evidence for fixed criteria.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topic {
    /// The log verifies: signatures, chain, Merkle roots.
    Integrity,
    /// The log is kept whole from its first record.
    Retention,
    /// Which models ran.
    ModelsInUse,
    /// Licence and provenance of the models that ran.
    Provenance,
    /// Model, configuration and key changes and who made them.
    Changes,
    /// Re-assessment triggers and reviews.
    Reassessment,
    /// Callers refused.
    Access,
    /// Requests without a result, failures, unclean stops.
    GateFailures,
    /// Exports, anchors and their gaps.
    ExportsAnchors,
    /// Records grouped by responsibility layer.
    Layers,
}

use Framework::{EuAiAct as Eu, Iso42001 as Iso, NistAiRmf as Nist, Soc2};

const fn c(framework: Framework, id: &'static str, title: &'static str) -> Criterion {
    Criterion {
        framework,
        id,
        title,
    }
}

const CC3_4: Criterion = c(Soc2, "CC3.4", "Identifies and assesses changes that could significantly affect the system of internal control");
const CC6_1: Criterion = c(
    Soc2,
    "CC6.1",
    "Logical access security restricts access to protected information assets",
);
const CC7_2: Criterion = c(Soc2, "CC7.2", "System components are monitored for anomalies indicative of malicious acts, failures and errors");
const CC8_1: Criterion = c(
    Soc2,
    "CC8.1",
    "Changes are authorised, documented, tested, approved and implemented",
);
const CC9_2: Criterion = c(
    Soc2,
    "CC9.2",
    "Risks from vendors and business partners are assessed and managed",
);
const PI1_2: Criterion = c(
    Soc2,
    "PI1.2",
    "Processing integrity: system inputs are complete and accurate",
);
const PI1_3: Criterion = c(
    Soc2,
    "PI1.3",
    "Processing integrity: processing is complete, accurate and timely",
);
const PI1_4: Criterion = c(
    Soc2,
    "PI1.4",
    "Processing integrity: outputs are complete and accurate",
);
const PI1_5: Criterion = c(
    Soc2,
    "PI1.5",
    "Processing integrity: inputs, processing and outputs are stored completely and accurately",
);
const ART12_1: Criterion = c(
    Eu,
    "Art. 12(1)",
    "Automatic recording of events (logs) over the system's lifetime",
);
const ART12_2A: Criterion = c(
    Eu,
    "Art. 12(2)(a)",
    "Logs identify situations that may present a risk or a substantial modification",
);
const ART12_2B: Criterion = c(
    Eu,
    "Art. 12(2)(b)",
    "Logs facilitate post-market monitoring",
);
const ART12_2C: Criterion = c(
    Eu,
    "Art. 12(2)(c)",
    "Logs allow monitoring of the system's operation",
);
const ART19_1: Criterion = c(
    Eu,
    "Art. 19(1)",
    "Automatically generated logs are kept for at least six months",
);
const ART25: Criterion = c(Eu, "Art. 25", "Responsibilities along the AI value chain");
const A5_2: Criterion = c(
    Iso,
    "A.5.2",
    "AI system impact assessment process (re-assessment on change)",
);
const A6_2_5: Criterion = c(Iso, "A.6.2.5", "AI system deployment");
const A6_2_6: Criterion = c(Iso, "A.6.2.6", "AI system operation and monitoring");
const A6_2_8: Criterion = c(Iso, "A.6.2.8", "AI system recording of event logs");
const A10_2: Criterion = c(
    Iso,
    "A.10.2",
    "Allocating responsibilities between the organisation and third parties",
);
const A10_3: Criterion = c(Iso, "A.10.3", "Suppliers");
const GOV1_5: Criterion = c(
    Nist,
    "GOVERN 1.5",
    "Ongoing monitoring and periodic review are planned",
);
const GOV1_6: Criterion = c(
    Nist,
    "GOVERN 1.6",
    "Mechanisms are in place to inventory AI systems",
);
const GOV2_1: Criterion = c(
    Nist,
    "GOVERN 2.1",
    "Roles and responsibilities are documented and clear",
);
const GOV6_1: Criterion = c(
    Nist,
    "GOVERN 6.1",
    "Policies address risks from third-party entities, including intellectual property",
);
const MAP4_1: Criterion = c(
    Nist,
    "MAP 4.1",
    "Legal and technology risks of components, including third-party software, are mapped",
);
const MEA2_4: Criterion = c(
    Nist,
    "MEASURE 2.4",
    "The system's functionality and behaviour are monitored in production",
);
const MEA2_7: Criterion = c(
    Nist,
    "MEASURE 2.7",
    "Security and resilience are evaluated and documented",
);
const MEA2_8: Criterion = c(
    Nist,
    "MEASURE 2.8",
    "Transparency and accountability risks are examined and documented",
);
const MEA3_1: Criterion = c(
    Nist,
    "MEASURE 3.1",
    "Emergent risks are identified and tracked",
);
const MAN3_1: Criterion = c(
    Nist,
    "MANAGE 3.1",
    "Risks from third-party resources are monitored and controlled",
);
const MAN4_1: Criterion = c(
    Nist,
    "MANAGE 4.1",
    "Post-deployment monitoring, incident response and change management are implemented",
);

impl Topic {
    /// The criteria this topic is evidence for, in every framework.
    pub fn criteria(self) -> &'static [Criterion] {
        match self {
            Topic::Integrity => &[CC7_2, PI1_5, ART12_1, A6_2_8, MEA2_8],
            Topic::Retention => &[PI1_5, ART19_1, ART12_1, A6_2_8, MEA2_8],
            Topic::ModelsInUse => &[PI1_3, CC9_2, ART12_2C, A6_2_6, A10_3, GOV1_6, MEA2_4],
            Topic::Provenance => &[CC9_2, ART25, A10_3, GOV6_1, MAP4_1, MAN3_1],
            Topic::Changes => &[CC8_1, ART12_2A, A6_2_5, MAN4_1],
            Topic::Reassessment => &[CC3_4, CC8_1, ART12_2A, A5_2, GOV1_5, MEA3_1],
            Topic::Access => &[CC6_1, ART12_1, A6_2_8, MEA2_7],
            Topic::GateFailures => &[
                CC7_2, PI1_2, PI1_3, PI1_4, ART12_2B, ART12_2C, A6_2_6, MEA2_4, MAN4_1,
            ],
            Topic::ExportsAnchors => &[PI1_5, CC7_2, ART19_1, ART12_1, A6_2_8, MEA2_8],
            Topic::Layers => &[CC9_2, ART25, A10_2, GOV2_1],
        }
    }
}

/// Every criterion some topic maps to, in `frameworks`, without repeats,
/// in catalogue order.
pub fn catalogue(frameworks: &[Framework]) -> Vec<Criterion> {
    const TOPICS: [Topic; 10] = [
        Topic::Integrity,
        Topic::Retention,
        Topic::ModelsInUse,
        Topic::Provenance,
        Topic::Changes,
        Topic::Reassessment,
        Topic::Access,
        Topic::GateFailures,
        Topic::ExportsAnchors,
        Topic::Layers,
    ];
    let mut out: Vec<Criterion> = Vec::new();
    for f in frameworks {
        for t in TOPICS {
            for c in t.criteria() {
                if c.framework == *f && !out.iter().any(|o| o.id == c.id) {
                    out.push(*c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_framework_has_criteria_and_the_issues_are_covered() {
        for f in Framework::ALL {
            assert!(!catalogue(&[f]).is_empty(), "{f:?}");
        }
        let ids: Vec<_> = catalogue(&Framework::ALL).iter().map(|c| c.id).collect();
        for want in [
            "CC6.1",
            "CC7.2",
            "CC8.1",
            "CC9.2",
            "PI1.3",
            "Art. 12(1)",
            "Art. 19(1)",
            "A.6.2.8",
            "A.10.3",
            "GOVERN 1.6",
            "MAP 4.1",
            "MEASURE 2.4",
            "MANAGE 4.1",
        ] {
            assert!(ids.contains(&want), "{want} missing");
        }
    }
}
