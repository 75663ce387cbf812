//! Releases of the Flink Kubernetes Operator whose validation rules flink-gitops mirrors,
//! and the facts about each release that change a rule.
//!
//! Read from the operator's source at the release tags (apache/flink-kubernetes-operator,
//! `release-1.10.0` to `release-1.15.0`): `DefaultValidator`, `AutoscalerValidator`, the
//! `FlinkVersion` enum the CRD is generated from, and the Flink version each release is
//! built with (which decides the option names its validator reads). [`validate`] asks these
//! questions; it never compares versions itself.
//!
//! [`validate`]: super::validate

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::FlinkVersion;

/// A release (major.minor) of the Flink Kubernetes Operator. Patch releases of one minor
/// release have the same validation rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorVersion {
    V1_10,
    V1_11,
    V1_12,
    V1_13,
    V1_14,
    V1_15,
}

impl OperatorVersion {
    /// Every release whose rules flink-gitops knows, oldest first.
    pub const ALL: [OperatorVersion; 6] = [
        OperatorVersion::V1_10,
        OperatorVersion::V1_11,
        OperatorVersion::V1_12,
        OperatorVersion::V1_13,
        OperatorVersion::V1_14,
        OperatorVersion::V1_15,
    ];

    /// The newest release flink-gitops knows.
    pub const NEWEST: OperatorVersion = OperatorVersion::V1_15;

    pub fn as_str(self) -> &'static str {
        match self {
            OperatorVersion::V1_10 => "1.10",
            OperatorVersion::V1_11 => "1.11",
            OperatorVersion::V1_12 => "1.12",
            OperatorVersion::V1_13 => "1.13",
            OperatorVersion::V1_14 => "1.14",
            OperatorVersion::V1_15 => "1.15",
        }
    }

    /// Reads `1.13`, `1.13.0`, `1.12.1` or `v1.13`.
    pub fn parse(text: &str) -> Result<OperatorVersion, UnknownOperatorVersion> {
        let t = text.trim();
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        let mut parts = t.split('.');
        let minor = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("1"), Some(minor), patch, None)
                if patch.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                minor
            }
            _ => return Err(UnknownOperatorVersion::new(text)),
        };
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().strip_prefix("1.") == Some(minor))
            .ok_or_else(|| UnknownOperatorVersion::new(text))
    }

    /// The newest `spec.flinkVersion` this release knows: the values of its `FlinkVersion`
    /// enum, which its CRD lists (FlinkVersion.java at each release tag).
    pub fn newest_flink_version(self) -> FlinkVersion {
        match self {
            OperatorVersion::V1_10 => FlinkVersion::V1_20,
            OperatorVersion::V1_11 | OperatorVersion::V1_12 => FlinkVersion::V2_0,
            OperatorVersion::V1_13 | OperatorVersion::V1_14 => FlinkVersion::V2_2,
            OperatorVersion::V1_15 => FlinkVersion::V2_4,
        }
    }

    /// Whether this release's `spec.flinkVersion` enum has `version`.
    pub fn knows(self, version: FlinkVersion) -> bool {
        version <= self.newest_flink_version()
    }

    /// Whether the release is built with Flink 1.20 (1.11 and later; 1.10 is built with
    /// 1.19.1), whose `CheckpointingOptions` read the 2.x option names
    /// (`execution.checkpointing.dir`, `execution.checkpointing.savepoint-dir`) besides the
    /// old ones. Its validator looks options up through these classes.
    pub fn reads_flink_2_option_names(self) -> bool {
        self >= OperatorVersion::V1_11
    }

    /// Whether `DefaultValidator.validateSessionJobJarURI` exists (since 1.15): a session
    /// job's jarURI must parse, have a scheme from the operator's allow-list and, for
    /// http(s), a host that is not a loopback, private or other restricted address.
    pub fn checks_session_job_jar_uri(self) -> bool {
        self >= OperatorVersion::V1_15
    }

    /// Whether the autoscaler checks the utilization bounds (`utilization.target` at most
    /// 1, `utilization.max` / `utilization.min` around it): since 1.11 (FLINK-36836).
    pub fn checks_autoscaler_utilization_bounds(self) -> bool {
        self >= OperatorVersion::V1_11
    }

    /// Whether the autoscaler checks `observed-scalability.coefficient-min`: since 1.12
    /// (FLINK-30571).
    pub fn checks_autoscaler_scalability_coefficient(self) -> bool {
        self >= OperatorVersion::V1_12
    }

    /// Whether the autoscaler reads `job.autoscaler.utilization.target` (since 1.11, which
    /// still reads the old `job.autoscaler.target.utilization`); 1.10 reads only the old name.
    pub fn reads_autoscaler_utilization_target(self) -> bool {
        self >= OperatorVersion::V1_11
    }
}

impl fmt::Display for OperatorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperatorVersion {
    type Err = UnknownOperatorVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OperatorVersion::parse(s)
    }
}

impl Serialize for OperatorVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OperatorVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = OperatorVersion;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an operator release in quotes, such as \"1.13\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                OperatorVersion::parse(v).map_err(E::custom)
            }

            // YAML reads 1.10 as the number 1.1: ask for quotes rather than guess.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "found the number {v}; write the release in quotes, such as \"1.10\" (YAML reads 1.10 as the number 1.1)"
                )))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_f64(v as f64)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A text that names no operator release flink-gitops knows the rules of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operator version {found:?} is not one whose rules flink-gitops knows; allowed: {allowed}")]
pub struct UnknownOperatorVersion {
    pub found: String,
    pub allowed: String,
}

impl UnknownOperatorVersion {
    fn new(found: &str) -> Self {
        UnknownOperatorVersion {
            found: found.to_string(),
            allowed: OperatorVersion::ALL
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_read_with_or_without_patch_and_prefix() {
        for (text, want) in [
            ("1.10", Some(OperatorVersion::V1_10)),
            ("1.13", Some(OperatorVersion::V1_13)),
            ("1.12.1", Some(OperatorVersion::V1_12)),
            ("v1.15", Some(OperatorVersion::V1_15)),
            (" 1.15.0 ", Some(OperatorVersion::V1_15)),
            ("1.9", None),
            ("1.1", None),
            ("1.16", None),
            ("2.0", None),
            ("1.13.", None),
            ("1.13.x", None),
            ("1.13.0.0", None),
            ("", None),
        ] {
            assert_eq!(OperatorVersion::parse(text).ok(), want, "{text:?}");
        }
        let e = OperatorVersion::parse("1.9").expect_err("too old");
        assert_eq!(e.allowed, "1.10, 1.11, 1.12, 1.13, 1.14, 1.15");
    }

    #[test]
    fn newest_is_last() {
        assert_eq!(OperatorVersion::ALL.last(), Some(&OperatorVersion::NEWEST));
        assert!(OperatorVersion::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    /// Each row: the FlinkVersion enum at the release tag (flink-kubernetes-operator-api,
    /// spec/FlinkVersion.java).
    #[test]
    fn flink_versions_each_release_knows() {
        for (op, newest) in [
            (OperatorVersion::V1_10, FlinkVersion::V1_20), // release-1.10.0: v1_13 .. v1_20
            (OperatorVersion::V1_11, FlinkVersion::V2_0),  // release-1.11.0: + v2_0 (FLINK-37236)
            (OperatorVersion::V1_12, FlinkVersion::V2_0),  // release-1.12.0
            (OperatorVersion::V1_13, FlinkVersion::V2_2), // release-1.13.0: + v2_1 (FLINK-38147), v2_2
            (OperatorVersion::V1_14, FlinkVersion::V2_2), // release-1.14.0
            (OperatorVersion::V1_15, FlinkVersion::V2_4), // release-1.15.0: + v2_3, v2_4 (FLINK-39177)
        ] {
            assert_eq!(op.newest_flink_version(), newest, "{op}");
            assert!(op.knows(FlinkVersion::V1_13));
        }
        assert!(!OperatorVersion::V1_10.knows(FlinkVersion::V2_0));
    }
}
