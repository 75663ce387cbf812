//! Judging one webhook request: which provider sent it, whether it is authentic, and
//! whether it is a push to the watched branch. Pure (headers and body in, a [`Verdict`]
//! out), so every refusal is tested without a server.
//!
//! Providers, told apart by their headers:
//!
//! * **GitHub** (`X-GitHub-Event`): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
//!   body>`; `push` events name the branch in `ref`; `ping` is answered.
//! * **GitLab** (`X-Gitlab-Event` or `X-Gitlab-Token`): `X-Gitlab-Token` equal to the
//!   secret; `Push Hook` events name the branch in `ref`.
//! * **Generic** ([`crate::config::WEBHOOK_SIGNATURE_HEADER`], `X-Flink-Gitops-Signature:
//!   sha256=<hex>` as GitHub's): a JSON object, optionally naming the branch as `ref`
//!   (`refs/heads/main`) or `branch` (`main`); one that names none is for the watched one.
//!
//! The order of checks: size (the server, 413), then authenticity (401 without a
//! signature or token, 403 with a wrong one), then the body (400 when it is not the JSON
//! of its event), then the branch (204 for another one). Nothing is parsed before the
//! request is known to be authentic.

use axum::http::HeaderMap;
use serde::Deserialize;

use crate::config;
use crate::signature;

/// Who sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Generic,
}

/// What to do with one webhook request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A push to the watched branch: fetch now (202).
    Accepted { provider: Provider },
    /// GitHub's ping (200).
    Ping,
    /// Authentic, but nothing to fetch for: another branch, a tag, another event (204).
    Ignored { why: String },
    /// No signature or token, or no provider's headers at all (401).
    Unauthorized { why: &'static str },
    /// A signature or token that does not match (403).
    Forbidden,
    /// Not the JSON of its event (400).
    BadRequest { why: String },
}

/// The shared secret and the branch the agent deploys.
#[derive(Clone)]
pub struct WebhookSettings {
    pub secret: Vec<u8>,
    pub branch: String,
    /// Bodies larger than this are refused with 413.
    pub max_body: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("branch", &self.branch)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct PushBody {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Debug, Default, Deserialize)]
struct GenericBody {
    #[serde(rename = "ref", default)]
    reference: Option<String>,
    #[serde(default)]
    branch: Option<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn branch_verdict(provider: Provider, reference: &str, settings: &WebhookSettings) -> Verdict {
    let watched = format!("refs/heads/{}", settings.branch);
    if reference == watched {
        Verdict::Accepted { provider }
    } else {
        Verdict::Ignored {
            why: format!("a push to {reference}, not {watched}"),
        }
    }
}

fn push_ref(body: &[u8]) -> Result<String, Verdict> {
    serde_json::from_slice::<PushBody>(body)
        .map(|p| p.reference)
        .map_err(|e| Verdict::BadRequest {
            why: format!("not the JSON of a push event: {e}"),
        })
}

/// Judges one request (method and size already checked).
pub fn judge(headers: &HeaderMap, body: &[u8], settings: &WebhookSettings) -> Verdict {
    if let Some(event) = header(headers, "x-github-event") {
        let Some(sig) = header(headers, "x-hub-signature-256") else {
            return Verdict::Unauthorized {
                why: "no X-Hub-Signature-256 header",
            };
        };
        if !signature::verify(&settings.secret, body, sig) {
            return Verdict::Forbidden;
        }
        return match event {
            "ping" => Verdict::Ping,
            "push" => match push_ref(body) {
                Ok(r) => branch_verdict(Provider::GitHub, &r, settings),
                Err(v) => v,
            },
            other => Verdict::Ignored {
                why: format!("GitHub event {other:?} is not a push"),
            },
        };
    }
    let gitlab_event = header(headers, "x-gitlab-event");
    let gitlab_token = header(headers, "x-gitlab-token");
    if gitlab_event.is_some() || gitlab_token.is_some() {
        let Some(token) = gitlab_token else {
            return Verdict::Unauthorized {
                why: "no X-Gitlab-Token header",
            };
        };
        if !signature::token_matches(&settings.secret, token.as_bytes()) {
            return Verdict::Forbidden;
        }
        return match gitlab_event {
            Some("Push Hook") => match push_ref(body) {
                Ok(r) => branch_verdict(Provider::GitLab, &r, settings),
                Err(v) => v,
            },
            other => Verdict::Ignored {
                why: format!("GitLab event {:?} is not a push", other.unwrap_or("")),
            },
        };
    }
    if let Some(sig) = header(headers, config::WEBHOOK_SIGNATURE_HEADER) {
        if !signature::verify(&settings.secret, body, sig) {
            return Verdict::Forbidden;
        }
        let parsed: GenericBody = if body.iter().all(u8::is_ascii_whitespace) {
            GenericBody::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(b) => b,
                Err(e) => {
                    return Verdict::BadRequest {
                        why: format!("not a JSON object: {e}"),
                    }
                }
            }
        };
        let reference = parsed
            .reference
            .or_else(|| parsed.branch.map(|b| format!("refs/heads/{b}")))
            .unwrap_or_else(|| format!("refs/heads/{}", settings.branch));
        return branch_verdict(Provider::Generic, &reference, settings);
    }
    Verdict::Unauthorized {
        why: "no X-Hub-Signature-256, X-Gitlab-Token or X-Flink-Gitops-Signature header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WebhookSettings {
        WebhookSettings {
            secret: b"s3cret".to_vec(),
            branch: "main".into(),
            max_body: 1024,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = v.parse() {
                h.insert(*k, v);
            }
        }
        h
    }

    #[test]
    fn github() {
        let s = settings();
        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        let sig = signature::sign(b"s3cret", body);
        let ok = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
        assert_eq!(
            judge(&ok, body, &s),
            Verdict::Accepted {
                provider: Provider::GitHub
            }
        );
        let other = br#"{"ref":"refs/heads/dev"}"#;
        let sig_other = signature::sign(b"s3cret", other);
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sig_other),
        ]);
        assert!(matches!(judge(&h, other, &s), Verdict::Ignored { .. }));
        let tag = br#"{"ref":"refs/tags/main"}"#;
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &signature::sign(b"s3cret", tag)),
        ]);
        assert!(matches!(judge(&h, tag, &s), Verdict::Ignored { .. }));
        let ping = headers(&[
            ("x-github-event", "ping"),
            ("x-hub-signature-256", &signature::sign(b"s3cret", b"{}")),
        ]);
        assert_eq!(judge(&ping, b"{}", &s), Verdict::Ping);
        let missing = headers(&[("x-github-event", "push")]);
        assert!(matches!(
            judge(&missing, body, &s),
            Verdict::Unauthorized { .. }
        ));
        let wrong = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &signature::sign(b"other", body)),
        ]);
        assert_eq!(judge(&wrong, body, &s), Verdict::Forbidden);
        let garbage = b"not json";
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &signature::sign(b"s3cret", garbage)),
        ]);
        assert!(matches!(judge(&h, garbage, &s), Verdict::BadRequest { .. }));
    }

    #[test]
    fn gitlab_and_generic() {
        let s = settings();
        let body = br#"{"object_kind":"push","ref":"refs/heads/main"}"#;
        let ok = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "s3cret"),
        ]);
        assert_eq!(
            judge(&ok, body, &s),
            Verdict::Accepted {
                provider: Provider::GitLab
            }
        );
        let bad = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "s3cre")]);
        assert_eq!(judge(&bad, body, &s), Verdict::Forbidden);
        let none = headers(&[("x-gitlab-event", "Push Hook")]);
        assert!(matches!(
            judge(&none, body, &s),
            Verdict::Unauthorized { .. }
        ));
        let tag = headers(&[
            ("x-gitlab-event", "Tag Push Hook"),
            ("x-gitlab-token", "s3cret"),
        ]);
        assert!(matches!(judge(&tag, body, &s), Verdict::Ignored { .. }));

        let h = |b: &[u8]| headers(&[("x-flink-gitops-signature", &signature::sign(b"s3cret", b))]);
        assert!(matches!(judge(&h(b""), b"", &s), Verdict::Accepted { .. }));
        let branch = br#"{"branch":"main"}"#;
        assert!(matches!(
            judge(&h(branch), branch, &s),
            Verdict::Accepted { .. }
        ));
        let other = br#"{"ref":"refs/heads/x"}"#;
        assert!(matches!(
            judge(&h(other), other, &s),
            Verdict::Ignored { .. }
        ));
        assert!(matches!(
            judge(&h(b"[1"), b"[1", &s),
            Verdict::BadRequest { .. }
        ));
        assert!(matches!(
            judge(&HeaderMap::new(), b"{}", &s),
            Verdict::Unauthorized { .. }
        ));
    }
}
