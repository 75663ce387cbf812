//! [`FakeFlink`] over real HTTP, so that the real `FlinkRestClient` (through
//! `flink_gitops::flink::rest::HttpFlink`) runs against the fake.
//!
//! One small HTTP/1.1 server on 127.0.0.1 (a random port) serves every cluster, each under
//! its own prefix: `http://127.0.0.1:PORT/<namespace>/<name>/jobs/overview`. Starting it
//! points the fake's [`flink_gitops::apply::runtime::Runtime::rest_url`] at it. Every
//! request goes through the same model, faults, latency, call log and step gate as the
//! in-memory [`super::fake_flink::FakeApi`], and answers the JSON shapes and error texts of
//! Flink 2.3, so the client's parsers and error classification run for real.
//!
//! A call that gets no answer (a missing or killed cluster, [`super::fake_flink::Fault::Timeout`],
//! a JobManager that stopped answering) holds the connection open until the client gives
//! up: give `HttpFlink` a short `timeout` in tests. One request per connection
//! (`Connection: close`). The server and its connections stop when [`FakeHttp`] is dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use flink_gitops::flink::rest::{JobId, JobStatus};
use flink_gitops::flink::spec::ResourceKey;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::fake_flink::{
    normalize_location, requirements_detail, Call, ClusterKey, Failure, FakeFlink, RunBody,
    FAKE_FLINK_VERSION,
};

/// Longest time a held (unanswered) connection stays open.
const HOLD_LIMIT: Duration = Duration::from_secs(120);

/// The HTTP server of a [`FakeFlink`]; stops when dropped.
pub struct FakeHttp {
    base: String,
    task: JoinHandle<()>,
}

impl FakeHttp {
    /// Binds 127.0.0.1 on a free port, serves `fake`, and makes `fake.rest_url` give URLs
    /// on this server.
    pub async fn start(fake: &FakeFlink) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Flink HTTP server");
        let addr = listener
            .local_addr()
            .expect("fake Flink HTTP server address");
        let base = format!("http://{addr}");
        fake.set_http_base(Some(base.clone()));
        let fake = fake.clone();
        let task = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => {
                            connections.spawn(serve(fake.clone(), socket));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        FakeHttp { base, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The REST base URL of one cluster.
    pub fn url(&self, cluster: &ResourceKey) -> String {
        format!("{}/{}/{}", self.base, cluster.namespace, cluster.name)
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------------------

struct Request {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Vec<u8>,
}

enum Reply {
    Answer(u16, Value),
    /// Keep the connection open without answering.
    Silence,
}

async fn serve(fake: FakeFlink, mut socket: TcpStream) {
    let Ok(request) = read_request(&mut socket).await else {
        return;
    };
    match route(&fake, &request).await {
        Reply::Answer(status, body) => {
            let text = body.to_string();
            let reason = match status {
                200 => "OK",
                202 => "Accepted",
                400 => "Bad Request",
                404 => "Not Found",
                _ => "Error",
            };
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(text.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        Reply::Silence => {
            // Until the client gives up and closes (or the limit).
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(HOLD_LIMIT, async {
                loop {
                    match socket.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
    }
}

fn errors(failure: &Failure) -> Reply {
    match failure {
        Failure::NoAnswer => Reply::Silence,
        other => {
            let (status, errors) = other.http();
            Reply::Answer(status, json!({ "errors": errors }))
        }
    }
}

fn answer<T>(status: u16, result: Result<T, Failure>, render: impl FnOnce(T) -> Value) -> Reply {
    match result {
        Ok(v) => Reply::Answer(status, render(v)),
        Err(f) => errors(&f),
    }
}

fn not_found(path: &str) -> Reply {
    Reply::Answer(404, json!({ "errors": [format!("Not found: {path}")] }))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(fake: &FakeFlink, req: &Request) -> Reply {
    let segments: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let [ns, name, rest @ ..] = segments.as_slice() else {
        return not_found(&req.path);
    };
    let cluster: ClusterKey = (ns.clone(), name.clone());
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let m = req.method.as_str();

    // Job paths: a job id that is not one is a 400, as Flink's path parameter parsing.
    let job_of = |s: &str| -> Result<JobId, Reply> {
        JobId::parse(s).map_err(|e| {
            Reply::Answer(
                400,
                json!({ "errors": [format!("Bad request, could not parse parameters: {e}")] }),
            )
        })
    };

    macro_rules! job {
        ($s:expr) => {
            match job_of($s) {
                Ok(j) => j,
                Err(reply) => return reply,
            }
        };
    }

    match (m, rest.as_slice()) {
        ("GET", ["overview"]) => {
            let r = fake
                .exec(&cluster, Call::ClusterOverview, None, String::new(), |st| {
                    Ok(st.http_overview(&cluster))
                })
                .await;
            answer(200, r, |v| v)
        }
        ("GET", ["config"]) => {
            let r = fake
                .exec(&cluster, Call::OtherRest, None, String::new(), |_| Ok(()))
                .await;
            answer(200, r, |_| {
                json!({"refresh-interval": 3000, "timezone-name": "Coordinated Universal Time",
                       "timezone-offset": 0, "flink-version": FAKE_FLINK_VERSION,
                       "flink-revision": "fake @ fake", "features": {"web-submit": true}})
            })
        }
        ("GET", ["jobmanager", "config"]) => {
            let r = fake
                .exec(
                    &cluster,
                    Call::JobManagerConfig,
                    None,
                    String::new(),
                    |st| st.http_jobmanager_config(&cluster),
                )
                .await;
            answer(200, r, |v| v)
        }
        ("GET", ["jobs", "overview"]) => {
            let r = fake
                .exec(&cluster, Call::JobsOverview, None, String::new(), |st| {
                    Ok(st.http_jobs_overview(&cluster))
                })
                .await;
            answer(200, r, |v| v)
        }
        ("GET", ["jobs", id]) => {
            let job = job!(id);
            let r = fake
                .exec(
                    &cluster,
                    Call::JobDetails,
                    Some(&job),
                    String::new(),
                    |st| st.http_job_details(&cluster, &job),
                )
                .await;
            answer(200, r, |v| v)
        }
        ("PATCH", ["jobs", id]) => {
            let job = job!(id);
            if !req.query.split('&').any(|p| p == "mode=cancel") {
                return Reply::Answer(400, json!({"errors": ["Bad request: mode must be cancel"]}));
            }
            let r = fake
                .exec(&cluster, Call::Cancel, Some(&job), String::new(), |st| {
                    st.http_cancel(&cluster, &job)
                })
                .await;
            answer(202, r, |()| json!({}))
        }
        ("GET", ["jobs", id, "status"]) => {
            let job = job!(id);
            let r = fake
                .exec(&cluster, Call::OtherRest, Some(&job), String::new(), |st| {
                    st.http_job_status(&cluster, &job)
                })
                .await;
            answer(200, r, |s: JobStatus| json!({ "status": s }))
        }
        ("GET", ["jobs", id, "exceptions"]) => {
            let job = job!(id);
            let r = fake
                .exec(
                    &cluster,
                    Call::JobExceptions,
                    Some(&job),
                    String::new(),
                    |st| st.http_exceptions(&cluster, &job),
                )
                .await;
            answer(200, r, |v| v.to_json())
        }
        ("POST", ["jobs", id, "stop"]) => {
            let job = job!(id);
            let drain = body.get("drain").and_then(Value::as_bool).unwrap_or(false);
            let dir = text("targetDirectory");
            let trigger = text("triggerId");
            let detail = format!(
                "trigger={} drain={drain} format={} target={}",
                trigger.as_deref().unwrap_or("-"),
                text("formatType").as_deref().unwrap_or("-"),
                dir.as_deref().unwrap_or("-")
            );
            let r = fake
                .exec(&cluster, Call::Stop, Some(&job), detail, |st| {
                    st.http_stop(&cluster, &job, dir, drain, trigger.as_deref())
                })
                .await;
            answer(202, r, |t| json!({ "request-id": t }))
        }
        ("POST", ["jobs", id, "savepoints"]) => {
            let job = job!(id);
            let cancel = body
                .get("cancel-job")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let dir = text("target-directory");
            let trigger = text("triggerId");
            let detail = format!(
                "trigger={} format={} target={}",
                trigger.as_deref().unwrap_or("-"),
                text("formatType").as_deref().unwrap_or("-"),
                dir.as_deref().unwrap_or("-")
            );
            let r = fake
                .exec(&cluster, Call::TriggerSavepoint, Some(&job), detail, |st| {
                    st.http_savepoint(&cluster, &job, dir, cancel, trigger.as_deref())
                })
                .await;
            answer(202, r, |t| json!({ "request-id": t }))
        }
        ("GET", ["jobs", id, "savepoints", trigger]) => {
            let job = job!(id);
            let r = fake
                .exec(
                    &cluster,
                    Call::SavepointStatus,
                    Some(&job),
                    String::new(),
                    |st| st.http_op_status(&cluster, &job, trigger, false),
                )
                .await;
            answer(200, r, |v| v.to_json())
        }
        ("POST", ["jobs", id, "checkpoints"]) => {
            let job = job!(id);
            let trigger = text("triggerId");
            let detail = format!(
                "trigger={} type={}",
                trigger.as_deref().unwrap_or("-"),
                text("checkpointType").as_deref().unwrap_or("-")
            );
            let r = fake
                .exec(
                    &cluster,
                    Call::TriggerCheckpoint,
                    Some(&job),
                    detail,
                    |st| st.http_checkpoint(&cluster, &job, trigger.as_deref()),
                )
                .await;
            answer(202, r, |t| json!({ "request-id": t }))
        }
        ("GET", ["jobs", id, "checkpoints"]) => {
            let job = job!(id);
            let r = fake
                .exec(
                    &cluster,
                    Call::Checkpoints,
                    Some(&job),
                    String::new(),
                    |st| st.http_checkpoints(&cluster, &job),
                )
                .await;
            answer(200, r, |v| v.to_json())
        }
        ("GET", ["jobs", id, "checkpoints", trigger]) => {
            let job = job!(id);
            let r = fake
                .exec(
                    &cluster,
                    Call::CheckpointStatus,
                    Some(&job),
                    String::new(),
                    |st| st.http_op_status(&cluster, &job, trigger, true),
                )
                .await;
            answer(200, r, |v| v.to_json())
        }
        ("GET", ["jobs", id, "resource-requirements"]) => {
            let job = job!(id);
            let r = fake
                .exec(
                    &cluster,
                    Call::ResourceRequirements,
                    Some(&job),
                    String::new(),
                    |st| st.http_resource_requirements(&cluster, &job),
                )
                .await;
            answer(200, r, |req| requirements_json(&req))
        }
        ("PUT", ["jobs", id, "resource-requirements"]) => {
            let job = job!(id);
            // `{"<vertex>": {"parallelism": {"lowerBound": l, "upperBound": u}}, ...}`; a
            // body of another shape is a 400, as Flink's JSON mapping would answer.
            let wanted: Option<BTreeMap<String, (u32, u32)>> = body.as_object().and_then(|m| {
                m.iter()
                    .map(|(vertex, v)| {
                        let bound = |k: &str| {
                            v.get("parallelism")?
                                .get(k)?
                                .as_u64()
                                .and_then(|n| u32::try_from(n).ok())
                        };
                        Some((vertex.clone(), (bound("lowerBound")?, bound("upperBound")?)))
                    })
                    .collect()
            });
            let Some(wanted) = wanted else {
                return Reply::Answer(
                    400,
                    json!({"errors": ["Bad request, could not parse the request body as JobResourceRequirementsBody."]}),
                );
            };
            let detail = requirements_detail(&wanted);
            let r = fake
                .exec(&cluster, Call::SetParallelism, Some(&job), detail, |st| {
                    st.http_set_resource_requirements(&cluster, &job, &wanted)
                })
                .await;
            answer(200, r, |()| json!({}))
        }
        ("POST", ["jars", "upload"]) => {
            let Some((file_name, content)) = multipart_file(&req.content_type, &req.body) else {
                return Reply::Answer(
                    400,
                    json!({"errors": ["Exactly 1 file must be sent, received 0."]}),
                );
            };
            let detail = format!("file={file_name}");
            let r = fake
                .exec(&cluster, Call::UploadJar, None, detail, |st| {
                    st.http_upload(&cluster, &file_name, content)
                })
                .await;
            answer(
                200,
                r,
                |id| json!({ "filename": format!("/fake/web-upload/{id}"), "status": "success" }),
            )
        }
        ("POST", ["jars", jar, "run"]) => {
            let run = RunBody::from_json(&body);
            let job = run.job_id.as_deref().and_then(|j| JobId::parse(j).ok());
            let detail = format!(
                "jar={jar} job={} restore={} parallelism={}",
                run.job_id.as_deref().unwrap_or("-"),
                run.savepoint_path
                    .as_deref()
                    .map(normalize_location)
                    .as_deref()
                    .unwrap_or("-"),
                run.parallelism.map_or("-".into(), |p| p.to_string())
            );
            let r = fake
                .exec(&cluster, Call::RunJar, job.as_ref(), detail, |st| {
                    st.http_run(&cluster, jar, run)
                })
                .await;
            answer(200, r, |id| json!({ "jobid": id, "applicationId": id }))
        }
        _ => not_found(&req.path),
    }
}

/// The body of `GET /jobs/:id/resource-requirements`.
fn requirements_json(req: &BTreeMap<String, (u32, u32)>) -> Value {
    Value::Object(
        req.iter()
            .map(|(v, (l, u))| {
                (
                    v.clone(),
                    json!({ "parallelism": { "lowerBound": l, "upperBound": u } }),
                )
            })
            .collect(),
    )
}

/// The file part of a `multipart/form-data` body: its file name and content.
fn multipart_file(content_type: &str, body: &[u8]) -> Option<(String, String)> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()?
        .trim_matches('"');
    let text = String::from_utf8_lossy(body);
    let start = text.find("filename=\"")? + "filename=\"".len();
    let name_end = start + text[start..].find('"')?;
    let file_name = text[start..name_end].to_string();
    let content_start = name_end + text[name_end..].find("\r\n\r\n")? + 4;
    let content_end = content_start + text[content_start..].find(&format!("\r\n--{boundary}"))?;
    Some((file_name, text[content_start..content_end].to_string()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    match socket.read(&mut chunk).await {
        Ok(0) => Err("connection closed".into()),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Reads one request: request line, headers, and a body by Content-Length or chunked.
async fn read_request(socket: &mut TcpStream) -> Result<Request, String> {
    let mut buf = Vec::new();
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 * 1024 {
            return Err("headers too long".into());
        }
        read_more(socket, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
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
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Request {
        method,
        path,
        query,
        content_type: get("content-type").unwrap_or_default(),
        body,
    })
}
