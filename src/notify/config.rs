//! The notifications file (`run --notifications FILE`): sinks, their filters, the queue
//! and the retry policy. Secrets are never written in the file: a sink names the
//! environment variable that holds its URL or signing secret.
//!
//! ```yaml
//! sinks:
//!   - name: audit                   # in logs and in the metrics' `sink` label
//!     type: webhook                 # JSON body (notify::Event)
//!     url: https://hooks.example.com/flink
//!     secretEnv: AUDIT_HOOK_SECRET  # optional: X-Flink-Gitops-Signature: sha256=<hex>
//!   - name: team-chat
//!     type: slack                   # {"text": "..."}; Slack, Mattermost, Rocket.Chat...
//!     urlEnv: SLACK_WEBHOOK_URL     # the URL is the secret
//!     events: [failed, rolled-back, savepoint-failed, drift-detected]
//!     resources: ["payments-*", "analytics/*"]
//! queueSize: 1000                   # per sink; the oldest is dropped when full
//! timeout: 10s                      # one request
//! retry: {initialDelay: 1s, maxDelay: 60s, maxAttempts: 15}
//! ```
//!
//! `events` (default: all) takes the kebab-case [`EventKind`] names. `resources` (default:
//! all) takes glob patterns (`*`, `?`, `[...]`): one with a `/` is matched against
//! `namespace/name`, one without against the name.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Event, EventKind};
use crate::config;

/// Why the notifications file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("sink {sink}: {message}")]
    Sink { sink: String, message: String },
    #[error("sink {sink}: environment variable {var} is not set")]
    MissingEnv { sink: String, var: String },
    #[error("{field}: {value:?} is not a duration ({source})")]
    Duration {
        field: &'static str,
        value: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// How a sink wants its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// The [`Event`] as JSON, signed when the sink has a secret.
    Webhook,
    /// A Slack-compatible incoming webhook: `{"text": "..."}`.
    Slack,
}

/// Which events a sink takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// None: every kind.
    pub events: Option<BTreeSet<EventKind>>,
    /// Empty: every resource.
    pub resources: Vec<glob::Pattern>,
}

impl Filter {
    /// Whether `event` passes the filter.
    pub fn accepts(&self, event: &Event) -> bool {
        if let Some(kinds) = &self.events {
            if !kinds.contains(&event.kind) {
                return false;
            }
        }
        if self.resources.is_empty() {
            return true;
        }
        let qualified = format!("{}/{}", event.resource.namespace, event.resource.name);
        self.resources.iter().any(|p| {
            if p.as_str().contains('/') {
                p.matches(&qualified)
            } else {
                p.matches(&event.resource.name)
            }
        })
    }
}

/// One sink, resolved (URL and secret read from the environment).
#[derive(Clone)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    /// HMAC-SHA256 key of the signature header (generic webhooks only).
    pub secret: Option<Vec<u8>>,
    pub filter: Filter,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL of a Slack webhook is a secret: never printed.
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("signed", &self.secret.is_some())
            .field("filter", &self.filter)
            .finish()
    }
}

/// Retry timing of one notification ([`crate::apply::backoff::delay`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Attempts in all, the first included; then it is given up.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: config::DEFAULT_NOTIFY_RETRY_INITIAL,
            max_delay: config::DEFAULT_NOTIFY_RETRY_MAX,
            max_attempts: config::DEFAULT_NOTIFY_MAX_ATTEMPTS,
        }
    }
}

/// Every sink and how delivery runs.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub sinks: Vec<SinkConfig>,
    /// Events waiting per sink.
    pub queue_size: usize,
    /// Deadline of one request.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            sinks: Vec::new(),
            queue_size: config::DEFAULT_NOTIFY_QUEUE,
            timeout: config::DEFAULT_NOTIFY_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileDoc {
    sinks: Vec<SinkDoc>,
    #[serde(default)]
    queue_size: Option<usize>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retry: Option<RetryDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SinkDoc {
    name: String,
    #[serde(rename = "type")]
    kind: SinkKind,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    events: Option<Vec<EventKind>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RetryDoc {
    #[serde(default)]
    initial_delay: Option<String>,
    #[serde(default)]
    max_delay: Option<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

fn duration(
    field: &'static str,
    value: Option<&String>,
    default: Duration,
) -> Result<Duration, NotifyConfigError> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v).map_err(|source| NotifyConfigError::Duration {
            field,
            value: v.clone(),
            source,
        }),
    }
}

impl NotifyConfig {
    /// Reads the file at `path`, with secrets and URLs named by environment variable read
    /// through `env`.
    ///
    /// # Errors
    /// [`NotifyConfigError`]: the file cannot be read or parsed, a sink has no URL or two
    /// sinks share a name, a variable is not set, a pattern or duration is malformed.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NotifyConfig, NotifyConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| NotifyConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, env).map_err(|e| match e {
            NotifyConfigError::Yaml { source, .. } => NotifyConfigError::Yaml {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// [`NotifyConfig::load`] from text.
    ///
    /// # Errors
    /// As [`NotifyConfig::load`].
    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NotifyConfig, NotifyConfigError> {
        let doc: FileDoc =
            serde_yaml::from_str(text).map_err(|source| NotifyConfigError::Yaml {
                path: PathBuf::new(),
                source,
            })?;
        let defaults = NotifyConfig::default();
        let retry = doc.retry.as_ref();
        let retry = RetryPolicy {
            initial_delay: duration(
                "retry.initialDelay",
                retry.and_then(|r| r.initial_delay.as_ref()),
                defaults.retry.initial_delay,
            )?,
            max_delay: duration(
                "retry.maxDelay",
                retry.and_then(|r| r.max_delay.as_ref()),
                defaults.retry.max_delay,
            )?,
            max_attempts: retry
                .and_then(|r| r.max_attempts)
                .unwrap_or(defaults.retry.max_attempts)
                .max(1),
        };
        let mut names = HashSet::new();
        let mut sinks = Vec::new();
        for s in doc.sinks {
            let err = |message: String| NotifyConfigError::Sink {
                sink: s.name.clone(),
                message,
            };
            if !names.insert(s.name.clone()) {
                return Err(err("two sinks have this name".into()));
            }
            let from_env = |var: &String| {
                env(var).ok_or_else(|| NotifyConfigError::MissingEnv {
                    sink: s.name.clone(),
                    var: var.clone(),
                })
            };
            let url = match (&s.url, &s.url_env) {
                (Some(u), None) => u.clone(),
                (None, Some(var)) => from_env(var)?,
                (Some(_), Some(_)) => return Err(err("give url or urlEnv, not both".into())),
                (None, None) => return Err(err("url or urlEnv is required".into())),
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err("the URL must start with http:// or https://".into()));
            }
            let secret = match (&s.secret_env, s.kind) {
                (None, _) => None,
                (Some(var), SinkKind::Webhook) => Some(from_env(var)?.into_bytes()),
                (Some(_), SinkKind::Slack) => {
                    return Err(err(
                        "secretEnv signs generic webhooks; a Slack URL carries its own secret"
                            .into(),
                    ))
                }
            };
            let resources = s
                .resources
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    glob::Pattern::new(p).map_err(|e| err(format!("resource pattern {p:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            sinks.push(SinkConfig {
                name: s.name.clone(),
                kind: s.kind,
                url,
                secret,
                filter: Filter {
                    events: s.events.map(|e| e.into_iter().collect()),
                    resources,
                },
            });
        }
        Ok(NotifyConfig {
            sinks,
            queue_size: doc.queue_size.unwrap_or(defaults.queue_size).max(1),
            timeout: duration("timeout", doc.timeout.as_ref(), defaults.timeout)?,
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::lifecycle::record::LifecycleState;
    use crate::flink::spec::{Kind, ResourceKey};

    fn event(kind: EventKind, ns: &str, name: &str) -> Event {
        Event {
            kind,
            resource: ResourceKey::new(ns, Kind::FlinkDeployment, name),
            revision: None,
            lifecycle_state: LifecycleState::Stable,
            reason: None,
            message: String::new(),
            time: String::new(),
        }
    }

    #[test]
    fn reads_sinks_filters_and_secrets_from_the_environment() {
        let text = "sinks:\n  - name: audit\n    type: webhook\n    url: http://127.0.0.1:1/hook\n    secretEnv: AUDIT\n  - name: chat\n    type: slack\n    urlEnv: SLACK\n    events: [failed, drift-detected]\n    resources: [\"payments-*\", \"analytics/*\"]\nqueueSize: 5\nretry: {initialDelay: 10ms, maxDelay: 1s, maxAttempts: 3}\n";
        let env = |k: &str| match k {
            "AUDIT" => Some("s3cret".to_string()),
            "SLACK" => Some("https://hooks.slack.example/T/B/x".to_string()),
            _ => None,
        };
        let c = NotifyConfig::parse(text, env).expect("valid");
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.sinks[0].secret.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(c.queue_size, 5);
        assert_eq!(c.retry.initial_delay, Duration::from_millis(10));
        assert_eq!(c.retry.max_attempts, 3);
        let chat = &c.sinks[1].filter;
        assert!(chat.accepts(&event(EventKind::Failed, "default", "payments-etl")));
        assert!(chat.accepts(&event(EventKind::Failed, "analytics", "x")));
        assert!(!chat.accepts(&event(EventKind::Deployed, "default", "payments-etl")));
        assert!(!chat.accepts(&event(EventKind::Failed, "default", "orders")));
        assert!(c.sinks[0]
            .filter
            .accepts(&event(EventKind::Deployed, "default", "orders")));
        // The Slack URL is a secret: not in Debug output.
        assert!(!format!("{c:?}").contains("hooks.slack.example"));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let none = |_: &str| None;
        let missing = "sinks:\n  - name: a\n    type: slack\n    urlEnv: NOPE\n";
        assert!(matches!(
            NotifyConfig::parse(missing, none),
            Err(NotifyConfigError::MissingEnv { .. })
        ));
        let unknown =
            "sinks:\n  - name: a\n    type: webhook\n    url: http://x\n    secret: inline\n";
        assert!(matches!(
            NotifyConfig::parse(unknown, none),
            Err(NotifyConfigError::Yaml { .. })
        ));
        let event =
            "sinks:\n  - name: a\n    type: webhook\n    url: http://x\n    events: [deploy]\n";
        assert!(NotifyConfig::parse(event, none).is_err());
        let dup = "sinks:\n  - {name: a, type: webhook, url: http://x}\n  - {name: a, type: webhook, url: http://y}\n";
        assert!(matches!(
            NotifyConfig::parse(dup, none),
            Err(NotifyConfigError::Sink { .. })
        ));
    }
}
