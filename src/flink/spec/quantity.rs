//! Parsers for the value formats manifests use: Flink memory sizes, Kubernetes quantities,
//! Flink durations and cron expressions. Each returns what it understood or a sentence
//! saying what is allowed.

use std::time::Duration;

/// What a memory value may look like, for error messages.
pub const MEMORY_ALLOWED: &str =
    "a Flink memory size such as 2048m, 1g, 512 mb, or a Kubernetes quantity such as 2Gi";
/// What a duration may look like, for error messages.
pub const DURATION_ALLOWED: &str = "a Flink duration such as 500 ms, 10 s, 5 min, 1h, 2 d";

fn split_number(s: &str) -> Option<(&str, &str)> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((&s[..end], s[end..].trim()))
}

/// Parses a Flink `MemorySize` (binary units: `k`, `m`, `g`, `t`, with or without `b`,
/// or the long names) and returns bytes.
pub fn parse_flink_memory(s: &str) -> Option<u64> {
    let (num, unit) = split_number(s)?;
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses a Kubernetes resource quantity (`2Gi`, `1500M`, `0.5`, `1e3`) into bytes (or
/// units); fractional results are rounded down.
pub fn parse_k8s_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, suffix) = split_number(s)?;
    if num.matches('.').count() > 1 {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let e: i32 = exp.parse().ok()?;
            10f64.powi(e)
        }
    };
    Some(n * mult)
}

/// A memory value as the operator reads it: Flink `MemorySize` first, then a Kubernetes
/// quantity after the operator's clean-up (`FlinkConfigBuilder.parseResourceMemoryString`):
/// blanks removed, upper-cased, a trailing `B` dropped and a trailing `I` read as `i`, so
/// `2048 MiB` and `1.5GB` are accepted. Returns bytes.
pub fn parse_memory(s: &str) -> Option<u64> {
    parse_flink_memory(s).or_else(|| {
        let mut q: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_uppercase();
        if q.ends_with('B') {
            q.pop();
        }
        if q.ends_with('I') {
            q.pop();
            q.push('i');
        }
        parse_k8s_quantity(&q)
            .filter(|b| *b >= 1.0 && b.is_finite())
            .map(|b| b as u64)
    })
}

/// Parses a Flink duration (`TimeUtils.parseDuration`): a whole number and an optional unit;
/// a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = split_number(s)?;
    if num.contains('.') {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let d = match unit.to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => Duration::from_millis(n),
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => Duration::from_nanos(n),
        "µs" | "us" | "micro" | "micros" | "microsecond" | "microseconds" => {
            Duration::from_micros(n)
        }
        "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(n),
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(n.checked_mul(60)?),
        "h" | "hour" | "hours" => Duration::from_secs(n.checked_mul(3600)?),
        "d" | "day" | "days" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    Some(d)
}

/// Whether a text has the shape of a Quartz cron expression: 6 or 7 fields of cron
/// characters.
pub fn looks_like_cron(s: &str) -> bool {
    let fields: Vec<&str> = s.split_whitespace().collect();
    (6..=7).contains(&fields.len())
        && fields.iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "*?/,-#LW".contains(c))
        })
}

/// Parses a CPU amount: a positive decimal number.
pub fn parse_cpu(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values() {
        assert_eq!(parse_memory("2048m"), Some(2048 << 20));
        assert_eq!(parse_memory("1g"), Some(1 << 30));
        assert_eq!(parse_memory("512 mb"), Some(512 << 20));
        assert_eq!(parse_memory("2Gi"), Some(2 << 30));
        // Flink reads "M" as mebibytes before the Kubernetes reading is tried, as the operator does.
        assert_eq!(parse_memory("1500M"), Some(1500 << 20));
        assert_eq!(parse_memory("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_memory("1024"), Some(1024));
        // The operator's clean-up before the Kubernetes reading: blanks, case, a trailing B.
        assert_eq!(parse_memory("2048 MiB"), Some(2048 << 20));
        assert_eq!(parse_memory("1.5gib"), Some(3 << 29));
        assert_eq!(parse_memory("1.5G"), Some(1_500_000_000));
        for bad in ["", "two gigs", "1.5.2g", "-1g", "g", "10 parsecs", "2 gigs"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("5min"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("500"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2 d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "soon", "1.5s", "10 fortnights", "s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn cron_and_cpu() {
        assert!(looks_like_cron("0 0 * * * ?"));
        assert!(!looks_like_cron("every hour"));
        assert_eq!(parse_cpu("0.5"), Some(0.5));
        assert_eq!(parse_cpu("0"), None);
        assert_eq!(parse_cpu("one"), None);
    }
}
