//! Points in time on the command line (`--since`, `--until`): an RFC 3339
//! time, a local date and time as `ausearch` and `journalctl` take them,
//! or a time relative to now (`10m ago`).
//!
//! Parsing takes "now" and the local time zone as arguments, so that every
//! form is unit-tested without depending on the machine's clock or zone.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// The forms accepted, for error messages and `--help`.
pub const FORMS: &str = "an RFC 3339 time (2026-12-01T19:26:58Z, 2026-12-01T20:26:58+01:00), \
     a local 'YYYY-MM-DD[ HH:MM[:SS]]' or 'HH:MM[:SS]' (today), 'now', 'today', 'yesterday', \
     or 'N UNIT ago' (30s ago, 10m ago, 2 hours ago, 1d ago)";

/// Parses a point in time relative to the machine's clock and time zone;
/// the error says which forms are accepted. Used as a clap value parser.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time_at(s, Utc::now(), &chrono::Local)
}

/// [`parse_time`] with an explicit "now" and local time zone.
pub fn parse_time_at<Tz: TimeZone>(
    s: &str,
    now: DateTime<Utc>,
    local: &Tz,
) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    let bad = || format!("invalid time '{s}': write {FORMS}");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(time.to_utc());
    }
    let lower = t.to_ascii_lowercase();
    let today = now.with_timezone(local).date_naive();
    match lower.as_str() {
        "now" => return Ok(now),
        "today" => return local_midnight(today, local).ok_or_else(bad),
        "yesterday" => {
            let day = today.pred_opt().ok_or_else(bad)?;
            return local_midnight(day, local).ok_or_else(bad);
        }
        _ => {}
    }
    if let Some(ago) = lower.strip_suffix("ago") {
        return relative(ago.trim(), now).ok_or_else(bad);
    }
    local_datetime(t, today)
        .and_then(|naive| from_local(naive, local))
        .ok_or_else(bad)
}

/// `N UNIT` before `ago`: `10m`, `10 min`, `2 hours`, `1.5h`.
fn relative(amount: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let split = amount
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(amount.len());
    let (number, unit) = amount.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => return None,
    };
    let millis = value * seconds_per_unit * 1000.0;
    // Ten years back is as far as an audit log could reach.
    if !millis.is_finite() || !(0.0..=3.2e11).contains(&millis) {
        return None;
    }
    now.checked_sub_signed(Duration::milliseconds(millis as i64))
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS[.fff]]` (a `T` works too), or a
/// time of day alone, which means today.
fn local_datetime(t: &str, today: NaiveDate) -> Option<NaiveDateTime> {
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Some(naive);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0);
    }
    for format in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(time) = NaiveTime::parse_from_str(t, format) {
            return Some(today.and_time(time));
        }
    }
    None
}

fn local_midnight<Tz: TimeZone>(day: NaiveDate, local: &Tz) -> Option<DateTime<Utc>> {
    from_local(day.and_hms_opt(0, 0, 0)?, local)
}

/// In the hour a DST change repeats, the earlier reading wins, as for
/// `ausearch -i` times.
fn from_local<Tz: TimeZone>(naive: NaiveDateTime, local: &Tz) -> Option<DateTime<Utc>> {
    local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn now() -> DateTime<Utc> {
        "2026-12-01T19:30:00Z".parse().expect("a time")
    }

    fn at(s: &str) -> Result<DateTime<Utc>, String> {
        // UTC+1, like Paris in winter.
        let tz = FixedOffset::east_opt(3600).expect("an offset");
        parse_time_at(s, now(), &tz)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    #[test]
    fn rfc3339() {
        assert_eq!(at("2026-12-01T19:26:58Z"), Ok(utc("2026-12-01T19:26:58Z")));
        assert_eq!(
            at("2026-12-01T20:26:58.25+01:00"),
            Ok(utc("2026-12-01T19:26:58.25Z"))
        );
    }

    #[test]
    fn local_times() {
        assert_eq!(at("2026-12-01 20:26:58"), Ok(utc("2026-12-01T19:26:58Z")));
        assert_eq!(at("2026-12-01T20:26"), Ok(utc("2026-12-01T19:26:00Z")));
        assert_eq!(at("2026-12-01"), Ok(utc("2026-11-30T23:00:00Z")));
        // 19:30 UTC is 20:30 local: "today" is 1 December there.
        assert_eq!(at("08:15"), Ok(utc("2026-12-01T07:15:00Z")));
        assert_eq!(at("08:15:30.5"), Ok(utc("2026-12-01T07:15:30.5Z")));
        assert_eq!(at("today"), Ok(utc("2026-11-30T23:00:00Z")));
        assert_eq!(at("Yesterday"), Ok(utc("2026-11-29T23:00:00Z")));
        assert_eq!(at(" now "), Ok(now()));
    }

    #[test]
    fn relative_times() {
        assert_eq!(at("10m ago"), Ok(utc("2026-12-01T19:20:00Z")));
        assert_eq!(at("10 min ago"), Ok(utc("2026-12-01T19:20:00Z")));
        assert_eq!(at("30s ago"), Ok(utc("2026-12-01T19:29:30Z")));
        assert_eq!(at("2 hours ago"), Ok(utc("2026-12-01T17:30:00Z")));
        assert_eq!(at("1.5h ago"), Ok(utc("2026-12-01T18:00:00Z")));
        assert_eq!(at("1d ago"), Ok(utc("2026-11-30T19:30:00Z")));
        assert_eq!(at("1 week ago"), Ok(utc("2026-11-24T19:30:00Z")));
        assert_eq!(at("500ms ago"), Ok(utc("2026-12-01T19:29:59.5Z")));
        assert_eq!(at("0s ago"), Ok(now()));
    }

    #[test]
    fn rejected() {
        for s in [
            "",
            "ago",
            "10 parsecs ago",
            "-5m ago",
            "1e99 days ago",
            "10m",
            "2026-13-01",
            "25:00",
            "yesterday-ish",
            "1795249183",
        ] {
            let e = at(s).expect_err(s);
            assert!(e.contains("RFC 3339") && e.contains("ago"), "{s}: {e}");
        }
    }
}
