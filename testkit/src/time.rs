//! Fixture time: fixture files are written relative to a fixed anchor and shifted to "now".

use std::sync::OnceLock;

use serde_json::Value;

/// The instant fixture files are written against.
pub const ANCHOR: &str = "2026-11-22T12:00:00Z";

static DELTA_SECS: OnceLock<i64> = OnceLock::new();

/// Whole seconds between the anchor and the moment this process first loaded fixtures.
///
/// Every RFC 3339 timestamp of every fixture (objects and logs) is moved by this much, so an
/// event written as "5m before the anchor" is 5m old whenever the test runs. The value is fixed
/// for the life of the process, so [`rebased`] gives the same answer as the server.
pub fn rebase_delta_secs() -> i64 {
    *DELTA_SECS.get_or_init(|| {
        let anchor: jiff::Timestamp = ANCHOR.parse().expect("anchor parses");
        jiff::Timestamp::now().as_second() - anchor.as_second()
    })
}

/// The anchor moved to "now" (see [`rebase_delta_secs`]), as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rebased_anchor() -> String {
    rebased(ANCHOR)
}

/// Shifts one fixture timestamp (`2026-11-22T11:55:00Z`, `2026-11-22T11:55:00.000000Z`, ...)
/// by [`rebase_delta_secs`], keeping its precision. Anything that is not such a timestamp is
/// returned unchanged.
pub fn rebased(ts: &str) -> String {
    match timestamp_len(ts.as_bytes(), 0) {
        Some(len) if len == ts.len() => shift(ts),
        _ => ts.to_string(),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp.
pub fn unix_seconds(ts: &str) -> Option<i64> {
    ts.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Formats a duration the way Kubernetes prints ages (`45s`, `5m10s`, `3h`, `2d4h`, ...),
/// like `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
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
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
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
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, h)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{}d", hours / 24 / 365, dy)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of a timestamp as the API server's table printers show it; `<unknown>` when absent.
pub(crate) fn age(ts: Option<&str>) -> String {
    match ts.and_then(unix_seconds) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t),
        None => "<unknown>".into(),
    }
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn format_unix(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Shifts every timestamp string inside a JSON value.
pub(crate) fn rebase_value(v: &mut Value) {
    match v {
        Value::String(s) if timestamp_len(s.as_bytes(), 0) == Some(s.len()) => {
            *s = shift(s);
        }
        Value::Array(items) => items.iter_mut().for_each(rebase_value),
        Value::Object(map) => map.values_mut().for_each(rebase_value),
        _ => {}
    }
}

/// Shifts every timestamp found anywhere in a text (log lines).
pub(crate) fn rebase_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_digit())
            && let Some(len) = timestamp_len(bytes, i)
        {
            out.push_str(&text[last..i]);
            out.push_str(&shift(&text[i..i + len]));
            i += len;
            last = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    out
}

/// Length of a `YYYY-MM-DDTHH:MM:SS[.fraction]Z` timestamp starting at `start`.
fn timestamp_len(b: &[u8], start: usize) -> Option<usize> {
    const PATTERN: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    let rest = b.get(start..)?;
    if rest.len() < PATTERN.len() + 1 {
        return None;
    }
    for (c, p) in rest.iter().zip(PATTERN) {
        let ok = if *p == b'd' {
            c.is_ascii_digit()
        } else {
            c == p
        };
        if !ok {
            return None;
        }
    }
    let mut i = PATTERN.len();
    if rest[i] == b'.' {
        i += 1;
        let digits = rest[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += digits;
    }
    (rest.get(i) == Some(&b'Z')).then_some(i + 1)
}

fn shift(ts: &str) -> String {
    let (head, tail) = ts.split_at(19);
    let Ok(t) = format!("{head}Z").parse::<jiff::Timestamp>() else {
        return ts.to_string();
    };
    let Ok(moved) = jiff::Timestamp::from_second(t.as_second() + rebase_delta_secs()) else {
        return ts.to_string();
    };
    format!("{}{}", moved.strftime("%Y-%m-%dT%H:%M:%S"), tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_precision_and_moves_by_delta() {
        let r = rebased("2026-11-22T11:55:00Z");
        assert!(r.ends_with('Z') && r.len() == 20, "{r}");
        assert_eq!(
            unix_seconds(&r).unwrap() - unix_seconds(&rebased(ANCHOR)).unwrap(),
            -300
        );
        let m = rebased("2026-11-22T11:55:00.000123Z");
        assert!(m.ends_with(".000123Z"), "{m}");
        assert_eq!(rebased("not a time"), "not a time");
    }

    #[test]
    fn text_rebase() {
        let t = rebase_text(r#"{"timestamp":"2026-11-22T11:58:41.412Z"} x 2026-11-22 22:41"#);
        assert!(t.contains(&rebased("2026-11-22T11:58:41.412Z")));
        assert!(t.ends_with("x 2026-11-22 22:41"));
    }

    #[test]
    fn human() {
        assert_eq!(human_duration(61), "61s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(310), "5m10s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(21 * 86400), "21d");
    }
}
