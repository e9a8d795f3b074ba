//! `on.schedule` cron expressions: parsing, the next fire time, and the one
//! fire that is due after downtime.
//!
//! The syntax is GitHub's: five fields (minute, hour, day of month, month,
//! day of week) of numbers, `*`, lists `a,b`, ranges `a-b` and steps `*/n`,
//! `a-b/n`, with month names `JAN`–`DEC` and day names `SUN`–`SAT` (any
//! case); day of week runs 0–6 from Sunday, and 7 is Sunday too. The
//! extensions other crons accept (`@daily`, seconds and year fields, `L`,
//! `W`, `#`, `?`, `+`) are refused, so a schedule means the same here as on
//! GitHub. When both day fields are restricted a day matches if either
//! does (`0 0 13 * FRI` fires on the 13th and on every Friday); a field
//! counts as unrestricted only when it is exactly `*`.
//!
//! Times are evaluated in a time zone (UTC unless the server configures
//! another). Across daylight saving changes the rules are Vixie cron's, as
//! implemented by the `croner` crate: a fixed-time schedule whose wall time
//! is skipped fires right after the gap, and one whose wall time repeats
//! fires once, on the first pass; schedules with `*` or steps in the minute
//! or hour field fire on the wall times that exist, on both passes of a
//! repeat.
//!
//! `croner` does the calendar search (its jiff backend walks real time, so a
//! result is never before its start); this module restricts the syntax and
//! defines the two questions the server asks, [`next_after`] and [`due`].

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use std::fmt;
use std::str::FromStr;

/// A parsed schedule.
#[derive(Clone)]
pub struct Cron {
    source: String,
    inner: croner::Cron,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cron").field(&self.source).finish()
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "a cron schedule has five fields (minute hour day-of-month month day-of-week), found {found}"
    )]
    FieldCount { found: usize },
    #[error("`{text}` in the {field} field is not supported; use numbers, `*`, `,`, `-` and `/`")]
    Unsupported { field: &'static str, text: String },
    #[error("`{name}` is not a {field} name")]
    UnknownName { field: &'static str, name: String },
    #[error("invalid cron schedule `{source_text}`: {message}")]
    Invalid {
        source_text: String,
        message: String,
    },
}

const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(source: &str) -> Result<Cron, CronError> {
        let fields: Vec<&str> = source.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                found: fields.len(),
            });
        }
        for (i, field) in fields.iter().enumerate() {
            check_field(i, field)?;
        }
        let inner = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(&fields.join(" "))
            .map_err(|e| CronError::Invalid {
                source_text: source.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Cron {
            source: source.to_owned(),
            inner,
        })
    }

    /// The schedule as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl FromStr for Cron {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Cron, CronError> {
        Cron::parse(s)
    }
}

/// Only GitHub's characters; names only where they mean something.
fn check_field(index: usize, field: &str) -> Result<(), CronError> {
    let name = FIELDS[index];
    let names: &[&str] = match index {
        3 => &MONTHS,
        4 => &DAYS,
        _ => &[],
    };
    let mut word = String::new();
    let flush = |word: &mut String| -> Result<(), CronError> {
        if word.is_empty() {
            return Ok(());
        }
        let upper = word.to_ascii_uppercase();
        let w = std::mem::take(word);
        if names.is_empty() {
            return Err(CronError::Unsupported {
                field: name,
                text: w,
            });
        }
        if names.contains(&upper.as_str()) {
            Ok(())
        } else {
            Err(CronError::UnknownName {
                field: if index == 3 { "month" } else { "day" },
                name: w,
            })
        }
    };
    for c in field.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
            continue;
        }
        flush(&mut word)?;
        if !(c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/')) {
            return Err(CronError::Unsupported {
                field: name,
                text: c.to_string(),
            });
        }
    }
    flush(&mut word)
}

/// The first fire time strictly after `after`, with the schedule read in
/// `tz`. `None` when the schedule never fires again (`0 0 30 2 *`).
pub fn next_after(cron: &Cron, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let start = after.to_zoned(tz.clone());
    let next: Zoned = cron.inner.find_next_occurrence(&start, false).ok()?;
    let ts = next.timestamp();
    // Belt and braces: the contract is "strictly after", whatever the
    // search does with sub-second starts.
    if ts > after {
        Some(ts)
    } else {
        next_after(
            cron,
            after.checked_add(jiff::SignedDuration::from_secs(1)).ok()?,
            tz,
        )
    }
}

/// The fire that is due at `now`, given that the schedule last fired (or
/// was registered) at `since`: the latest fire time in `(since, now]`, or
/// `None` if there is none. However many slots fell in that interval
/// (downtime), one is returned, so a missed schedule fires once. The
/// caller records `now` (or the returned time) as the new `since` and
/// stores [`next_after`]`(now)` as the next wake-up.
pub fn due(cron: &Cron, since: Timestamp, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    if now <= since {
        return None;
    }
    let end = now.to_zoned(tz.clone());
    let prev: Zoned = cron.inner.find_previous_occurrence(&end, true).ok()?;
    let ts = prev.timestamp();
    (ts > since && ts <= now).then_some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn cron(s: &str) -> Cron {
        Cron::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn next_utc(c: &str, after: &str) -> Option<String> {
        next_after(&cron(c), ts(after), &TimeZone::UTC).map(|t| t.to_string())
    }

    /// US Eastern from its POSIX rule, so the tests need no tz database.
    fn eastern() -> TimeZone {
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").expect("posix tz")
    }

    #[test]
    fn next_fire_times() {
        let cases = [
            ("0 3 * * *", "2025-01-01T02:00:00Z", "2025-01-01T03:00:00Z"),
            ("0 3 * * *", "2025-01-01T03:00:00Z", "2025-01-02T03:00:00Z"),
            (
                "0 3 * * *",
                "2025-01-01T02:59:59.5Z",
                "2025-01-01T03:00:00Z",
            ),
            (
                "*/15 * * * *",
                "2025-01-01T10:07:00Z",
                "2025-01-01T10:15:00Z",
            ),
            (
                "5,35 9-17/4 * * *",
                "2025-01-01T09:35:00Z",
                "2025-01-01T13:05:00Z",
            ),
            (
                "0 0 * * MON-FRI",
                "2025-01-03T12:00:00Z",
                "2025-01-06T00:00:00Z",
            ),
            (
                "0 0 * * mon",
                "2025-01-01T00:00:00Z",
                "2025-01-06T00:00:00Z",
            ),
            ("0 0 * * 7", "2025-01-01T00:00:00Z", "2025-01-05T00:00:00Z"),
            (
                "0 0 1 JAN,jul *",
                "2025-02-01T00:00:00Z",
                "2025-07-01T00:00:00Z",
            ),
            (
                "0 12 29 2 *",
                "2025-01-01T00:00:00Z",
                "2028-02-29T12:00:00Z",
            ),
            // Both day fields restricted: either matches (the 13th, or a Friday).
            (
                "0 0 13 * FRI",
                "2025-06-01T00:00:00Z",
                "2025-06-06T00:00:00Z",
            ),
            (
                "0 0 13 * FRI",
                "2025-06-10T00:00:00Z",
                "2025-06-13T00:00:00Z",
            ),
            (
                "0 0 13 * FRI",
                "2025-06-13T00:00:00Z",
                "2025-06-20T00:00:00Z",
            ),
            // One day field `*`: only the other counts.
            ("0 0 13 * *", "2025-06-01T00:00:00Z", "2025-06-13T00:00:00Z"),
        ];
        for (c, after, want) in cases {
            assert_eq!(
                next_utc(c, after).as_deref(),
                Some(want),
                "{c} after {after}"
            );
        }
        assert_eq!(next_utc("0 0 30 2 *", "2025-01-01T00:00:00Z"), None);
    }

    #[test]
    fn github_syntax_only() {
        for bad in [
            "@daily",
            "0 0 * *",
            "0 0 0 * * *",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 ? * *",
            "0 0 * * 5#2",
            "0 0 * * 5L",
            "0 0 +1 * *",
            "60 * * * *",
            "* 24 * * *",
            "0 0 0 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "0 0 * FOO *",
            "0 0 * * MONDAY",
            "0 0 * JAN MON-JAN",
            "0 MON * * *",
            "*/0 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            Cron::parse("0 0 * *"),
            Err(CronError::FieldCount { found: 4 })
        );
        assert_eq!(
            Cron::parse("0 0 L * *"),
            Err(CronError::Unsupported {
                field: "day-of-month",
                text: "L".into()
            })
        );
        assert_eq!(
            Cron::parse("0 0 * * FOO"),
            Err(CronError::UnknownName {
                field: "day",
                name: "FOO".into()
            })
        );
        for good in [
            "* * * * *",
            "0 3 * * *",
            "0 0 1-15/2 JAN-MAR SUN,sat",
            " 0  3 * * * ",
        ] {
            assert!(Cron::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn spring_forward() {
        // 2025-03-09 in US Eastern: 02:00 EST becomes 03:00 EDT.
        let tz = eastern();
        let c = cron("30 2 * * *");
        // 02:30 does not exist that day: fire right after the gap.
        let after = ts("2025-03-09T05:00:00Z"); // 00:00 EST
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-03-09T07:00:00Z"))); // 03:00 EDT
        let after = ts("2025-03-09T07:00:00Z");
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-03-10T06:30:00Z"))); // 02:30 EDT
        // Interval schedules skip the missing wall times.
        let c = cron("*/15 * * * *");
        let after = ts("2025-03-09T06:45:00Z"); // 01:45 EST
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-03-09T07:00:00Z"))); // 03:00 EDT
    }

    #[test]
    fn fall_back() {
        // 2025-11-02 in US Eastern: 02:00 EDT becomes 01:00 EST; 01:xx happens twice.
        let tz = eastern();
        let c = cron("30 1 * * *");
        let after = ts("2025-11-02T04:00:00Z"); // 00:00 EDT
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-11-02T05:30:00Z"))); // 01:30 EDT
        // A fixed time fires once, not again on the second pass.
        let after = ts("2025-11-02T05:30:00Z");
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-11-03T06:30:00Z"))); // next day 01:30 EST
        // An interval schedule fires on both passes.
        let c = cron("0,30 * * * *");
        let after = ts("2025-11-02T05:30:00Z"); // 01:30 EDT
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-11-02T06:00:00Z"))); // 01:00 EST
        // And a daily 03:00 stays at 03:00 local: 24 hours of wall time, 25 real.
        let c = cron("0 3 * * *");
        let after = ts("2025-11-01T07:00:00Z"); // 03:00 EDT
        assert_eq!(next_after(&c, after, &tz), Some(ts("2025-11-02T08:00:00Z"))); // 03:00 EST
    }

    #[test]
    fn downtime_fires_once() {
        let c = cron("0 3 * * *");
        let utc = TimeZone::UTC;
        // Four slots missed: one fire, the latest.
        assert_eq!(
            due(
                &c,
                ts("2025-01-01T03:00:00Z"),
                ts("2025-01-05T12:00:00Z"),
                &utc
            ),
            Some(ts("2025-01-05T03:00:00Z"))
        );
        // Nothing since the last fire.
        assert_eq!(
            due(
                &c,
                ts("2025-01-01T03:00:00Z"),
                ts("2025-01-01T23:59:00Z"),
                &utc
            ),
            None
        );
        // Exactly on the slot.
        assert_eq!(
            due(
                &c,
                ts("2025-01-01T02:00:00Z"),
                ts("2025-01-01T03:00:00Z"),
                &utc
            ),
            Some(ts("2025-01-01T03:00:00Z"))
        );
        // The slot that already fired is not due again.
        assert_eq!(
            due(
                &c,
                ts("2025-01-01T03:00:00Z"),
                ts("2025-01-01T03:00:00Z"),
                &utc
            ),
            None
        );
        assert_eq!(
            due(
                &c,
                ts("2025-01-02T00:00:00Z"),
                ts("2025-01-01T00:00:00Z"),
                &utc
            ),
            None
        );
        assert_eq!(
            due(
                &cron("0 0 30 2 *"),
                ts("2025-01-01T00:00:00Z"),
                ts("2026-01-01T00:00:00Z"),
                &utc
            ),
            None
        );
    }

    /// An independent reading of a numeric five-field schedule.
    struct Naive {
        fields: Vec<BTreeSet<u32>>,
        dom_star: bool,
        dow_star: bool,
    }

    impl Naive {
        fn new(src: &str) -> Naive {
            let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
            let parts: Vec<&str> = src.split(' ').collect();
            let fields = parts
                .iter()
                .zip(bounds)
                .map(|(f, (lo, hi))| {
                    let mut set = BTreeSet::new();
                    for item in f.split(',') {
                        let (range, step) = match item.split_once('/') {
                            Some((r, s)) => (r, s.parse::<u32>().expect("step")),
                            None => (item, 1),
                        };
                        let (a, b) = match range {
                            "*" => (lo, hi),
                            r => match r.split_once('-') {
                                Some((a, b)) => (a.parse().expect("lo"), b.parse().expect("hi")),
                                None => {
                                    let v = r.parse().expect("value");
                                    (v, v)
                                }
                            },
                        };
                        set.extend(
                            (a..=b)
                                .step_by(step as usize)
                                .map(|v| if hi == 7 && v == 7 { 0 } else { v }),
                        );
                    }
                    set
                })
                .collect();
            Naive {
                fields,
                dom_star: parts[2] == "*",
                dow_star: parts[4] == "*",
            }
        }

        fn matches(&self, t: Timestamp) -> bool {
            let d = t.to_zoned(TimeZone::UTC);
            let has = |i: usize, v: i64| self.fields[i].contains(&(v as u32));
            let dom = has(2, d.day().into());
            let dow = has(4, d.weekday().to_sunday_zero_offset().into());
            let day = if self.dom_star || self.dow_star {
                dom && dow
            } else {
                dom || dow
            };
            d.second() == 0
                && has(0, d.minute().into())
                && has(1, d.hour().into())
                && has(3, d.month().into())
                && day
        }
    }

    fn field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
        let value = lo..=hi;
        let range = (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b)));
        prop_oneof![
            3 => Just("*".to_owned()),
            2 => value.clone().prop_map(|v| v.to_string()),
            1 => range.clone(),
            1 => (1u32..=12).prop_map(|s| format!("*/{s}")),
            1 => (range, 1u32..=5).prop_map(|(r, s)| format!("{r}/{s}")),
            1 => (value.clone(), value).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    fn schedule() -> impl Strategy<Value = String> {
        (
            field(0, 59),
            field(0, 23),
            field(1, 28),
            field(1, 12),
            field(0, 6),
        )
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn next_after_is_the_first_match_strictly_after(src in schedule(), secs in 946_684_800i64..4_102_444_800, frac in 0i32..1_000_000_000) {
            let c = cron(&src);
            let after = Timestamp::new(secs, frac).expect("timestamp");
            let naive = Naive::new(&src);
            let next = next_after(&c, after, &TimeZone::UTC).expect("every generated schedule fires");
            prop_assert!(next > after, "{src}: {next} is not after {after}");
            prop_assert!(naive.matches(next), "{src}: {next} does not match");
            // No earlier match in between, checked minute by minute when the
            // gap is small enough to walk.
            let mut t = Timestamp::from_second(secs - secs.rem_euclid(60) + 60).expect("ts");
            if next.duration_since(after).as_secs() <= 3 * 86_400 {
                while t < next {
                    prop_assert!(!naive.matches(t), "{src}: {t} matches before {next}");
                    t = t.checked_add(jiff::SignedDuration::from_secs(60)).expect("ts");
                }
            }
            // And `due` agrees: at `next` the due fire is `next` itself.
            prop_assert_eq!(due(&c, after, next, &TimeZone::UTC), Some(next));
        }
    }
}
