#!/usr/bin/env bash
# Certificates, static tokens and kubeconfigs of the lab cluster under $KUBE_LAB/pki, made with openssl
# (nothing fetched). Idempotent: kept while the node name and API port stay the same, redone otherwise.
source "$(dirname "$0")/lib.sh"

want="$KUBE_LAB_NODE:$KUBE_LAB_API_PORT"
if [ -f "$LAB_PKI/admin.kubeconfig" ] && [ "$(cat "$LAB_PKI/made-for" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
rm -rf "$LAB_PKI"
mkdir -p "$LAB_PKI"
cd "$LAB_PKI"
umask 077

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flink-gitops-kube-lab-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null

# issue NAME SUBJECT [SAN]: a key and a certificate signed by the lab CA, good as server and client.
issue() {
    local name=$1 subject=$2 san=${3:-}
    openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=serverAuth,clientAuth"
        [ -z "$san" ] || echo "subjectAltName=$san"
    } >"$name.ext"
    openssl x509 -req -days 3650 -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

# 10.0.0.1 is the first address of the service range (the `kubernetes` Service). 127.0.0.1 and the
# name `kubernetes` let pods on the host network (or with a hostAlias) verify the server.
issue apiserver "/CN=kube-apiserver" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1,IP:$KUBE_LAB_NODE_IP"
issue admin "/O=system:masters/CN=kube-lab-admin"
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

token() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
admin=$(token) controller=$(token) scheduler=$(token) node=$(token)
{
    echo "$admin,kube-lab-admin,uid-admin,\"system:masters\""
    echo "$controller,system:kube-controller-manager,uid-controller-manager"
    echo "$scheduler,system:kube-scheduler,uid-scheduler"
    echo "$node,system:node:$KUBE_LAB_NODE,uid-node,\"system:nodes\""
} >tokens.csv

# kubeconfig FILE USER then the user's credentials as YAML lines
kubeconfig() {
    local file=$1 user=$2
    shift 2
    {
        echo "apiVersion: v1"
        echo "kind: Config"
        echo "clusters:"
        echo "- name: kube-lab"
        echo "  cluster:"
        echo "    server: https://127.0.0.1:$KUBE_LAB_API_PORT"
        echo "    certificate-authority: $LAB_PKI/ca.crt"
        echo "users:"
        echo "- name: $user"
        echo "  user:"
        for line in "$@"; do echo "    $line"; done
        echo "contexts:"
        echo "- name: kube-lab"
        echo "  context: {cluster: kube-lab, user: $user}"
        echo "current-context: kube-lab"
    } >"$file"
}
kubeconfig admin.kubeconfig admin "token: $admin"
kubeconfig admin-x509.kubeconfig admin "client-certificate: $LAB_PKI/admin.crt" "client-key: $LAB_PKI/admin.key"
kubeconfig controller-manager.kubeconfig controller-manager "token: $controller"
kubeconfig scheduler.kubeconfig scheduler "token: $scheduler"
kubeconfig kubelet.kubeconfig kubelet "token: $node"
chmod 644 ca.crt
echo "$want" >made-for
lab_log "pki made in $LAB_PKI"
