//! Flink's REST API through the API server, for an agent or CLI outside the cluster: a
//! local listener per cluster whose every connection is a new port-forward (kube's
//! `Api::<Pod>::portforward`, WebSocket) to the cluster's current JobManager pod.
//!
//! One port-forward per connection, and the pod looked up per connection: a JobManager
//! replaced by an upgrade or a recovery is found again without restarting anything, and a
//! failed forward costs one connection (the REST call fails and counts as *unknown*), not
//! the listener (`kubectl port-forward` on 1.20 wedges for good after a few refused
//! connections; this does not share its session).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::apply::runtime::RuntimeError;
use crate::config;
use crate::flink::spec::ResourceKey;

/// The listeners of the clusters reached so far, by resource.
#[derive(Default)]
pub struct PortForwards {
    listeners: Mutex<BTreeMap<ResourceKey, Forward>>,
}

struct Forward {
    remote_port: u16,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for PortForwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.listeners.lock().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("PortForwards")
            .field("listeners", &n)
            .finish()
    }
}

impl PortForwards {
    /// `http://127.0.0.1:<port>` forwarding to `remote_port` of the JobManager pod of
    /// `key`; the listener is made on first use and kept until [`PortForwards::forget`].
    ///
    /// # Errors
    /// [`RuntimeError::Io`] when no local port can be bound.
    pub async fn url(
        self: &Arc<Self>,
        client: &Client,
        key: &ResourceKey,
        remote_port: u16,
    ) -> Result<String, RuntimeError> {
        if let Some(addr) = self.existing(key, remote_port) {
            return Ok(format!("http://{addr}"));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| RuntimeError::io("bind a local port for a port-forward", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| RuntimeError::io("the port-forward's local address", e))?;
        let task = tokio::spawn(serve(listener, client.clone(), key.clone(), remote_port));
        tracing::debug!(resource = %key, %local, remote_port, "port-forward listener");
        let mut listeners = self.lock();
        // Another caller may have made one meanwhile: keep the first, drop ours.
        if let Some(f) = listeners.get(key) {
            if f.remote_port == remote_port && !f.task.is_finished() {
                task.abort();
                return Ok(format!("http://{}", f.local));
            }
        }
        listeners.insert(
            key.clone(),
            Forward {
                remote_port,
                local,
                task,
            },
        );
        Ok(format!("http://{local}"))
    }

    /// Stops forwarding for `key` (its cluster is gone).
    pub fn forget(&self, key: &ResourceKey) {
        self.lock().remove(key);
    }

    fn existing(&self, key: &ResourceKey, remote_port: u16) -> Option<SocketAddr> {
        self.lock()
            .get(key)
            .filter(|f| f.remote_port == remote_port && !f.task.is_finished())
            .map(|f| f.local)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ResourceKey, Forward>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn serve(listener: TcpListener, client: Client, key: ResourceKey, remote_port: u16) {
    loop {
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(resource = %key, error = %e, "port-forward listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let client = client.clone();
        let key = key.clone();
        tokio::spawn(async move {
            if let Err(e) = forward(conn, &client, &key, remote_port).await {
                // The connection closes; the REST call fails and counts as unknown.
                tracing::debug!(resource = %key, error = %e, "port-forward connection failed");
            }
        });
    }
}

/// Why one forwarded connection failed.
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("list the JobManager pods: {0}")]
    List(#[source] kube::Error),
    #[error("no running JobManager pod")]
    NoPod,
    #[error("port-forward to pod {pod}: {source}")]
    Forward {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("port-forward to pod {pod}: no stream for port {port}")]
    NoStream { pod: String, port: u16 },
    #[error("copy: {0}")]
    Copy(#[source] std::io::Error),
}

async fn forward(
    mut conn: TcpStream,
    client: &Client,
    key: &ResourceKey,
    port: u16,
) -> Result<(), ForwardError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let selector = format!(
        "{}={},{}=jobmanager",
        config::KUBE_LABEL_NAME,
        key.name,
        config::KUBE_LABEL_COMPONENT
    );
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(ForwardError::List)?;
    let pod = jobmanager_pod(&list.items).ok_or(ForwardError::NoPod)?;
    let mut pf = pods
        .portforward(&pod, &[port])
        .await
        .map_err(|source| ForwardError::Forward {
            pod: pod.clone(),
            source,
        })?;
    let mut upstream = pf.take_stream(port).ok_or_else(|| ForwardError::NoStream {
        pod: pod.clone(),
        port,
    })?;
    let copied = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    // The forwarder ends once its stream is closed; its own error adds nothing here.
    let _ = pf.join().await;
    copied.map(|_| ()).map_err(ForwardError::Copy)
}

/// The pod to forward to: a running, not deleted JobManager pod, the newest first.
fn jobmanager_pod(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Running")
        })
        .max_by_key(|p| p.metadata.creation_timestamp.clone())
        .and_then(|p| p.metadata.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: &str, deleting: bool) -> Pod {
        let mut meta = serde_json::json!({"name": name, "creationTimestamp": created});
        if deleting {
            meta["deletionTimestamp"] = serde_json::json!("2026-12-02T00:00:09Z");
        }
        serde_json::from_value(serde_json::json!({"metadata": meta, "status": {"phase": phase}}))
            .expect("pod")
    }

    #[test]
    fn forwards_to_the_newest_running_pod_not_being_deleted() {
        let pods = [
            pod("old", "Running", "2026-12-02T00:00:01Z", true),
            pod("new", "Running", "2026-12-02T00:00:05Z", false),
            pod("older", "Running", "2026-12-02T00:00:00Z", false),
            pod("pending", "Pending", "2026-12-02T00:00:08Z", false),
        ];
        assert_eq!(jobmanager_pod(&pods).as_deref(), Some("new"));
        assert_eq!(jobmanager_pod(&pods[3..]), None);
        assert_eq!(jobmanager_pod(&pods[..1]), None);
    }
}
