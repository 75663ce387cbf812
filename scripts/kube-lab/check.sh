#!/usr/bin/env bash
# Check a running lab cluster the way the agent will use it: the node is Ready, a
# Deployment applied server-side (field manager flink-gitops) gets a Running pod from the
# locally loaded busybox image, its logs can be read, and the namespace goes away again.
# Prints one line per check and exits non-zero on the first failure.
source "$(dirname "$0")/lib.sh"

ns="kube-lab-check-$$"
pass() { lab_log "ok: $*"; }
trap 'lab_kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1' EXIT

[ "$(lab_kubectl get node "$KUBE_LAB_NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] ||
    lab_die "node $KUBE_LAB_NODE is not Ready"
pass "node $KUBE_LAB_NODE Ready"
lab_kubectl create namespace "$ns" >/dev/null
t0=$(lab_now)
lab_kubectl apply --server-side --field-manager=flink-gitops -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: $ns}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: $KUBE_LAB_BUSYBOX_IMAGE
        imagePullPolicy: Never
        command: ["sh", "-c", "echo probe-started; exec sleep 3600"]
        ports: [{name: http, containerPort: 8080, protocol: TCP}]
YAML
pass "Deployment applied server-side"
lab_kubectl -n "$ns" wait --for=condition=Ready pod -l app=probe --timeout=120s >/dev/null ||
    lab_die "the pod did not become Ready"
pass "pod Running and Ready $(lab_since "$t0")s after the apply"
for _ in $(seq 50); do
    lab_kubectl -n "$ns" logs deploy/probe 2>/dev/null | grep -q probe-started && break
    sleep 0.2
done
lab_kubectl -n "$ns" logs deploy/probe | grep -q probe-started || lab_die "no log line from the pod"
pass "pod logs readable"
