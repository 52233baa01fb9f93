#!/usr/bin/env bash
# Scenarios 1–5 of the e2e run on a real cluster: kind (Kubernetes in Docker), the chart installed
# with Helm, MinIO as S3, a local registry with basic auth, real pods. See e2e/kind/README.md.
# It cannot run on the project's build machines (no Docker Hub there); it needs a machine with
# Docker, network access, and kind, kubectl, helm and htpasswd on the PATH.
#
#   e2e/kind/run.sh            # create the cluster, run, delete the cluster
#   KEEP=1 e2e/kind/run.sh     # keep the cluster afterwards (kind delete cluster --name clip-e2e)
#
# On failure, logs, events, pod descriptions and the plugins' metrics go to $ARTIFACTS
# (default e2e/kind/artifacts).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=e2e/kind
CLUSTER=${CLUSTER:-clip-e2e}
NS=kube-system
ARTIFACTS=${ARTIFACTS:-$HERE/artifacts}
REGISTRY_NAME=clip-e2e-registry
# The registry as pods and the driver reach it (on kind's network), and as this machine pushes to it.
REGISTRY=$REGISTRY_NAME:5000
REGISTRY_LOCAL=localhost:5001
REG_USER=tester
REG_PASS=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
CLIP_IMAGE=clip-csi:e2e
DEBIAN_IMAGE=$REGISTRY/e2e/debian:12
PRIVATE_IMAGE=$REGISTRY/e2e/private-zoneinfo:1

step() { printf '[kind-e2e %4ds] %s\n' "$SECONDS" "$*"; }
for tool in docker kind kubectl helm htpasswd; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is not installed" >&2; exit 2; }
done

collect() {
  mkdir -p "$ARTIFACTS"
  step "collecting logs and metrics into $ARTIFACTS"
  kubectl get pods -A -o wide >"$ARTIFACTS/pods.txt" 2>&1 || true
  kubectl get events -A --sort-by=.lastTimestamp >"$ARTIFACTS/events.txt" 2>&1 || true
  kubectl describe pods -n default >"$ARTIFACTS/describe-default.txt" 2>&1 || true
  kubectl -n "$NS" logs -l app.kubernetes.io/part-of=clip-csi --all-containers --prefix --tail=-1 >"$ARTIFACTS/clip-csi.log" 2>&1 || true
  for pod in $(kubectl -n "$NS" get pods -l app.kubernetes.io/part-of=clip-csi -o name 2>/dev/null); do
    for port in 9100 9101; do
      kubectl get --raw "/api/v1/namespaces/$NS/${pod/\//s\/}:$port/proxy/metrics" >"$ARTIFACTS/metrics-${pod#pod/}-$port.txt" 2>/dev/null || rm -f "$ARTIFACTS/metrics-${pod#pod/}-$port.txt"
    done
  done
  docker logs "$REGISTRY_NAME" >"$ARTIFACTS/registry.log" 2>&1 || true
}
cleanup() {
  local code=$?
  [ $code = 0 ] || collect
  if [ "${KEEP:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    docker rm -f "$REGISTRY_NAME" clip-e2e-ref >/dev/null 2>&1 || true
  fi
  [ $code = 0 ] && step "PASS" || step "FAIL (exit $code)"
}
trap cleanup EXIT

step "kind cluster $CLUSTER (one control plane, two workers)"
kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" --wait 120s
WORKERS=($(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{.items[*].metadata.name}'))
[ ${#WORKERS[@]} = 2 ] || { echo "expected two workers, got ${WORKERS[*]}" >&2; exit 1; }

step "registry with basic auth on kind's network ($REGISTRY)"
mkdir -p "$ARTIFACTS/auth"
htpasswd -Bbn "$REG_USER" "$REG_PASS" >"$ARTIFACTS/auth/htpasswd"
docker rm -f "$REGISTRY_NAME" >/dev/null 2>&1 || true
docker run -d --name "$REGISTRY_NAME" --network kind -p 127.0.0.1:5001:5000 \
  -v "$PWD/$ARTIFACTS/auth:/auth:ro" -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM=clip-e2e \
  -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd registry:2 >/dev/null
echo "$REG_PASS" | docker login "$REGISTRY_LOCAL" -u "$REG_USER" --password-stdin >/dev/null

step "workload images: Debian packages (python3-minimal, tzdata) and a private tzdata-only image"
docker build -q -t "$REGISTRY_LOCAL/e2e/debian:12" -f "$HERE/workload.Dockerfile" --target debian "$HERE" >/dev/null
docker build -q -t "$REGISTRY_LOCAL/e2e/private-zoneinfo:1" -f "$HERE/workload.Dockerfile" --target zoneinfo "$HERE" >/dev/null
docker push -q "$REGISTRY_LOCAL/e2e/debian:12" >/dev/null
docker push -q "$REGISTRY_LOCAL/e2e/private-zoneinfo:1" >/dev/null
# The reference bytes: the image as Docker unpacks it.
mkdir -p "$ARTIFACTS/reference"
docker rm -f clip-e2e-ref >/dev/null 2>&1 || true
docker create --name clip-e2e-ref "$REGISTRY_LOCAL/e2e/debian:12" /bin/true >/dev/null
docker export clip-e2e-ref | tar -x -C "$ARTIFACTS/reference" --exclude='dev/*'
docker rm clip-e2e-ref >/dev/null

step "clip image (deploy/Dockerfile) loaded into the nodes"
docker build -q -t "$CLIP_IMAGE" -f deploy/Dockerfile . >/dev/null
kind load docker-image "$CLIP_IMAGE" --name "$CLUSTER"

step "MinIO (S3) with the bucket clip-indexes"
kubectl apply -f "$HERE/minio.yaml"
kubectl -n storage wait --for=condition=complete job/make-bucket --timeout=180s

step "helm install (charts/clip-csi/ci/s3-secret-values.yaml)"
kubectl -n "$NS" create secret generic clip-s3-credentials \
  --from-literal=AWS_ACCESS_KEY_ID=clip-e2e --from-literal=AWS_SECRET_ACCESS_KEY=clip-e2e-secret
for secret in regcred:"$REG_PASS" wrongcred:not-the-password; do
  kubectl create secret docker-registry "${secret%%:*}" --docker-server="$REGISTRY" \
    --docker-username="$REG_USER" --docker-password="${secret#*:}"
done
helm install clip-csi charts/clip-csi --namespace "$NS" --wait --timeout 5m \
  -f charts/clip-csi/ci/s3-secret-values.yaml \
  --set image.repository=clip-csi --set image.tag=e2e --set image.pullPolicy=Never \
  --set "registries.insecure={$REGISTRY}" \
  --set controller.platforms='{linux/amd64}' \
  --set storageClass.parameters.image="$DEBIAN_IMAGE" \
  --set storageClass.parameters.csi\\.storage\\.k8s\\.io/provisioner-secret-name=regcred \
  --set storageClass.parameters.csi\\.storage\\.k8s\\.io/provisioner-secret-namespace=default

# pod NAME NODE VOLUME-YAML: a debian container sleeping, its volume at /data (HostToContainer).
pod() {
  kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: default}
spec:
  nodeName: $2
  containers:
    - name: app
      image: debian:bookworm-slim
      command: [sleep, infinity]
      volumeMounts: [{name: vol, mountPath: /data, mountPropagation: HostToContainer}]
      securityContext: {capabilities: {add: [SYS_CHROOT]}}
  volumes:
    - name: vol
$3
EOF
}
inline() { # inline IMAGE READONLY SECRET
  printf '      csi:\n        driver: clip.csi.dev\n        readOnly: %s\n        volumeAttributes: {image: "%s"}\n        nodePublishSecretRef: {name: %s}\n' "$2" "$1" "$3"
}
ready() { kubectl wait --for=condition=Ready "pod/$1" --timeout=180s >/dev/null; }
in_pod() { local name=$1; shift; kubectl exec "$name" -- sh -c "$*"; }
fail() { echo "kind-e2e: $*" >&2; exit 1; }
plugin_log() { # plugin_log NODE: the node plugin's log on that node
  kubectl -n "$NS" logs "$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=node --field-selector "spec.nodeName=$1" -o name)" -c clip-node
}
LISTING='cd "$0" && find . -mindepth 1 -printf "%y %m %p -> %l\n" | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum'
# What Docker adds to a container (docker export) and is not the image's: left out on both sides.
image_only() { grep -vE '[ ]\./(\.dockerenv|etc/(hostname|hosts|resolv\.conf)|dev|proc|sys)( |/|$)' || true; }

step "1. read-only volume on ${WORKERS[0]}: indexed by the controller first, programs from the image, bytes equal"
pod s1-reader "${WORKERS[0]}" "$(inline "$DEBIAN_IMAGE" true regcred)"
ready s1-reader
plugin_log "${WORKERS[0]}" | grep -q '"index fetched from S3"' || fail "node ${WORKERS[0]} did not take the index from S3"
[ "$(in_pod s1-reader "chroot /data /usr/bin/python3 -c 'print(6 * 7)'")" = 42 ] || fail "python3 from the image did not run"
in_pod s1-reader "sh -c '$LISTING' /data" | image_only >"$ARTIFACTS/s1-volume.txt"
sh -c "$LISTING" "$ARTIFACTS/reference" | image_only >"$ARTIFACTS/s1-reference.txt"
diff -q "$ARTIFACTS/s1-reference.txt" "$ARTIFACTS/s1-volume.txt" >/dev/null || fail "the volume's files differ from the image's (see $ARTIFACTS/s1-*.txt)"

step "2. the same image on ${WORKERS[1]}: index from S3"
pod s2-reader "${WORKERS[1]}" "$(inline "$DEBIAN_IMAGE" true regcred)"
ready s2-reader
plugin_log "${WORKERS[1]}" | grep -q '"index fetched from S3"' || fail "node ${WORKERS[1]} did not take the index from S3"
[ "$(in_pod s2-reader 'head -c 4 /data/usr/share/zoneinfo/Etc/UTC')" = TZif ] || fail "read on ${WORKERS[1]}"

step "3. writable inline volume: writes stay in the pod"
pod s3-writer "${WORKERS[0]}" "$(inline "$DEBIAN_IMAGE" false regcred)"
ready s3-writer
in_pod s3-writer 'echo written > /data/etc/e2e-note && rm /data/usr/bin/python3.11'
in_pod s1-reader 'test ! -e /data/etc/e2e-note && test -e /data/usr/bin/python3.11' || fail "a write reached another volume"
kubectl delete pod s3-writer --wait=true >/dev/null

step "4. a PVC through the StorageClass (CreateVolume), used by a pod"
kubectl apply -f - <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: s4-claim, namespace: default}
spec: {accessModes: [ReadOnlyMany], storageClassName: clip, resources: {requests: {storage: 1Gi}}}
EOF
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/s4-claim --timeout=180s
pod s4-app "${WORKERS[1]}" "$(printf '      persistentVolumeClaim: {claimName: s4-claim, readOnly: true}\n')"
ready s4-app
[ "$(in_pod s4-app "chroot /data /bin/sh -c 'echo pvc-\$((1 + 1))'")" = pvc-2 ] || fail "the PVC's image did not run"

step "5. private image: the right secret reads, a wrong one gives a Warning event"
pod s5-right "${WORKERS[0]}" "$(inline "$PRIVATE_IMAGE" true regcred)"
ready s5-right
pod s5-wrong "${WORKERS[1]}" "$(inline "$PRIVATE_IMAGE" true wrongcred)"
for _ in $(seq 60); do
  events=$(kubectl get events --field-selector involvedObject.name=s5-wrong,type=Warning -o jsonpath='{range .items[*]}{.reason}: {.message}{"\n"}{end}')
  grep -q 'Unauthenticated\|UNAUTHENTICATED\|credentials rejected' <<<"$events" && break
  sleep 2
done
grep -q 'Unauthenticated\|UNAUTHENTICATED\|credentials rejected' <<<"$events" || fail "no Warning event for the wrong secret: $events"

kubectl delete pod s1-reader s2-reader s4-app s5-right s5-wrong --wait=true >/dev/null
kubectl delete pvc s4-claim >/dev/null
