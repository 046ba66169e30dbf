//! Durations as operators type them (`30s`, `1.5h`, `1h30m`) and ages as kubectl prints them (`5m`, `3d4h`).

use std::time::Duration;

use jiff::Timestamp;

/// The longest duration Go's `time.Duration` holds (`1<<63 - 1` nanoseconds); longer input is refused
/// as kubectl refuses it.
pub const MAX_DURATION: Duration = Duration::new(9_223_372_036, 854_775_807);

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Parses a duration the way kubectl does (Go's `time.ParseDuration`): a sequence of decimal numbers,
/// each with an optional fraction and a unit — `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h` — such as
/// `300ms`, `1.5h`, `90m30s` or `1h2m3.5s`, and a bare `0`. Two additions: a whole number alone means
/// seconds (`90`, as kubectl's `--request-timeout` takes it), and `d` is a day (`2d`).
/// Negative durations are refused; so is anything longer than Go's longest duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = |reason: &str| format!("invalid duration {text:?}: {reason}");
    let example = "use a number with a unit, e.g. 30s, 1.5h or 1h30m";
    let too_long = "longer than the longest duration, 2562047h47m16.854775807s";
    if text.starts_with('-') {
        return Err(invalid("a duration cannot be negative"));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(invalid(example));
    }
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        return rest
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| invalid(too_long));
    }
    // Go's algorithm step by step (time/format.go), so that rounding and overflow agree with kubectl.
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let start = rest;
        let (whole_digits, after) = split_digits(rest);
        rest = after;
        let whole = leading_int(whole_digits).ok_or_else(|| invalid(too_long))?;
        let mut fraction = (0, 1.0);
        let mut has_fraction_digits = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (digits, after) = split_digits(after_dot);
            rest = after;
            fraction = leading_fraction(digits);
            has_fraction_digits = !digits.is_empty();
        }
        if whole_digits.is_empty() && !has_fraction_digits {
            return Err(invalid(example));
        }
        let number = &start[..start.len() - rest.len()];
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        rest = after;
        if unit.is_empty() {
            return Err(invalid(&format!(
                "missing unit after {number:?}; use ns, us, ms, s, m, h or d"
            )));
        }
        let Some(unit) = unit_nanos(unit) else {
            return Err(invalid(&format!(
                "unknown unit {unit:?}; use ns, us, ms, s, m, h or d"
            )));
        };
        let nanos = component_nanos(whole, fraction, unit).ok_or_else(|| invalid(too_long))?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| invalid(too_long))?;
    }
    Ok(Duration::new(
        total / NANOS_PER_SECOND,
        (total % NANOS_PER_SECOND) as u32,
    ))
}

/// Go's `1<<63 - 1`: the most nanoseconds a `time.Duration` holds.
const MAX_NANOS: u64 = i64::MAX as u64;

fn split_digits(text: &str) -> (&str, &str) {
    let len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(len)
}

/// Go's `leadingInt` on a run of digits: `None` past `1<<63`.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |x, digit| {
        if x > (1 << 63) / 10 {
            return None;
        }
        Some(x * 10 + u64::from(digit - b'0')).filter(|x| *x <= 1 << 63)
    })
}

/// Go's `leadingFraction` on a run of digits: the digits as an integer and `10^count`, ignoring
/// digits past what fits (they are far below a nanosecond).
fn leading_fraction(digits: &str) -> (u64, f64) {
    let mut x: u64 = 0;
    let mut scale = 1.0;
    for digit in digits.bytes() {
        if x > (1 << 63) / 10 {
            break;
        }
        let y = x * 10 + u64::from(digit - b'0');
        if y > 1 << 63 {
            break;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale)
}

/// One `NUMBER UNIT` in nanoseconds as Go computes it (the fraction in `f64`, truncated); `None` past
/// `1<<63`.
fn component_nanos(whole: u64, (fraction, scale): (u64, f64), unit: u64) -> Option<u64> {
    if whole > (1 << 63) / unit {
        return None;
    }
    let mut nanos = whole * unit;
    if fraction > 0 {
        // Truncating, as Go's uint64(float64) conversion does; at most 8.64e13 for a day.
        nanos += (fraction as f64 * (unit as f64 / scale)) as u64;
        if nanos > 1 << 63 {
            return None;
        }
    }
    Some(nanos)
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        "d" => 86_400 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// The age of `then` at `now`, printed the way kubectl prints ages (`HumanDuration`).
pub fn age(then: Timestamp, now: Timestamp) -> String {
    let seconds = now.as_second() - then.as_second();
    human_duration(seconds)
}

/// kubectl's `duration.HumanDuration`, from whole seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let days = hours / 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = hours / 24;
        let d = days % 365;
        return if d == 0 {
            format!("{}y", days / 365)
        } else {
            format!("{}y{d}d", days / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::*;

    fn ns(nanos: u64) -> Duration {
        Duration::from_nanos(nanos)
    }

    const SECOND: u64 = 1_000_000_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;

    /// Go's own `parseDurationTests` (time/time_test.go), the expected values worked out by hand from
    /// its rules; negative ones are refused here instead.
    #[test]
    fn parses_what_go_parses() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("5s", 5 * SECOND),
            ("30s", 30 * SECOND),
            ("1478s", 1478 * SECOND),
            ("+5s", 5 * SECOND),
            ("5.0s", 5 * SECOND),
            ("5.6s", 5 * SECOND + 600_000_000),
            ("5.s", 5 * SECOND),
            (".5s", 500_000_000),
            ("1.0s", SECOND),
            ("1.00s", SECOND),
            ("1.004s", SECOND + 4_000_000),
            ("1.0040s", SECOND + 4_000_000),
            ("100.00100s", 100 * SECOND + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * SECOND),
            ("15m", 15 * MINUTE),
            ("16h", 16 * HOUR),
            ("3h30m", 3 * HOUR + 30 * MINUTE),
            ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500_000_000),
            (
                "1h2m3s4ms5us6ns",
                HOUR + 2 * MINUTE + 3 * SECOND + 4_000_000 + 5_000 + 6,
            ),
            (
                "39h9m14.425s",
                39 * HOUR + 9 * MINUTE + 14 * SECOND + 425_000_000,
            ),
            ("52763797000ns", 52_763_797_000),
            // Nineteen fraction digits: Go's float64 step rounds this up to exactly 20 minutes.
            ("0.3333333333333333333h", 20 * MINUTE),
            // 1<<53 + 1 does not fit a float64; the whole part is exact integer arithmetic.
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX as u64),
            ("9223372036854775.807us", i64::MAX as u64),
            ("9223372036s854ms775us807ns", i64::MAX as u64),
            ("2562047h47m16.854775807s", i64::MAX as u64),
            // Fraction digits past what a u64 holds are ignored.
            ("0.100000000000000000000h", 6 * MINUTE),
            (
                "0.830103483285477580700h",
                49 * MINUTE + 48 * SECOND + 372_539_827,
            ),
            // The examples this tool's help and README give.
            ("1.5h", 90 * MINUTE),
            ("90m30s", 90 * MINUTE + 30 * SECOND),
            ("300ms", 300_000_000),
            ("1h2m3.5s", HOUR + 2 * MINUTE + 3_500_000_000),
            ("10m", 10 * MINUTE),
            ("1h", HOUR),
            ("1m", MINUTE),
            ("1.5ns", 1),
            ("0.5ns", 0),
            ("0s", 0),
            ("0h0m0s", 0),
            // Additions to Go: a whole number alone is seconds; `d` is a day.
            ("30", 30 * SECOND),
            ("90", 90 * SECOND),
            ("0000", 0),
            ("2d", 2 * 24 * HOUR),
            ("1d12h", 36 * HOUR),
            ("9223372036", 9_223_372_036 * SECOND),
            (" 30s ", 30 * SECOND),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_duration(text), Ok(ns(*nanos)), "{text:?}");
        }
    }

    /// Go's `parseDurationErrorTests` and more, each with the message a user sees after
    /// `error: invalid value '…' for '--since <DURATION>': `.
    #[test]
    fn refuses_what_go_refuses_with_a_reason() {
        let example = "use a number with a unit, e.g. 30s, 1.5h or 1h30m";
        let too_long = "longer than the longest duration, 2562047h47m16.854775807s";
        let units = "use ns, us, ms, s, m, h or d";
        let cases: &[(&str, String)] = &[
            ("", example.into()),
            ("  ", example.into()),
            ("+", example.into()),
            ("-", "a duration cannot be negative".into()),
            ("-5s", "a duration cannot be negative".into()),
            ("-0", "a duration cannot be negative".into()),
            ("-2m3.4s", "a duration cannot be negative".into()),
            ("s", example.into()),
            ("h1", example.into()),
            (".", example.into()),
            (".s", example.into()),
            ("+.s", example.into()),
            ("1h.", example.into()),
            ("1.5", format!("missing unit after \"1.5\"; {units}")),
            (".5", format!("missing unit after \".5\"; {units}")),
            ("1h30", format!("missing unit after \"30\"; {units}")),
            ("10x", format!("unknown unit \"x\"; {units}")),
            ("5 s", format!("unknown unit \" s\"; {units}")),
            ("1sec", format!("unknown unit \"sec\"; {units}")),
            ("1H", format!("unknown unit \"H\"; {units}")),
            ("1w", format!("unknown unit \"w\"; {units}")),
            ("\u{85}\u{85}", example.into()),
            ("\u{fffd}", example.into()),
            ("1e3s", format!("unknown unit \"e\"; {units}")),
            ("9223372036854775810ns", too_long.into()),
            ("9223372036854775808ns", too_long.into()),
            ("9223372036854776us", too_long.into()),
            ("3000000h", too_long.into()),
            ("9223372036854775.808us", too_long.into()),
            ("9223372036854ms775us808ns", too_long.into()),
            ("2562047h47m16.854775808s", too_long.into()),
            ("106752d", too_long.into()),
            ("9223372037", too_long.into()),
            ("99999999999999999999", too_long.into()),
            (
                "99999999999999999999999999999999999999999s",
                too_long.into(),
            ),
        ];
        for (text, reason) in cases {
            let shown = text.trim();
            assert_eq!(
                parse_duration(text),
                Err(format!("invalid duration {shown:?}: {reason}")),
                "{text:?}"
            );
        }
    }

    /// Go's `Duration.String`, written from its rules: `0s`; under a second one unit with a fraction
    /// (`1.5µs`, `300ms`); else `[H h][M m]S[.frac]s` with trailing zeros of the fraction dropped.
    fn go_string(nanos: u64) -> String {
        fn with_fraction(value: u64, digits: u32) -> String {
            let scale = 10u64.pow(digits);
            let fraction = format!("{:0width$}", value % scale, width = digits as usize);
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                format!("{}", value / scale)
            } else {
                format!("{}.{fraction}", value / scale)
            }
        }
        if nanos == 0 {
            return "0s".into();
        }
        if nanos < 1_000 {
            return format!("{nanos}ns");
        }
        if nanos < 1_000_000 {
            return format!("{}\u{b5}s", with_fraction(nanos, 3));
        }
        if nanos < SECOND {
            return format!("{}ms", with_fraction(nanos, 6));
        }
        let seconds = with_fraction(nanos % MINUTE, 9);
        let minutes = nanos / MINUTE % 60;
        let hours = nanos / HOUR;
        if hours > 0 {
            format!("{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            format!("{minutes}m{seconds}s")
        } else {
            format!("{seconds}s")
        }
    }

    #[test]
    fn go_string_matches_go() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * MINUTE + 5 * SECOND, "4m5s"),
            (4 * MINUTE + 5_001_000_000, "4m5.001s"),
            (5 * HOUR + 6 * MINUTE + 7_001_000_000, "5h6m7.001s"),
            (8 * MINUTE + 1, "8m0.000000001s"),
            (HOUR, "1h0m0s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
        ] {
            assert_eq!(go_string(nanos), text);
        }
    }

    const UNITS: [(&str, u64); 9] = [
        ("ns", 1),
        ("us", 1_000),
        ("\u{b5}s", 1_000),
        ("\u{3bc}s", 1_000),
        ("ms", 1_000_000),
        ("s", SECOND),
        ("m", MINUTE),
        ("h", HOUR),
        ("d", 24 * HOUR),
    ];

    /// One `NUMBER UNIT` of a Go duration: whole digits, optional fraction digits (at most 18, so the
    /// fraction is exact in a u64), a unit.
    fn component() -> impl Strategy<Value = (String, Option<String>, usize)> {
        (
            "[0-9]{1,6}",
            proptest::option::of("[0-9]{0,18}"),
            0..UNITS.len(),
        )
    }

    proptest! {
        #[test]
        fn go_strings_round_trip(nanos in 0..=i64::MAX as u64) {
            prop_assert_eq!(parse_duration(&go_string(nanos)), Ok(ns(nanos)));
        }

        #[test]
        fn compositions_parse_to_their_sum(parts in proptest::collection::vec(component(), 1..6)) {
            let mut text = String::new();
            let mut want: u128 = 0;
            for (whole, fraction, unit) in &parts {
                let (name, unit) = UNITS[*unit];
                text.push_str(whole);
                // Go's rule: whole × unit, plus the fraction in float64, truncated.
                want += u128::from(whole.parse::<u64>().unwrap()) * u128::from(unit);
                if let Some(fraction) = fraction {
                    text.push('.');
                    text.push_str(fraction);
                    if !fraction.is_empty() {
                        let digits: u64 = fraction.parse().unwrap();
                        let scale = 10f64.powi(fraction.len() as i32);
                        want += u128::from((digits as f64 * (unit as f64 / scale)) as u64);
                    }
                }
                text.push_str(name);
            }
            match u64::try_from(want).ok().filter(|n| *n <= i64::MAX as u64) {
                Some(want) => prop_assert_eq!(parse_duration(&text), Ok(ns(want)), "{}", text),
                None => prop_assert!(parse_duration(&text).unwrap_err().contains("longer than"), "{}", text),
            }
        }

        #[test]
        fn never_panics_on_any_text(text in any::<String>()) {
            check_outcome(&text)?;
        }

        #[test]
        fn never_panics_on_near_misses(text in "[-+]?[0-9.nsuµμmhdx ]{0,40}") {
            check_outcome(&text)?;
        }
    }

    /// Every outcome is a duration Go can hold, or one line naming the input.
    fn check_outcome(text: &str) -> Result<(), TestCaseError> {
        match parse_duration(text) {
            Ok(d) => prop_assert!(d <= MAX_DURATION),
            Err(message) => {
                prop_assert!(message.starts_with("invalid duration "), "{}", message);
                prop_assert!(!message.contains('\n'));
            }
        }
        Ok(())
    }

    #[test]
    fn ages_match_kubectl_human_duration() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86_400, "8d"),
            (400 * 86_400, "400d"),
            (2 * 365 * 86_400, "2y"),
            (2 * 365 * 86_400 + 86_400, "2y1d"),
            (9 * 365 * 86_400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }
}
