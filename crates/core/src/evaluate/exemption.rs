//! Exemptions: a trail a person decided to live with, tagged `trailwatch:exempt`.
//!
//! Reason codes: `EXEMPTION_INVALID` (WARNING, the tag's value is empty or unreadable),
//! `EXEMPTION_EXPIRED` (WARNING, its `until` date has passed), `EXEMPTION_UNVERIFIABLE` (INFO,
//! the tags could not be read, so no exemption is honoured).
//!
//! An exempt trail is still judged in full and its status is what the checks say; the
//! exemption rides along on the evaluation. What it changes is the handling: the exit code,
//! paging and the Security Hub workflow leave it alone. Anything short of a valid, current
//! exemption is judged and paged as usual, because a page lost to a mistyped tag is worse than
//! one more page.
//!
//! The value is `<reason>` or `<reason> until=YYYY-MM-DD`. CloudTrail accepts only letters,
//! digits, spaces and `_ . : / = + - @` in tag values (`AddTags`: "the key or value specified
//! for the tag does not match the regular expression `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`"), so a
//! `;` before `until=` can never be set on a real trail; it is accepted all the same, for
//! values written by hand in fixtures and other tools.
//!
//! What looks like an end date must be one: a near miss of `until=` (`until = 2027-06-30`,
//! `untill=`, `until Dec 31 2027`) or a date in the reason with no `until` at all is
//! `EXEMPTION_INVALID`, never an exemption without end; so is the key in another case.

use crate::finding::EXEMPTION_NOTE_PREFIX;
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::Observed;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The tag key that exempts a trail.
pub const EXEMPT_TAG: &str = "trailwatch:exempt";

/// A person's decision to live with a trail's findings, read from its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    pub reason: String,
    /// The last day the exemption holds, in UTC; `None` for one without end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
    /// The `until` day has passed: the trail is judged and paged as usual again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

impl Exemption {
    /// Whether the exemption holds now.
    pub fn is_current(&self) -> bool {
        !self.expired
    }

    /// The exemption in a sentence, for a Security Hub note or a report. It starts with
    /// [`EXEMPTION_NOTE_PREFIX`], which is how trailwatch knows its own suppressions.
    pub fn describe(&self) -> String {
        match self.until {
            Some(until) => format!("{EXEMPTION_NOTE_PREFIX} until {until}: {}", self.reason),
            None => format!("{EXEMPTION_NOTE_PREFIX}: {}", self.reason),
        }
    }
}

/// Reads a `trailwatch:exempt` value as of `now`, or says why it cannot be read.
pub fn parse(value: &str, now: DateTime<Utc>) -> Result<Exemption, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(
            "the value is empty; write the reason, and `until=YYYY-MM-DD` if it ends".into(),
        );
    }
    let (reason, until) = match end_date_at(value) {
        Some((at, date_text)) => {
            let until = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
                .map_err(|_| format!("`until={date_text}` is not a date written YYYY-MM-DD"))?;
            let reason = value[..at]
                .trim_end()
                .trim_end_matches([';', ','])
                .trim_end();
            (reason, Some(until))
        }
        None => (value, None),
    };
    if reason.is_empty() {
        return Err("it gives no reason; write why the trail is exempt before `until=`".into());
    }
    if let (None, Some(date)) = (until, date_in(reason)) {
        return Err(format!(
            "it holds a date ({date}) but no `until=`; write `until=YYYY-MM-DD` if the \
             exemption ends then, or leave the date out for one without end"
        ));
    }
    Ok(Exemption {
        reason: reason.to_string(),
        until,
        expired: until.is_some_and(|until| now.date_naive() > until),
    })
}

/// Where the value's end date starts, and its text: the last word starting `until` (any case,
/// `untill` too) that is followed by `=` or `:`, or by a digit or a month's name after spaces
/// or a dash. Near misses such as `until 2027-06-30`, `until = 2027-06-30`, `until-2027-06-30`
/// or `until Dec 31 2027` are end dates that must parse, never a reason that exempts for ever;
/// `until the migration` is reason text.
fn end_date_at(value: &str) -> Option<(usize, &str)> {
    // ASCII lower-casing keeps every byte offset.
    let lower = value.to_ascii_lowercase();
    lower
        .match_indices("until")
        .filter(|(at, _)| {
            !value[..*at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        })
        .filter_map(|(at, word)| {
            let rest =
                value[at + word.len()..].trim_start_matches(|c: char| c.is_ascii_alphabetic());
            let date_text =
                rest.trim_start_matches(|c: char| c.is_whitespace() || "=:-".contains(c));
            let separators = &rest[..rest.len() - date_text.len()];
            let dated = separators.contains(['=', ':'])
                || date_text.starts_with(|c: char| c.is_ascii_digit())
                || starts_with_a_month(date_text);
            dated.then_some((at, date_text.trim_end()))
        })
        .last()
}

/// The first thing in `reason` shaped like a date, year first (`2027-06-30`, `2027/6/30`,
/// `2027.06.30`): an end date written without `until`, which must not become an exemption
/// without end. A ticket number such as `SEC-2024-05-117` is not one: month and day are one or
/// two digits, and nothing alphanumeric follows.
fn date_in(reason: &str) -> Option<&str> {
    let bytes = reason.as_bytes();
    let digits = |from: usize| {
        bytes.get(from..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    };
    (0..bytes.len()).find_map(|start| {
        let starts_a_word = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if !starts_a_word || digits(start) != 4 {
            return None;
        }
        let separator = *bytes.get(start + 4).filter(|b| b"-/.".contains(*b))?;
        let month = digits(start + 5);
        let day_at = start + 6 + month;
        let day = digits(day_at);
        let end = day_at + day;
        let ends_a_word = bytes.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
        ((1..=2).contains(&month)
            && bytes.get(start + 5 + month) == Some(&separator)
            && (1..=2).contains(&day)
            && ends_a_word)
            .then(|| &reason[start..end])
    })
}

/// Whether `text` starts with an English month's name (`Dec 31 2026`, `december`).
fn starts_with_a_month(text: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    text.get(..3)
        .is_some_and(|start| MONTHS.iter().any(|m| start.eq_ignore_ascii_case(m)))
}

/// The exemption `tags` carry, with the reasons it adds to the verdict. `None` tags were not
/// read at all (a snapshot from before tags were read): no exemption and nothing to say.
pub fn exemption_of(
    tags: Option<&Observed<BTreeMap<String, String>>>,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
) -> Option<Exemption> {
    let tags = match tags? {
        Ok(tags) => tags,
        Err(why) => {
            reasons.push(Reason::new(
                ReasonCode::ExemptionUnverifiable,
                format!(
                    "The trail's tags could not be read ({}), so a {EXEMPT_TAG} tag, if any, is \
                     not honoured: the trail is judged and paged as usual.",
                    why.describe()
                ),
            ));
            return None;
        }
    };
    let Some(value) = tags.get(EXEMPT_TAG) else {
        // Tag keys are case-sensitive: `TrailWatch:Exempt` exempts nothing, and says so, so
        // that a person who meant an exemption learns why the pages go on.
        let misspelt = tags
            .keys()
            .find(|key| key.trim().eq_ignore_ascii_case(EXEMPT_TAG))?;
        reasons.push(Reason::new(
            ReasonCode::ExemptionInvalid,
            format!(
                "The trail has a tag {misspelt:?}, which is not {EXEMPT_TAG}: tag keys are \
                 case-sensitive, so the trail is not exempt. Tag it {EXEMPT_TAG} instead."
            ),
        ));
        return None;
    };
    match parse(value, now) {
        Ok(exemption) => {
            if exemption.expired {
                reasons.push(Reason::new(
                    ReasonCode::ExemptionExpired,
                    format!(
                        "The {EXEMPT_TAG} tag's exemption (\"{}\") ended on {}; the trail is \
                         judged and paged as usual again. Renew the date, fix the trail, or \
                         remove the tag.",
                        exemption.reason,
                        exemption.until.map(|d| d.to_string()).unwrap_or_default()
                    ),
                ));
            }
            Some(exemption)
        }
        Err(why) => {
            reasons.push(Reason::new(
                ReasonCode::ExemptionInvalid,
                format!(
                    "The {EXEMPT_TAG} tag's value {value:?} is not an exemption: {why}. The \
                     trail is not exempt until it is."
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Unavailable;

    fn at(day: &str) -> DateTime<Utc> {
        format!("{day}T12:00:00Z").parse().unwrap()
    }

    fn tagged(value: &str) -> Observed<BTreeMap<String, String>> {
        Ok(BTreeMap::from([(
            EXEMPT_TAG.to_string(),
            value.to_string(),
        )]))
    }

    #[test]
    fn a_reason_alone_exempts_without_end() {
        let exemption = parse("data events only, S3 is enough", at("2026-12-01")).unwrap();
        assert_eq!(exemption.reason, "data events only, S3 is enough");
        assert_eq!(exemption.until, None);
        assert!(exemption.is_current());
        for value in [
            "ticket CHG-12345 approved by secops",
            "ticket SEC-2024-05-117",
            "approved 2026-11-30 until=2027-06-30",
        ] {
            assert!(
                parse(value, at("2026-12-01")).is_ok(),
                "{value:?} was refused"
            );
        }
    }

    #[test]
    fn until_is_read_in_the_form_aws_accepts_and_in_the_semicolon_form() {
        for value in [
            "cost review until=2026-12-31",
            "cost review; until=2026-12-31",
            "  cost review ;until=2026-12-31  ",
        ] {
            let exemption = parse(value, at("2026-12-01")).unwrap();
            assert_eq!(exemption.reason, "cost review", "{value}");
            assert_eq!(exemption.until, NaiveDate::from_ymd_opt(2026, 12, 31));
            assert!(exemption.is_current());
        }
    }

    #[test]
    fn near_misses_of_until_are_end_dates_that_must_parse_and_prose_is_reason() {
        for value in [
            "cost UNTIL=2026-12-31",
            "cost until 2026-12-31",
            "cost Until:2026-12-31",
        ] {
            let exemption = parse(value, at("2026-12-01")).unwrap();
            assert_eq!(exemption.reason, "cost", "{value}");
            assert_eq!(
                exemption.until,
                NaiveDate::from_ymd_opt(2026, 12, 31),
                "{value}"
            );
        }
        for value in [
            "cost until = 2026-12-31",
            "cost until =2026-12-31",
            "cost untill=2026-12-31",
            "cost until2026-12-31",
            "cost until-2026-12-31",
            "cost until\u{a0}2026-12-31",
        ] {
            let exemption = parse(value, at("2026-12-01"))
                .unwrap_or_else(|why| panic!("{value:?} was refused: {why}"));
            assert_eq!(exemption.reason, "cost", "{value:?}");
            assert_eq!(
                exemption.until,
                NaiveDate::from_ymd_opt(2026, 12, 31),
                "{value:?}"
            );
        }
        assert!(parse("cost until 2026/12/31", at("2026-12-01")).is_err());
        assert!(parse("cost until: the migration", at("2026-12-01")).is_err());
        let prose = parse("kept until the migration ends", at("2026-12-01")).unwrap();
        assert_eq!(prose.reason, "kept until the migration ends");
        assert_eq!(prose.until, None);
    }

    #[test]
    fn the_until_day_itself_still_holds_and_the_next_day_does_not() {
        let value = "cost review until=2026-12-01";
        assert!(parse(value, at("2026-12-01")).unwrap().is_current());
        let lapsed = parse(value, at("2026-12-02")).unwrap();
        assert!(lapsed.expired);
    }

    #[test]
    fn empty_reasonless_and_undated_values_are_refused() {
        for value in [
            "",
            "   ",
            "until=2026-12-31",
            "; until=2026-12-31",
            "x until=31/12/2026",
            "x until=2026-02-30",
            // An end date without `until` would otherwise exempt for ever.
            "cost review ends 2026-12-31",
            "cost review, 2026/12/31",
            "cost review to 2026.12.31",
            "cost until Dec 31 2026",
        ] {
            assert!(
                parse(value, at("2026-12-01")).is_err(),
                "{value:?} was accepted"
            );
        }
    }

    #[test]
    fn a_bad_value_warns_naming_the_tag_and_exempts_nothing() {
        let mut reasons = Vec::new();
        let exemption = exemption_of(Some(&tagged("")), at("2026-12-01"), &mut reasons);
        assert_eq!(exemption, None);
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].code, ReasonCode::ExemptionInvalid);
        assert!(
            reasons[0].message.contains(EXEMPT_TAG),
            "{}",
            reasons[0].message
        );
    }

    #[test]
    fn a_key_in_the_wrong_case_warns_and_exempts_nothing() {
        for key in ["TrailWatch:Exempt", "trailwatch:exempt "] {
            let tags = Ok(BTreeMap::from([(key.to_string(), "cost".to_string())]));
            let mut reasons = Vec::new();
            assert_eq!(
                exemption_of(Some(&tags), at("2026-12-01"), &mut reasons),
                None
            );
            assert_eq!(reasons.len(), 1, "{key:?}");
            assert_eq!(reasons[0].code, ReasonCode::ExemptionInvalid);
            assert!(reasons[0].message.contains(key), "{}", reasons[0].message);
        }
        let unrelated = Ok(BTreeMap::from([("team".to_string(), "audit".to_string())]));
        let mut reasons = Vec::new();
        assert_eq!(
            exemption_of(Some(&unrelated), at("2026-12-01"), &mut reasons),
            None
        );
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn an_expired_exemption_rides_along_with_its_warning() {
        let mut reasons = Vec::new();
        let exemption = exemption_of(
            Some(&tagged("migration until=2026-11-30")),
            at("2026-12-01"),
            &mut reasons,
        )
        .unwrap();
        assert!(exemption.expired);
        assert_eq!(reasons[0].code, ReasonCode::ExemptionExpired);
        assert!(
            reasons[0].message.contains("2026-11-30"),
            "{}",
            reasons[0].message
        );
    }

    #[test]
    fn unreadable_tags_exempt_nothing_and_say_so() {
        let mut reasons = Vec::new();
        let denied: Observed<BTreeMap<String, String>> = Err(Unavailable::new(
            "ListTags",
            Some("AccessDeniedException".into()),
            "not authorized",
        ));
        assert_eq!(
            exemption_of(Some(&denied), at("2026-12-01"), &mut reasons),
            None
        );
        assert_eq!(reasons[0].code, ReasonCode::ExemptionUnverifiable);
        let mut none = Vec::new();
        assert_eq!(exemption_of(None, at("2026-12-01"), &mut none), None);
        assert!(none.is_empty());
        let untagged: Observed<BTreeMap<String, String>> = Ok(BTreeMap::new());
        assert_eq!(
            exemption_of(Some(&untagged), at("2026-12-01"), &mut none),
            None
        );
        assert!(none.is_empty());
    }
}
