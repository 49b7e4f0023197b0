//! Re-assessment triggers: a model digest, a configuration digest or a
//! system prompt digest seen for the first time since the last review
//! (`review.record`). A review signs off everything recorded before it, so
//! it clears every trigger still open.

use std::collections::HashSet;

use cairn_attest::Record;

use super::actor_label;
use super::period::Period;
use super::report::{Reassessment, Review, Trigger};

/// Replays the log's triggers and reviews.
#[derive(Default)]
pub(super) struct Tracker {
    reviewed: HashSet<(&'static str, String)>,
    pending: Vec<usize>,
    triggers: Vec<Trigger>,
    reviews: Vec<Review>,
}

impl Tracker {
    /// Applies one record.
    pub(super) fn apply(&mut self, r: &Record) {
        match r.kind.as_str() {
            "model.loaded" => {
                if let Some(d) = &r.model {
                    let name = r.body["name"].as_str().map(str::to_owned);
                    self.see("model", d, name, r);
                }
            }
            "daemon.start" => {
                if let Some(c) = r.body["config_digest"].as_str() {
                    self.see("configuration", c, None, r);
                }
            }
            "inference.request" => {
                if let Some(p) = r.body["system_prompt"].as_str() {
                    self.see("system prompt", p, None, r);
                }
            }
            "review.record" => self.review(r),
            _ => {}
        }
    }

    fn see(&mut self, subject: &'static str, value: &str, name: Option<String>, r: &Record) {
        let key = (subject, value.to_owned());
        if self.reviewed.contains(&key)
            || self
                .pending
                .iter()
                .any(|&i| self.triggers[i].subject == subject && self.triggers[i].value == value)
        {
            return;
        }
        self.pending.push(self.triggers.len());
        self.triggers.push(Trigger {
            subject,
            value: key.1,
            name,
            seq: r.seq,
            time: r.time.clone(),
            cleared_by: None,
            cleared_at: None,
        });
    }

    fn review(&mut self, r: &Record) {
        let cleared = self.pending.len();
        for i in self.pending.drain(..) {
            let t = &mut self.triggers[i];
            t.cleared_by = Some(r.seq);
            t.cleared_at = Some(r.time.clone());
            self.reviewed.insert((t.subject, t.value.clone()));
        }
        self.reviews.push(Review {
            seq: r.seq,
            time: r.time.clone(),
            reviewer: actor_label(&r.actor),
            note: r.body["note"].as_str().unwrap_or_default().to_owned(),
            cleared,
        });
    }

    /// The triggers open at some time in `period` and its reviews.
    pub(super) fn finish(self, period: &Period) -> Reassessment {
        let open = self.pending.len();
        let (from, to) = (
            super::period::day(period.from),
            super::period::day(period.to),
        );
        let triggers = self
            .triggers
            .into_iter()
            .filter(|t| {
                t.time.get(..10).is_some_and(|d| d <= to.as_str())
                    && t.cleared_at
                        .as_deref()
                        .is_none_or(|c| c.get(..10).is_some_and(|d| d >= from.as_str()))
            })
            .collect();
        let reviews = self
            .reviews
            .into_iter()
            .filter(|r| period.contains(&r.time))
            .collect();
        Reassessment {
            reviews,
            triggers,
            open,
        }
    }
}
