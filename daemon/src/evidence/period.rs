//! The reporting period: whole UTC days, both ends included.

use anyhow::{bail, Context};
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime};

/// A period of whole UTC days, `from` and `to` included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// The first day.
    pub from: Date,
    /// The last day.
    pub to: Date,
}

impl Period {
    /// A period; `from` must not be after `to`.
    pub fn new(from: Date, to: Date) -> anyhow::Result<Self> {
        if from > to {
            bail!(
                "the period starts ({}) after it ends ({})",
                day(from),
                day(to)
            );
        }
        Ok(Period { from, to })
    }

    /// Whether a record time (`2026-11-22T12:54:38.925831Z`) falls in it.
    pub fn contains(&self, time: &str) -> bool {
        match time.get(..10) {
            Some(d) => d >= day(self.from).as_str() && d <= day(self.to).as_str(),
            None => false,
        }
    }

    /// Every day of the period, as `YYYY-MM-DD`.
    pub fn days(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut d = self.from;
        while d <= self.to {
            out.push(day(d));
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
        out
    }

    /// The instant the period starts (00:00 UTC of `from`).
    pub fn start(&self) -> OffsetDateTime {
        self.from.midnight().assume_utc()
    }

    /// The instant it ends (00:00 UTC of the day after `to`).
    pub fn end(&self) -> OffsetDateTime {
        self.to.midnight().assume_utc() + Duration::days(1)
    }
}

/// Parses a `YYYY-MM-DD` date given on the command line (`what` names the
/// option in the message).
pub fn parse_date(what: &str, s: &str) -> anyhow::Result<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .with_context(|| format!("{what} {s:?} is not a date of the form YYYY-MM-DD"))
}

/// A date as `YYYY-MM-DD`.
pub fn day(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses a record time (RFC 3339, as records carry it).
pub fn instant(time: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()
}

/// The day of a record time, if it has one.
pub fn day_of(time: &str) -> Option<Date> {
    parse_date("", time.get(..10)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_membership() {
        let p = Period::new(
            parse_date("--from", "2026-02-27").unwrap(),
            parse_date("--to", "2026-03-01").unwrap(),
        )
        .unwrap();
        assert_eq!(p.days(), ["2026-02-27", "2026-02-28", "2026-03-01"]);
        assert!(p.contains("2026-03-01T23:59:59.999999Z"));
        assert!(!p.contains("2026-03-02T00:00:00.000000Z"));
        assert!(!p.contains("2026-02-26T23:59:59.999999Z"));
        assert!(!p.contains("bad"));
        for bad in ["2026-13-01", "2026-02-30", "yesterday", "2026-1-1"] {
            let e = parse_date("--from", bad).unwrap_err().to_string();
            assert!(e.contains("YYYY-MM-DD"), "{e}");
        }
        let e = Period::new(p.to, p.from).unwrap_err().to_string();
        assert!(e.contains("after it ends"), "{e}");
        assert_eq!((p.end() - p.start()).whole_days(), 3);
    }
}
