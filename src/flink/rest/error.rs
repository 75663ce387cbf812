//! [`RestError`] and the reading of Flink's error answers: which `{"errors":[...]}` text
//! means which failure, and which failures are worth retrying.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::{first_line, truncate};

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Everything a Flink REST call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The client could not be built (bad base URL, TLS setup).
    #[error("invalid Flink REST client setup: {reason}")]
    Setup { reason: String },
    /// Nothing accepted the connection: refused, unreachable, DNS failure.
    #[error("cannot connect to Flink REST API at {url}: {reason}")]
    Connect {
        url: String,
        reason: String,
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the call's deadline.
    #[error("{method} {url}: no answer from Flink within {after:?}")]
    Timeout {
        method: Method,
        url: String,
        after: Duration,
    },
    /// The connection broke during the exchange.
    #[error("{method} {url}: {reason}")]
    Transport {
        method: Method,
        url: String,
        reason: String,
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx answer not covered by a more specific variant.
    #[error("{method} {url}: HTTP {status}: {message}")]
    HttpStatus {
        method: Method,
        url: String,
        status: u16,
        /// One line: the first line of Flink's first error (or of the server-side
        /// exception when the first error is only `Internal server error.`).
        message: String,
        /// All of Flink's error strings (stack traces included), or the raw body.
        detail: String,
    },
    /// The job does not exist on this cluster.
    #[error("Flink job {job_id} not found")]
    JobNotFound { job_id: String },
    /// The job id was submitted to this session cluster before (P10).
    #[error("job id {job_id} has already been submitted to this cluster")]
    DuplicateJobId { job_id: String, detail: String },
    /// The savepoint or checkpoint to restore from does not exist.
    #[error("savepoint or checkpoint to restore from not found: {message}")]
    SnapshotNotFound { message: String, detail: String },
    /// The snapshot holds state for operators the new program lacks, and
    /// `allowNonRestoredState` is off (P16).
    #[error("state cannot be mapped to the new program: {message}")]
    StateNotMappable { message: String, detail: String },
    /// The jar id is unknown to the cluster (never uploaded, deleted, or the JobManager
    /// restarted).
    #[error("jar {jar_id} not found on the Flink cluster")]
    JarNotFound { jar_id: String, detail: String },
    /// The job's program could not run on the JobManager: entry class missing, or `main()`
    /// threw before submitting the job (Flink answers 400 or 500).
    #[error("the job's program failed on the JobManager (HTTP {status}): {message}")]
    ProgramFailed {
        status: u16,
        message: String,
        detail: String,
    },
    /// An asynchronous operation was still in progress at the caller's deadline.
    #[error("{what} {trigger} still in progress after {waited:?}")]
    OperationTimeout {
        what: &'static str,
        trigger: String,
        waited: Duration,
    },
    /// A 2xx answer whose body is not what this Flink version should send.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        url: String,
        reason: String,
        body: String,
    },
    /// The jar to upload could not be read.
    #[error("cannot read jar {}: {source}", path.display())]
    JarRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RestError {
    /// Whether retrying later, without a manifest change, may succeed: connection failures,
    /// timeouts, broken connections, operations past their deadline, 5xx, 408 and 429.
    /// Permanent: everything else, including the 500s of an unknown jar id and of a failing
    /// program, which need a change (new job id, other snapshot, fixed jar or program).
    pub fn is_transient(&self) -> bool {
        match self {
            RestError::Connect { .. }
            | RestError::Timeout { .. }
            | RestError::Transport { .. }
            | RestError::OperationTimeout { .. } => true,
            RestError::HttpStatus { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            RestError::Setup { .. }
            | RestError::JobNotFound { .. }
            | RestError::DuplicateJobId { .. }
            | RestError::SnapshotNotFound { .. }
            | RestError::StateNotMappable { .. }
            | RestError::JarNotFound { .. }
            | RestError::ProgramFailed { .. }
            | RestError::BadResponse { .. }
            | RestError::JarRead { .. } => false,
        }
    }

    /// A short stable name of the variant, for metric labels and log fields.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RestError::Setup { .. } => "setup",
            RestError::Connect { .. } => "connect",
            RestError::Timeout { .. } => "timeout",
            RestError::Transport { .. } => "transport",
            RestError::HttpStatus { .. } => "http_status",
            RestError::JobNotFound { .. } => "job_not_found",
            RestError::DuplicateJobId { .. } => "duplicate_job_id",
            RestError::SnapshotNotFound { .. } => "snapshot_not_found",
            RestError::StateNotMappable { .. } => "state_not_mappable",
            RestError::JarNotFound { .. } => "jar_not_found",
            RestError::ProgramFailed { .. } => "program_failed",
            RestError::OperationTimeout { .. } => "operation_timeout",
            RestError::BadResponse { .. } => "bad_response",
            RestError::JarRead { .. } => "jar_read",
        }
    }
}

/// What a call addresses, so an error answer can name the missing job or jar.
#[derive(Clone, Copy, Default)]
pub(super) struct Subject<'a> {
    /// The job the path names (a 404 may mean this job is unknown).
    pub(super) job: Option<&'a str>,
    /// The jar the path names.
    pub(super) jar: Option<&'a str>,
    /// The job id a submission asks for (named by a duplicate-id rejection).
    pub(super) submitted: Option<&'a str>,
}

/// Flink's error strings of a non-2xx answer.
struct ErrorText {
    /// One line for humans.
    message: String,
    /// Everything, for classification and for the logs.
    detail: String,
}

/// Reads `{"errors":[...]}`; a body of another shape is kept as it is.
fn error_text(body: &[u8]) -> ErrorText {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let errors = match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e.errors,
        _ => {
            let raw = String::from_utf8_lossy(body).trim().to_owned();
            return ErrorText {
                message: truncate(first_line(&raw), 300),
                detail: raw,
            };
        }
    };
    let mut message = first_line(&errors[0]).to_owned();
    // 500s arrive as ["Internal server error.", "<Exception on server side:\n<class>: <msg>\n..."];
    // the second string's exception line says what happened.
    if message == "Internal server error." {
        if let Some(server_side) = errors.get(1) {
            let exception = server_side
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("<Exception on server side"));
            if let Some(line) = exception {
                message = line.to_owned();
            }
        }
    }
    ErrorText {
        message: truncate(&message, 300),
        detail: errors.join("\n"),
    }
}

/// The innermost (last) line of `detail` that contains `needle`, without a `Caused by: `
/// prefix. Flink nests the real reason under several wrappers that repeat its text.
fn line_with<'a>(detail: &'a str, needle: &str) -> Option<&'a str> {
    detail
        .lines()
        .map(str::trim)
        .rfind(|l| l.contains(needle))
        .map(|l| l.strip_prefix("Caused by: ").unwrap_or(l))
}

/// Whether Flink's text says that the job itself is unknown. Other 404s exist on job paths:
/// an unknown savepoint trigger, an unknown sub-path (served as a missing static file).
fn says_job_not_found(detail: &str) -> bool {
    detail.contains("FlinkJobNotFoundException")
        || detail.contains("Job could not be found")
        || detail
            .lines()
            .any(|l| l.contains("NotFoundException: Job ") && l.contains(" not found"))
}

/// Maps a non-2xx answer to the most specific error.
pub(super) fn classify(
    method: &Method,
    url: &str,
    status: u16,
    body: &[u8],
    subject: Subject<'_>,
) -> RestError {
    let ErrorText { message, detail } = error_text(body);
    if let Some(job) = subject.job {
        // 404 on most job endpoints, 500 on /jobs/:id/status; a bare 404 (no Flink text)
        // from a job endpoint also means the job.
        if ((status == 404 || status >= 500) && says_job_not_found(&detail))
            || (status == 404 && detail.is_empty())
        {
            return RestError::JobNotFound {
                job_id: job.to_owned(),
            };
        }
    }
    if status == 400
        && (detail.contains("DuplicateApplicationSubmissionException")
            || detail.contains("DuplicateJobSubmissionException")
            || detail.contains("already been submitted"))
    {
        return RestError::DuplicateJobId {
            job_id: subject.submitted.unwrap_or("(chosen by Flink)").to_owned(),
            detail,
        };
    }
    if status == 400 {
        if let Some(line) = line_with(&detail, "Cannot map checkpoint/savepoint state") {
            return RestError::StateNotMappable {
                message: line.to_owned(),
                detail,
            };
        }
        if let Some(line) = line_with(&detail, "FileNotFoundException") {
            return RestError::SnapshotNotFound {
                message: line.to_owned(),
                detail,
            };
        }
    }
    if let Some(jar) = subject.jar {
        // run: 500 "Jar file <path> does not exist"; delete: 400 "File <id> does not exist in <dir>".
        if (status == 400 || status == 404 || status >= 500)
            && detail
                .lines()
                .any(|l| l.contains(jar) && l.contains("does not exist"))
        {
            return RestError::JarNotFound {
                jar_id: jar.to_owned(),
                detail,
            };
        }
    }
    if let Some(line) = line_with(&detail, "ProgramInvocationException") {
        // The job's main() failed or its entry class is missing: 400 or 500, never transient.
        let message = line_with(&detail, "Caused by: ").unwrap_or(line).to_owned();
        return RestError::ProgramFailed {
            status,
            message,
            detail,
        };
    }
    RestError::HttpStatus {
        method: method.clone(),
        url: url.to_owned(),
        status,
        message,
        detail,
    }
}

/// The innermost error message of a chain (`Connection refused (os error 111)`).
pub(super) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

pub(super) fn bad_response(url: &str, reason: impl Into<String>, body: &[u8]) -> RestError {
    RestError::BadResponse {
        url: url.to_owned(),
        reason: reason.into(),
        body: truncate(&String::from_utf8_lossy(body), 1000),
    }
}

#[cfg(test)]
mod tests {
    //! Error answers as Flink 2.3 sends them (captured from a real session cluster, stack
    //! traces shortened).

    use super::*;

    const JID: &str = "0123456789abcdef0123456789abcdef";
    const URL: &str = "http://localhost:8081/x";

    fn errors(list: &[&str]) -> Vec<u8> {
        serde_json::json!({ "errors": list })
            .to_string()
            .into_bytes()
    }

    fn on_job(status: u16, body: &[u8]) -> RestError {
        let subject = Subject {
            job: Some(JID),
            ..Subject::default()
        };
        classify(&Method::GET, URL, status, body, subject)
    }

    fn on_run(status: u16, body: &[u8]) -> RestError {
        let subject = Subject {
            jar: Some("2871a8d8_job.jar"),
            submitted: Some(JID),
            ..Subject::default()
        };
        classify(&Method::POST, URL, status, body, subject)
    }

    /// A `Could not execute application.` 400 of `/jars/:id/run` whose innermost cause is `cause`.
    fn run_failure(cause: &str) -> Vec<u8> {
        errors(&[&format!(
            "org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat org.apache.flink.runtime.webmonitor.handlers.JarRunHandler.lambda$handleRequest$1(JarRunHandler.java:114)\nCaused by: java.util.concurrent.CompletionException: org.apache.flink.util.FlinkRuntimeException: Could not execute application.\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error: Failed to execute job 'stateful-counter-v2'.\nCaused by: org.apache.flink.util.FlinkException: Failed to execute job 'stateful-counter-v2'.\n{cause}\n\t... 12 more\n"
        )])
    }

    #[test]
    fn unknown_job_is_job_not_found_on_404_and_on_the_500_of_status() {
        let status_500 = errors(&["Internal server error.", "<Exception on server side:\norg.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)\n\tat org.apache.flink.runtime.dispatcher.Dispatcher.lambda$requestJobStatus$46(Dispatcher.java:1760)\n\nEnd of exception on server side>"]);
        let cancel_404 = errors(&["org.apache.flink.runtime.rest.handler.RestHandlerException: Job could not be found.\n\tat org.apache.flink.runtime.rest.handler.job.JobCancellationHandler.lambda$handleRequest$0(JobCancellationHandler.java:128)"]);
        let details_404 = errors(&["org.apache.flink.runtime.rest.NotFoundException: Job 0123456789abcdef0123456789abcdef not found\n\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler.lambda$handleRequest$1(AbstractExecutionGraphHandler.java:99)"]);
        for (status, body) in [
            (500, status_500),
            (404, cancel_404),
            (404, details_404),
            (404, Vec::new()),
        ] {
            let e = on_job(status, &body);
            assert!(
                matches!(&e, RestError::JobNotFound { job_id } if job_id == JID),
                "{status}: {e:?}"
            );
            assert!(!e.is_transient());
            assert_eq!(e.metric_label(), "job_not_found");
            assert_eq!(e.to_string(), format!("Flink job {JID} not found"));
        }
    }

    #[test]
    fn other_404s_on_job_paths_are_not_a_missing_job() {
        let unknown_trigger = errors(&["org.apache.flink.runtime.rest.handler.RestHandlerException: There is no savepoint operation with triggerId=aba8700834fc933174d47c2382f2e029 for job 0123456789abcdef0123456789abcdef.\n\tat org.apache.flink.runtime.rest.handler.job.savepoints.SavepointHandlers$SavepointStatusHandler.maybeCreateNotFoundError(SavepointHandlers.java:325)"]);
        match on_job(404, &unknown_trigger) {
            RestError::HttpStatus { status: 404, message, .. } => assert_eq!(message, "org.apache.flink.runtime.rest.handler.RestHandlerException: There is no savepoint operation with triggerId=aba8700834fc933174d47c2382f2e029 for job 0123456789abcdef0123456789abcdef."),
            other => panic!("{other:?}"),
        }
        let unknown_path =
            errors(&["Unable to load requested file /jobs/0123456789abcdef0123456789abcdef/foo."]);
        assert!(matches!(
            on_job(404, &unknown_path),
            RestError::HttpStatus { status: 404, .. }
        ));
    }

    #[test]
    fn internal_server_error_message_is_the_server_side_exception() {
        let body = errors(&["Internal server error.", "<Exception on server side:\njava.lang.IllegalStateException: JobManager is shutting down\n\tat org.apache.flink.Foo.bar(Foo.java:1)\n\nEnd of exception on server side>"]);
        let e = classify(&Method::GET, URL, 500, &body, Subject::default());
        match &e {
            RestError::HttpStatus {
                status,
                message,
                detail,
                ..
            } => {
                assert_eq!(*status, 500);
                assert_eq!(
                    message,
                    "java.lang.IllegalStateException: JobManager is shutting down"
                );
                assert!(detail.starts_with("Internal server error.\n<Exception on server side:"));
                assert!(detail.contains("Foo.java:1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_transient());
        assert_eq!(e.metric_label(), "http_status");
        assert_eq!(
            e.to_string(),
            "GET http://localhost:8081/x: HTTP 500: java.lang.IllegalStateException: JobManager is shutting down"
        );
    }

    #[test]
    fn non_flink_bodies_are_kept_as_text() {
        let e = classify(
            &Method::GET,
            URL,
            503,
            b"<html>\n<h1>503 Service Unavailable</h1>\n</html>",
            Subject::default(),
        );
        match &e {
            RestError::HttpStatus {
                status: 503,
                message,
                detail,
                ..
            } => {
                assert_eq!(message, "<html>");
                assert!(detail.contains("503 Service Unavailable"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_transient());
        assert!(!classify(&Method::GET, URL, 400, b"", Subject::default()).is_transient());
        assert!(classify(&Method::GET, URL, 429, b"", Subject::default()).is_transient());
    }

    #[test]
    fn duplicate_job_id_is_permanent_and_names_the_id() {
        let body = run_failure("Caused by: org.apache.flink.runtime.client.DuplicateApplicationSubmissionException: Application has already been submitted.");
        let e = on_run(400, &body);
        assert!(
            matches!(&e, RestError::DuplicateJobId { job_id, .. } if job_id == JID),
            "{e:?}"
        );
        assert!(!e.is_transient());
        assert_eq!(e.metric_label(), "duplicate_job_id");
    }

    #[test]
    fn missing_snapshot_names_the_path() {
        let body = run_failure("Caused by: java.util.concurrent.CompletionException: java.lang.RuntimeException: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/data/savepoints/nope' on file system 'file'.\nCaused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/data/savepoints/nope' on file system 'file'.");
        match on_run(400, &body) {
            e @ RestError::SnapshotNotFound { .. } => {
                assert!(!e.is_transient());
                assert_eq!(e.metric_label(), "snapshot_not_found");
                assert_eq!(e.to_string(), "savepoint or checkpoint to restore from not found: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/data/savepoints/nope' on file system 'file'.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unmappable_state_is_its_own_permanent_error() {
        let body = run_failure("Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/sp/savepoint-aaaaaa-0be9f7275d42. Cannot map checkpoint/savepoint state for operator ed63c6d066f83fc9a893ba13a9fb615d to the new program, because the operator is not available in the new program.");
        match on_run(400, &body) {
            RestError::StateNotMappable { message, .. } => assert!(message.starts_with("java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/sp/savepoint-aaaaaa-0be9f7275d42. Cannot map")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_jar_is_permanent_although_flink_answers_500() {
        let run = errors(&["Internal server error.", "<Exception on server side:\njava.util.concurrent.CompletionException: org.apache.flink.runtime.rest.handler.RestHandlerException: Jar file /data/web-upload/flink-web-upload/2871a8d8_job.jar does not exist\n\tat org.apache.flink.runtime.webmonitor.handlers.utils.JarHandlerUtils$JarHandlerContext.toPackagedProgram(JarHandlerUtils.java:197)\n\nEnd of exception on server side>"]);
        let e = on_run(500, &run);
        assert!(
            matches!(&e, RestError::JarNotFound { jar_id, .. } if jar_id == "2871a8d8_job.jar"),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let delete = errors(&["org.apache.flink.runtime.rest.handler.RestHandlerException: File 2871a8d8_job.jar does not exist in /data/web-upload/flink-web-upload.\n\tat org.apache.flink.runtime.webmonitor.handlers.JarDeleteHandler.lambda$handleRequest$0(JarDeleteHandler.java:80)"]);
        assert!(matches!(
            on_run(400, &delete),
            RestError::JarNotFound { .. }
        ));
    }

    #[test]
    fn failing_program_is_permanent_although_flink_answers_500() {
        let body = errors(&["Internal server error.", "<Exception on server side:\njava.util.concurrent.CompletionException: org.apache.flink.client.program.ProgramInvocationException: The program's entry point class 'lab.Nope' was not found in the jar file.\n\tat org.apache.flink.runtime.webmonitor.handlers.utils.JarHandlerUtils$JarHandlerContext.toPackagedProgram(JarHandlerUtils.java:204)\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The program's entry point class 'lab.Nope' was not found in the jar file.\nCaused by: java.lang.ClassNotFoundException: lab.Nope\n\nEnd of exception on server side>"]);
        match on_run(500, &body) {
            e @ RestError::ProgramFailed { status: 500, .. } => {
                assert!(!e.is_transient());
                assert_eq!(e.metric_label(), "program_failed");
                assert_eq!(e.to_string(), "the job's program failed on the JobManager (HTTP 500): java.lang.ClassNotFoundException: lab.Nope");
            }
            other => panic!("{other:?}"),
        }
        let main_threw =
            run_failure("Caused by: java.lang.IllegalArgumentException: --rate must be positive");
        match on_run(400, &main_threw) {
            RestError::ProgramFailed { message, .. } => assert_eq!(
                message,
                "java.lang.IllegalArgumentException: --rate must be positive"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metric_labels_are_distinct() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "x");
        let all = [
            RestError::Setup {
                reason: String::new(),
            },
            RestError::Timeout {
                method: Method::GET,
                url: String::new(),
                after: Duration::ZERO,
            },
            on_job(500, b""),
            on_job(404, b""),
            on_run(400, &run_failure("Caused by: x: already been submitted")),
            on_run(
                400,
                &run_failure("Caused by: java.io.FileNotFoundException: y"),
            ),
            on_run(
                400,
                &run_failure("Caused by: Cannot map checkpoint/savepoint state z"),
            ),
            on_run(
                400,
                &errors(&["File 2871a8d8_job.jar does not exist in /d."]),
            ),
            on_run(400, &run_failure("Caused by: java.lang.Error: q")),
            RestError::OperationTimeout {
                what: "savepoint",
                trigger: String::new(),
                waited: Duration::ZERO,
            },
            bad_response(URL, "r", b"{}"),
            RestError::JarRead {
                path: PathBuf::from("/j.jar"),
                source: io(),
            },
        ];
        let labels: std::collections::BTreeSet<&str> =
            all.iter().map(RestError::metric_label).collect();
        assert_eq!(labels.len(), all.len(), "{labels:?}");
        assert!(all[9].is_transient());
        assert!(!all[10].is_transient());
    }
}
