//! Flink REST client against a scripted HTTP server: error paths a real Flink cannot be made to show.
//!
//! The server ([`Script`]) listens on 127.0.0.1:0 and plays a list of steps in order: for
//! each it accepts one connection, reads one HTTP/1.1 request (line, headers, body), records
//! it, checks method, target and JSON body against the step, and sends the scripted answer
//! with `Connection: close`. Tests then assert on the client's result and on what the server
//! received. The happy path against a real Flink is tested elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_gitops::flink::rest::{
    ClaimMode, FlinkRestClient, JarId, JarRunRequest, JobId, RestError, SavepointFormat,
    SavepointStatus, TriggerId,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const JID: &str = "0123456789abcdef0123456789abcdef";
const TRIGGER: &str = "aba8700834fc933174d47c2382f2e028";

fn job() -> JobId {
    JobId::parse(JID).unwrap()
}

// ---------------------------------------------------------------------------------------
// Scripted server
// ---------------------------------------------------------------------------------------

/// One exchange: what the client must send and what the server answers.
struct Step {
    method: &'static str,
    target: String,
    json: Option<Value>,
    status: u16,
    answer: String,
}

fn step(method: &'static str, target: impl Into<String>) -> Step {
    Step {
        method,
        target: target.into(),
        json: None,
        status: 200,
        answer: "{}".into(),
    }
}

impl Step {
    /// The request body must be exactly this JSON.
    fn json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }

    fn reply(mut self, status: u16, answer: impl Into<String>) -> Self {
        self.status = status;
        self.answer = answer.into();
        self
    }
}

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Log {
    requests: Vec<Request>,
    mismatches: Vec<String>,
}

struct Script {
    url: String,
    steps: usize,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Script {
    async fn start(steps: Vec<Step>) -> Script {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Log::default()));
        let count = steps.len();
        let task_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            for (i, step) in steps.into_iter().enumerate() {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let request = match read_request(&mut socket).await {
                    Ok(r) => r,
                    Err(e) => {
                        task_log
                            .lock()
                            .unwrap()
                            .mismatches
                            .push(format!("step {i}: {e}"));
                        return;
                    }
                };
                let mut problems = Vec::new();
                if request.method != step.method || request.target != step.target {
                    problems.push(format!(
                        "step {i}: expected {} {}, got {} {}",
                        step.method, step.target, request.method, request.target
                    ));
                }
                if let Some(expected) = &step.json {
                    match serde_json::from_slice::<Value>(&request.body) {
                        Ok(got) if &got == expected => {}
                        Ok(got) => problems.push(format!("step {i}: body {got} != {expected}")),
                        Err(e) => problems.push(format!("step {i}: body is not JSON: {e}")),
                    }
                }
                let (status, answer) = if problems.is_empty() {
                    (step.status, step.answer)
                } else {
                    let problems: Vec<&str> = problems.iter().map(String::as_str).collect();
                    (418, flink_errors(&problems))
                };
                {
                    let mut log = task_log.lock().unwrap();
                    log.requests.push(request);
                    log.mismatches.extend(problems);
                }
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        Script {
            url,
            steps: count,
            log,
            task,
        }
    }

    fn client(&self) -> FlinkRestClient {
        FlinkRestClient::new(&self.url)
            .unwrap()
            .with_timeout(Duration::from_secs(5))
    }

    /// The requests so far.
    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().requests.clone()
    }

    /// Asserts that every step ran as scripted; returns the requests.
    fn finish(self) -> Vec<Request> {
        self.task.abort();
        let log = self.log.lock().unwrap();
        assert!(
            log.mismatches.is_empty(),
            "script mismatches: {:#?}",
            log.mismatches
        );
        assert_eq!(
            log.requests.len(),
            self.steps,
            "steps played: {:#?}",
            log.requests
        );
        log.requests.clone()
    }
}

/// Reads one request: request line, headers, and a body by Content-Length or chunked.
async fn read_request(socket: &mut TcpStream) -> Result<Request, String> {
    let mut buf = Vec::new();
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        read_more(socket, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut rest = buf[header_end + 4..].to_vec();
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|e| format!("content-length: {e}"))?;
        while rest.len() < len {
            read_more(socket, &mut rest).await?;
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(&rest, b"\r\n") {
                    break pos;
                }
                read_more(socket, &mut rest).await?;
            };
            let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
            while rest.len() < line_end + 2 + size + 2 {
                read_more(socket, &mut rest).await?;
            }
            body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        Vec::new()
    };
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    match socket.read(&mut chunk).await {
        Ok(0) => Err("connection closed mid-request".to_owned()),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `{"errors":[...]}` as Flink writes it.
fn flink_errors(errors: &[&str]) -> String {
    json!({ "errors": errors }).to_string()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rest_500_with_flink_errors_is_transient_http_status_with_first_line() {
    let script = Script::start(vec![
        step("GET", "/overview").reply(
            500,
            flink_errors(&["org.apache.flink.runtime.rest.handler.RestHandlerException: Could not retrieve the cluster overview.\n\tat org.apache.flink.runtime.rest.handler.cluster.ClusterOverviewHandler.handleRequest(ClusterOverviewHandler.java:80)\nCaused by: java.util.concurrent.TimeoutException: Invocation of [RemoteRpcInvocation(ResourceManagerGateway.requestResourceOverview)] timed out."]),
        ),
        step("GET", "/overview").reply(
            500,
            flink_errors(&["Internal server error.", "<Exception on server side:\njava.util.concurrent.CompletionException: java.lang.IllegalStateException: Dispatcher is shutting down\n\tat org.apache.flink.Foo.bar(Foo.java:1)\n\nEnd of exception on server side>"]),
        ),
    ])
    .await;
    let client = script.client();

    let e = client.cluster_overview().await.unwrap_err();
    match &e {
        RestError::HttpStatus {
            method,
            url,
            status,
            message,
            detail,
        } => {
            assert_eq!(method.as_str(), "GET");
            assert_eq!(url, &format!("{}/overview", script.url));
            assert_eq!(*status, 500);
            assert_eq!(
                message,
                "org.apache.flink.runtime.rest.handler.RestHandlerException: Could not retrieve the cluster overview."
            );
            assert!(
                detail.contains("Caused by: java.util.concurrent.TimeoutException"),
                "{detail}"
            );
        }
        other => panic!("expected HttpStatus, got {other:?}"),
    }
    assert!(e.is_transient());
    assert_eq!(e.metric_label(), "http_status");

    // Flink's generic 500: the message is the server-side exception, not the placeholder.
    let e = client.cluster_overview().await.unwrap_err();
    match &e {
        RestError::HttpStatus { status: 500, message, .. } => assert_eq!(
            message,
            "java.util.concurrent.CompletionException: java.lang.IllegalStateException: Dispatcher is shutting down"
        ),
        other => panic!("expected HttpStatus, got {other:?}"),
    }
    assert!(e.is_transient());

    let requests = script.finish();
    assert_eq!(requests.len(), 2);
    assert!(requests[0]
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("flink-gitops/")));
}

#[tokio::test]
async fn rest_cancel_sends_patch_and_maps_404_to_job_not_found() {
    let target = format!("/jobs/{JID}?mode=cancel");
    let script = Script::start(vec![
        step("PATCH", target.clone()).reply(202, "{}"),
        step("PATCH", target.clone()).reply(
            404,
            flink_errors(&["org.apache.flink.runtime.rest.handler.RestHandlerException: Job could not be found.\n\tat org.apache.flink.runtime.rest.handler.job.JobCancellationHandler.lambda$handleRequest$0(JobCancellationHandler.java:128)"]),
        ),
    ])
    .await;
    let client = script.client();

    client.cancel(&job()).await.unwrap();
    let e = client.cancel(&job()).await.unwrap_err();
    assert!(
        matches!(&e, RestError::JobNotFound { job_id } if job_id == JID),
        "{e:?}"
    );
    assert!(!e.is_transient());
    assert_eq!(e.metric_label(), "job_not_found");

    let requests = script.finish();
    assert_eq!(requests.len(), 2);
    assert!(requests
        .iter()
        .all(|r| r.method == "PATCH" && r.body.is_empty()));
}

#[tokio::test]
async fn rest_duplicate_job_id_is_permanent() {
    let script = Script::start(vec![step("POST", "/jars/abc_job.jar/run").reply(
        400,
        flink_errors(&["org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat org.apache.flink.runtime.webmonitor.handlers.JarRunHandler.lambda$handleRequest$1(JarRunHandler.java:114)\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error: Failed to execute job 'stateful-counter-v1'.\nCaused by: org.apache.flink.util.FlinkException: Failed to execute job 'stateful-counter-v1'.\nCaused by: org.apache.flink.runtime.client.DuplicateApplicationSubmissionException: Application has already been submitted.\n\t... 8 more\n"]),
    )])
    .await;
    let request = JarRunRequest {
        job_id: Some(job()),
        ..JarRunRequest::default()
    };

    let e = script
        .client()
        .run_jar(&JarId::new("abc_job.jar"), &request)
        .await
        .unwrap_err();
    match &e {
        RestError::DuplicateJobId { job_id, detail } => {
            assert_eq!(job_id, JID);
            assert!(detail.contains("DuplicateApplicationSubmissionException"));
        }
        other => panic!("expected DuplicateJobId, got {other:?}"),
    }
    assert!(!e.is_transient());
    assert_eq!(e.metric_label(), "duplicate_job_id");
    assert_eq!(
        e.to_string(),
        format!("job id {JID} has already been submitted to this cluster")
    );
    script.finish();
}

#[tokio::test]
async fn rest_silent_server_times_out_within_the_configured_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and reads, never answers; keeps the sockets open.
    let server = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = read_request(&mut socket).await;
            open.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let client = FlinkRestClient::new(&url).unwrap().with_timeout(timeout);

    let started = Instant::now();
    let e = client.job_status(&job()).await.unwrap_err();
    let elapsed = started.elapsed();
    server.abort();

    match &e {
        RestError::Timeout {
            method,
            url: u,
            after,
        } => {
            assert_eq!(method.as_str(), "GET");
            assert_eq!(u, &format!("{url}/jobs/{JID}/status"));
            assert_eq!(*after, timeout);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(e.is_transient());
    assert_eq!(e.metric_label(), "timeout");
}

#[tokio::test]
async fn rest_refused_connection_is_a_transient_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = FlinkRestClient::new(&url)
        .unwrap()
        .with_timeout(Duration::from_secs(5));

    let started = Instant::now();
    let e = client.config().await.unwrap_err();
    match &e {
        RestError::Connect { url: u, reason, .. } => {
            assert_eq!(u, &format!("{url}/config"));
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.is_transient());
    assert_eq!(e.metric_label(), "connect");
}

#[tokio::test]
async fn rest_savepoint_polls_until_completed_with_location() {
    let status = format!("/jobs/{JID}/savepoints/{TRIGGER}");
    let location = "file:/data/savepoints/savepoint-012345-976d0081aa6c";
    let in_progress = r#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#;
    let script = Script::start(vec![
        step("POST", format!("/jobs/{JID}/savepoints"))
            .json(json!({"cancel-job": false, "target-directory": "file:/data/savepoints", "formatType": "CANONICAL"}))
            .reply(202, format!(r#"{{"request-id":"{TRIGGER}"}}"#)),
        step("GET", status.clone()).reply(200, in_progress),
        step("GET", status.clone()).reply(200, in_progress),
        step("GET", status.clone()).reply(
            200,
            json!({"status": {"id": "COMPLETED"}, "operation": {"location": location}}).to_string(),
        ),
    ])
    .await;
    let client = script.client();

    let trigger = client
        .trigger_savepoint(
            &job(),
            Some("file:/data/savepoints"),
            SavepointFormat::Canonical,
            None,
        )
        .await
        .unwrap();
    assert_eq!(trigger, TriggerId::new(TRIGGER));
    let started = Instant::now();
    let outcome = client
        .await_savepoint(
            &job(),
            &trigger,
            Duration::from_millis(100),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        SavepointStatus::Completed {
            location: location.to_owned()
        }
    );
    // Two pauses of at most the poll interval, the first shorter.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );

    let requests = script.finish();
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests.iter().filter(|r| r.target == status).count(), 3);
}

#[tokio::test]
async fn rest_savepoint_failure_cause_is_failed_with_class() {
    let script = Script::start(vec![
        step("POST", format!("/jobs/{JID}/stop"))
            .json(json!({"drain": false, "targetDirectory": "file:/data/savepoints", "formatType": "NATIVE", "triggerId": "0123456789abcdef0123456789abcdef"}))
            .reply(202, format!(r#"{{"request-id":"{TRIGGER}"}}"#)),
        step("GET", format!("/jobs/{JID}/savepoints/{TRIGGER}")).reply(
            200,
            json!({"status": {"id": "COMPLETED"}, "operation": {"failure-cause": {
                "class": "java.util.concurrent.CompletionException",
                "stack-trace": "java.util.concurrent.CompletionException: org.apache.flink.runtime.checkpoint.CheckpointException: Task has failed.\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.checkpoint.CheckpointException: Task has failed.\n\t... 12 more\n",
                "serialized-throwable": "rO0ABXNy"
            }}})
            .to_string(),
        ),
    ])
    .await;
    let client = script.client();

    let trigger = client
        .stop_with_savepoint(
            &job(),
            Some("file:/data/savepoints"),
            false,
            SavepointFormat::Native,
            Some(&flink_gitops::flink::rest::TriggerId::new(
                "0123456789abcdef0123456789abcdef",
            )),
        )
        .await
        .unwrap();
    let outcome = client
        .await_savepoint(
            &job(),
            &trigger,
            Duration::from_millis(50),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
    match outcome {
        SavepointStatus::Failed { cause } => {
            assert_eq!(cause.class, "java.util.concurrent.CompletionException");
            assert_eq!(
                cause.root_cause.as_deref(),
                Some("org.apache.flink.runtime.checkpoint.CheckpointException: Task has failed.")
            );
            assert!(!cause.is_job_not_found());
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    script.finish();
}

#[tokio::test]
async fn rest_await_savepoint_gives_up_at_the_deadline() {
    let status = format!("/jobs/{JID}/savepoints/{TRIGGER}");
    let in_progress = r#"{"status":{"id":"IN_PROGRESS"}}"#;
    let script = Script::start(
        (0..100)
            .map(|_| step("GET", status.clone()).reply(200, in_progress))
            .collect(),
    )
    .await;

    let started = Instant::now();
    let e = script
        .client()
        .await_savepoint(
            &job(),
            &TriggerId::new(TRIGGER),
            Duration::from_millis(50),
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    match &e {
        RestError::OperationTimeout {
            what,
            trigger,
            waited,
        } => {
            assert_eq!(*what, "savepoint");
            assert_eq!(trigger, TRIGGER);
            assert!(*waited >= Duration::from_millis(300), "{waited:?}");
        }
        other => panic!("expected OperationTimeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    assert!(e.is_transient());
    let polls = script.requests().len();
    assert!((4..=40).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn rest_run_jar_sends_camel_case_body_and_parses_jobid() {
    let savepoint = "file:/data/savepoints/savepoint-012345-976d0081aa6c";
    let script = Script::start(vec![step(
        "POST",
        "/jars/2871a8d8-2b4f_stateful-counter.jar/run",
    )
    .json(json!({
        "entryClass": "lab.StatefulCounterJob",
        "programArgsList": ["--version", "v2", "--out", "/tmp/out with space.log"],
        "parallelism": 2,
        "jobId": JID,
        "savepointPath": savepoint,
        "allowNonRestoredState": true,
        "claimMode": "NO_CLAIM",
        "flinkConfiguration": {"execution.checkpointing.interval": "7 s"}
    }))
    .reply(
        200,
        format!(r#"{{"jobid":"{JID}","applicationId":"{JID}"}}"#),
    )])
    .await;
    let request = JarRunRequest {
        entry_class: Some("lab.StatefulCounterJob".into()),
        program_args_list: ["--version", "v2", "--out", "/tmp/out with space.log"]
            .map(String::from)
            .to_vec(),
        parallelism: Some(2),
        job_id: Some(job()),
        savepoint_path: Some(savepoint.into()),
        allow_non_restored_state: true,
        claim_mode: Some(ClaimMode::NoClaim),
        flink_configuration: [(
            "execution.checkpointing.interval".to_owned(),
            "7 s".to_owned(),
        )]
        .into(),
    };

    let id = script
        .client()
        .run_jar(&JarId::new("2871a8d8-2b4f_stateful-counter.jar"), &request)
        .await
        .unwrap();
    assert_eq!(id, job());

    let requests = script.finish();
    let body = requests[0].json();
    assert_eq!(body["programArgsList"][3], "/tmp/out with space.log");
    assert!(body.get("programArgs").is_none(), "{body}");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn rest_restore_failures_are_permanent_and_specific() {
    let run_failure = |cause: &str| {
        flink_errors(&[&format!("org.apache.flink.runtime.rest.handler.RestHandlerException: Could not execute application.\n\tat org.apache.flink.runtime.webmonitor.handlers.JarRunHandler.lambda$handleRequest$1(JarRunHandler.java:114)\nCaused by: org.apache.flink.client.program.ProgramInvocationException: The main method caused an error: Failed to execute job 'stateful-counter-v2'.\nCaused by: org.apache.flink.runtime.client.JobInitializationException: Could not start the JobMaster.\n{cause}\n\t... 3 more\n")])
    };
    let script = Script::start(vec![
        step("POST", "/jars/j.jar/run").reply(400, run_failure("Caused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/sp/nope' on file system 'file'.")),
        step("POST", "/jars/j.jar/run").reply(400, run_failure("Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/sp/savepoint-1. Cannot map checkpoint/savepoint state for operator ed63c6d066f83fc9a893ba13a9fb615d to the new program, because the operator is not available in the new program.")),
        step("POST", "/jars/j.jar/run").reply(500, flink_errors(&["Internal server error.", "<Exception on server side:\njava.util.concurrent.CompletionException: org.apache.flink.runtime.rest.handler.RestHandlerException: Jar file /data/web-upload/flink-web-upload/j.jar does not exist\n\tat org.apache.flink.runtime.webmonitor.handlers.utils.JarHandlerUtils$JarHandlerContext.toPackagedProgram(JarHandlerUtils.java:197)\n\nEnd of exception on server side>"])),
    ])
    .await;
    let client = script.client();
    let jar = JarId::new("j.jar");
    let request = JarRunRequest {
        job_id: Some(job()),
        savepoint_path: Some("file:/sp/nope".into()),
        ..JarRunRequest::default()
    };

    let e = client.run_jar(&jar, &request).await.unwrap_err();
    assert_eq!(e.metric_label(), "snapshot_not_found", "{e:?}");
    assert_eq!(e.to_string(), "savepoint or checkpoint to restore from not found: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory 'file:/sp/nope' on file system 'file'.");
    assert!(!e.is_transient());

    let e = client.run_jar(&jar, &request).await.unwrap_err();
    assert_eq!(e.metric_label(), "state_not_mappable", "{e:?}");
    assert!(!e.is_transient());

    let e = client.run_jar(&jar, &request).await.unwrap_err();
    assert!(
        matches!(&e, RestError::JarNotFound { jar_id, .. } if jar_id == "j.jar"),
        "{e:?}"
    );
    assert!(!e.is_transient());
    script.finish();
}

#[tokio::test]
async fn rest_upload_jar_sends_a_jarfile_part_and_returns_the_stored_name() {
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("stateful-counter.jar");
    std::fs::write(&jar, b"PK\x03\x04 not really a jar").unwrap();
    let script = Script::start(vec![step("POST", "/jars/upload").reply(
        200,
        r#"{"filename":"/data/web-upload/flink-web-upload/2871a8d8-2b4f-403d-9995-335a9b3f1c2b_stateful-counter.jar","status":"success"}"#,
    )])
    .await;

    let id = script.client().upload_jar(&jar).await.unwrap();
    assert_eq!(
        id,
        JarId::new("2871a8d8-2b4f-403d-9995-335a9b3f1c2b_stateful-counter.jar")
    );

    let requests = script.finish();
    let content_type = requests[0]
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = String::from_utf8_lossy(&requests[0].body);
    assert!(
        body.contains(
            r#"Content-Disposition: form-data; name="jarfile"; filename="stateful-counter.jar""#
        ),
        "{body}"
    );
    assert!(
        body.contains("Content-Type: application/x-java-archive"),
        "{body}"
    );
    assert!(body.contains("PK\u{3}\u{4} not really a jar"), "{body}");
}

#[tokio::test]
async fn rest_unreadable_jar_and_bad_answers_are_permanent() {
    let script = Script::start(vec![
        step("GET", "/overview").reply(200, r#"<html>dashboard</html>"#),
        step("GET", format!("/jobs/{JID}/savepoints/{TRIGGER}"))
            .reply(200, r#"{"status":{"id":"COMPLETED"},"operation":{}}"#),
    ])
    .await;
    let client = script.client();

    let e = client
        .upload_jar(std::path::Path::new("/nonexistent/x.jar"))
        .await
        .unwrap_err();
    assert_eq!(e.metric_label(), "jar_read");
    assert!(!e.is_transient());

    let e = client.cluster_overview().await.unwrap_err();
    match &e {
        RestError::BadResponse { url, body, .. } => {
            assert_eq!(url, &format!("{}/overview", script.url));
            assert_eq!(body, "<html>dashboard</html>");
        }
        other => panic!("expected BadResponse, got {other:?}"),
    }
    assert!(!e.is_transient());

    // COMPLETED with neither location nor failure-cause is not a success.
    let e = client
        .savepoint_status(&job(), &TriggerId::new(TRIGGER))
        .await
        .unwrap_err();
    assert_eq!(e.metric_label(), "bad_response", "{e:?}");
    script.finish();
}

#[tokio::test]
async fn rest_savepoint_disposal_posts_the_path_and_polls_by_trigger_id() {
    let location = "file:/data/savepoints/savepoint-012345-976d0081aa6c";
    let status = format!("/savepoint-disposal/{TRIGGER}");
    let script = Script::start(vec![
        step("POST", "/savepoint-disposal")
            .json(json!({"savepoint-path": location}))
            .reply(202, format!(r#"{{"request-id":"{TRIGGER}"}}"#)),
        step("GET", status.clone()).reply(200, r#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#),
        step("GET", status.clone()).reply(200, r#"{"status":{"id":"COMPLETED"},"operation":{}}"#),
        step("GET", status.clone()).reply(
            200,
            json!({"status": {"id": "COMPLETED"}, "operation": {"failure-cause": {
                "class": "org.apache.flink.util.FlinkException",
                "stack-trace": format!("org.apache.flink.util.FlinkException: Could not dispose savepoint {location}.\nCaused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory '{location}' on file system 'file'.\n")
            }}})
            .to_string(),
        ),
        step("GET", status.clone()).reply(404, r#"{"errors":["Operation not found under key: x"]}"#),
    ])
    .await;
    let client = script.client();
    use flink_gitops::flink::rest::DisposalStatus;
    let trigger = client.dispose_savepoint(location).await.unwrap();
    assert_eq!(trigger, TriggerId::new(TRIGGER));
    assert_eq!(
        client.disposal_status(&trigger).await.unwrap(),
        DisposalStatus::InProgress
    );
    assert_eq!(
        client.disposal_status(&trigger).await.unwrap(),
        DisposalStatus::Completed
    );
    match client.disposal_status(&trigger).await.unwrap() {
        DisposalStatus::Failed { cause } => {
            assert!(
                cause.stack_trace.contains("FileNotFoundException"),
                "{cause:?}"
            )
        }
        other => panic!("a failed disposal: {other:?}"),
    }
    let unknown = client.disposal_status(&trigger).await.unwrap_err();
    assert!(
        matches!(unknown, RestError::HttpStatus { status: 404, .. }),
        "{unknown:?}"
    );
    let requests = script.finish();
    assert_eq!(requests.len(), 5);
}

#[tokio::test]
async fn rest_jobmanager_config_reads_key_value_pairs_and_a_bad_body_is_an_error() {
    let script = Script::start(vec![
        step("GET", "/jobmanager/config").reply(
            200,
            r#"[{"key":"execution.checkpointing.interval","value":"10 s"},{"key":"s3.secret-key","value":"******"},{"key":"rest.port","value":"31000"}]"#,
        ),
        step("GET", "/jobmanager/config").reply(200, r#"{"key":"not a list"}"#),
        step("GET", "/jobmanager/config").reply(503, flink_errors(&["starting"])),
    ])
    .await;
    let client = script.client();
    let cfg = client.jobmanager_config().await.unwrap();
    assert_eq!(cfg.len(), 3);
    assert_eq!(cfg["execution.checkpointing.interval"], "10 s");
    assert_eq!(cfg["s3.secret-key"], "******");
    let bad = client.jobmanager_config().await.unwrap_err();
    assert!(
        !matches!(bad, RestError::JobNotFound { .. }),
        "a bad body is not absence: {bad:?}"
    );
    let down = client.jobmanager_config().await.unwrap_err();
    assert!(down.is_transient(), "{down:?}");
    let requests = script.finish();
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.body.is_empty()));
}
