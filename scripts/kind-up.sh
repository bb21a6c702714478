#!/usr/bin/env bash
# A local kind cluster running medopt: cert-manager, KServe (RawDeployment: no Knative or Istio), the KubeRay
# operator and Kubeflow Pipelines at pinned versions, the three images loaded from the local docker, the
# medopt-s3 Secret from MINIO_USER/MINIO_PASSWORD, then k8s/overlays/local-kind and the helm/medopt chart.
# Usage: MINIO_USER=... MINIO_PASSWORD=... scripts/kind-up.sh [--dry-run]   (build the images first: make images)
# --dry-run prints every command instead of running it, and needs none of docker, kind, kubectl or helm.
set -euo pipefail

KIND_NODE_IMAGE="kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"  # kind v0.29.0
CERT_MANAGER_VERSION="v1.17.2"
# The controllers match the SDKs in requirements.lock (kserve 0.21.0, kfp-server-api 2.17.3, ray 2.60) and the CRDs
# the manifests are validated against (../shared/crds: KServe and KubeRay, August 2026).
KSERVE_VERSION="v0.21.0"          # also serving/clusterstoragecontainer.yaml's storage-initializer tag
KUBERAY_VERSION="1.7.0"           # kuberay-operator helm chart (RayJob submitterPodTemplate, ray.io/v1)
KFP_VERSION="2.17.3"              # Kubeflow Pipelines standalone (platform-agnostic manifests)
CLUSTER_NAME="${CLUSTER_NAME:-medopt}"
NAMESPACE="${NAMESPACE:-medopt}"
IMAGE_REPO="${IMAGE_REPO:-ghcr.io/medopt}"
VERSION="${VERSION:-0.1.0}"
IMAGES=("$IMAGE_REPO/medopt:$VERSION" "$IMAGE_REPO/medopt-cuda:$VERSION" "$IMAGE_REPO/medopt-serve:$VERSION")

dry_run=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=true ;;
    *) echo "kind-up: unknown argument '$arg' (only --dry-run)" >&2; exit 2 ;;
  esac
done
if [ -z "${MINIO_USER:-}" ] || [ -z "${MINIO_PASSWORD:-}" ]; then
  echo "kind-up: set MINIO_USER and MINIO_PASSWORD (the MinIO credentials for the medopt-s3 Secret; no default)" >&2
  exit 1
fi

# run CMD...: runs it, or prints it (shell-quoted) under --dry-run; the Secret's password is never printed.
run() {
  if $dry_run; then
    local shown=() arg
    for arg in "$@"; do
      if [[ "$arg" == *"=$MINIO_PASSWORD" ]]; then arg="${arg%"=$MINIO_PASSWORD"}=<MINIO_PASSWORD>"; fi
      shown+=("$arg")
    done
    printf '%q ' "${shown[@]}" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

echo "kind-up: kind node $KIND_NODE_IMAGE, cert-manager $CERT_MANAGER_VERSION, KServe $KSERVE_VERSION," \
     "KubeRay $KUBERAY_VERSION, Kubeflow Pipelines $KFP_VERSION"

run kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" --wait 120s

run kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
run kubectl wait --for=condition=Available deployment --all -n cert-manager --timeout=300s

run helm install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "$KSERVE_VERSION" \
  --namespace kserve --create-namespace --wait
run helm install kserve oci://ghcr.io/kserve/charts/kserve --version "$KSERVE_VERSION" --namespace kserve \
  --set kserve.controller.deploymentMode=RawDeployment --wait
# the storage initializer under Pod Security "restricted" (serving/clusterstoragecontainer.yaml says why)
run kubectl apply -f serving/clusterstoragecontainer.yaml

run helm repo add kuberay https://ray-project.github.io/kuberay-helm/
run helm install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
  --namespace ray-system --create-namespace --wait

run kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
run kubectl wait --for condition=established --timeout=60s crd/applications.app.k8s.io
run kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"

for image in "${IMAGES[@]}"; do
  run kind load docker-image "$image" --name "$CLUSTER_NAME"
done

# medopt-s3 in both namespaces that read it (k8s/prerequisites.yaml): medopt's, and kubeflow where KFP runs steps
run kubectl create namespace "$NAMESPACE"
for ns in "$NAMESPACE" kubeflow; do
  run kubectl create secret generic medopt-s3 -n "$ns" \
    --from-literal=AWS_ACCESS_KEY_ID="$MINIO_USER" --from-literal=AWS_SECRET_ACCESS_KEY="$MINIO_PASSWORD"
  run kubectl annotate secret medopt-s3 -n "$ns" \
    serving.kserve.io/s3-endpoint="minio.$NAMESPACE.svc:9000" serving.kserve.io/s3-usehttps=0
done
run kubectl apply -k k8s/overlays/local-kind
run kubectl apply -k k8s/kfp        # KFP's namespace: medopt-pipeline ServiceAccount, kfp-launcher (pipeline root)
run helm install medopt helm/medopt -n "$NAMESPACE"
