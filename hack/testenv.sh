#!/usr/bin/env bash
# Build (or reuse) a real Kubernetes control plane from the Go module proxy.
#
# Why build from modules: there is no container runtime and no release download here, but the
# Go module proxy works. The binaries are cached per version set, so only the first run on a
# machine pays the cold build; later runs validate the cache and return in well under a second.
#
#   bash hack/testenv.sh                 build if needed; last stdout line = cache prefix
#   bash hack/testenv.sh --print-prefix  print the prefix, exit 0 only if the cache is complete
#
# Progress goes to stderr, so `make testenv` (stdout discarded) still shows it.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v4.3.1}
HELM_MOD=helm.sh/helm/v${HELM_VERSION:1:1}
CACHE_ROOT=${SLOSERVE_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sloserve-testenv}
PREFIX=$CACHE_ROOT/$K8S_VERSION-$ETCD_VERSION-$KWOK_VERSION-$HELM_VERSION
BIN=$PREFIX/bin
MARKER=$PREFIX/.complete
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)
VERSIONS="k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

# Prints why the cache is not usable (nothing if it is). The marker is written last, so a
# build that was killed half-way never looks complete.
cache_problem() {
  [[ -d $PREFIX ]] || { echo "not built yet"; return; }
  [[ -f $MARKER ]] || { echo "incomplete (no completion marker: a build is running or was interrupted)"; return; }
  [[ $(head -n1 "$MARKER") == "$VERSIONS" ]] || { echo "stale (marker says: $(head -n1 "$MARKER"))"; return; }
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x $BIN/$b ]] || { echo "stale (bin/$b is missing)"; return; }
  done
  [[ -s $PREFIX/kwok-stages.yaml ]] || echo "stale (kwok-stages.yaml is missing)"
}

case "${1:-}" in
  --print-prefix)
    problem=$(cache_problem)
    echo "$PREFIX"
    [[ -z $problem ]] || { log "cache $PREFIX is $problem; run: make testenv"; exit 1; }
    exit 0 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (use --print-prefix or no argument)" ;;
esac

problem=$(cache_problem)
if [[ -z $problem ]]; then echo "$PREFIX"; exit 0; fi

command -v go >/dev/null 2>&1 \
  || die "no Go toolchain: 'go' is not on PATH; install Go >= 1.26 to build the control plane ($VERSIONS)"

mkdir -p "$CACHE_ROOT"
exec 9>"$PREFIX.lock"
if ! flock -n 9; then
  log "another testenv build holds $PREFIX.lock; waiting for it"
  flock 9
  problem=$(cache_problem)
  if [[ -z $problem ]]; then echo "$PREFIX"; exit 0; fi
fi

log "cache $PREFIX is $problem; building $VERSIONS"
rm -f "$MARKER" "$PREFIX/kwok-stages.yaml"
rm -rf "$PREFIX"/.build.*  # scratch of a killed build (we hold the lock: nobody else uses it)
mkdir -p "$BIN"
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
NICE=(nice -n "${TESTENV_NICE:-10}")
WORK=$(mktemp -d "$PREFIX/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

# Whole binaries only: each tool is built into $WORK and renamed into bin/ (same file system).
have() { local b; for b; do [[ -x $BIN/$b ]] || return 1; done; }
install_bins() { local b; for b; do mv -f "$WORK/out/$b" "$BIN/$b"; done; }
modjson() { go mod download -json "$1" | python3 -c "import json,sys;print(json.load(sys.stdin)['$2'])"; }
mkdir -p "$WORK/out"

# Kubernetes: k8s.io/kubernetes replaces its staging modules with local paths, which
# `go install pkg@version` refuses; a wrapper module replaces them with their published twins.
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
if ! have "${K8S_BINS[@]}"; then
  log "[k8s] resolving k8s.io/kubernetes@$K8S_VERSION ($((SECONDS - START))s)"
  mkdir "$WORK/k8s" && cd "$WORK/k8s"
  GOMOD=$(modjson "k8s.io/kubernetes@$K8S_VERSION" GoMod)
  python3 - "$GOMOD" "$K8S_VERSION" >go.mod <<'EOF'
import re, sys
src, kver = open(sys.argv[1]).read(), sys.argv[2]
sver = "v0." + kver.split(".", 1)[1]  # v1.36.3 -> v0.36.3
out = ["module sloserve.local/k8sbuild", "", "go " + re.search(r"^go\s+(\S+)", src, re.M)[1]]
g = re.search(r"^godebug\s+(\([^)]*\)|.*)$", src, re.M)
if g:
    out.append("godebug " + g[1])
out += ["", f"require k8s.io/kubernetes {kver}", "", "replace ("]
staging = sorted(set(re.findall(r"^\s*(?:replace\s+)?(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", src, re.M)))
if not staging:
    sys.exit("no staging replace lines found in k8s.io/kubernetes go.mod")
out += [f"\t{m} => {m} {sver}" for m in staging]
print("\n".join(out + [")"]))
EOF
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${K8S_BINS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    echo ')'; } >tools.go
  go mod tidy
  MINOR=$(cut -d. -f2 <<<"$K8S_VERSION")
  LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
    LD+=" -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%FT%TZ)"
  done
  log "[k8s] compiling ${K8S_BINS[*]} (the long part) ($((SECONDS - START))s)"
  "${NICE[@]}" go build -trimpath -tags selinux,notest -ldflags "$LD" -o "$WORK/out/" \
    "${K8S_BINS[@]/#/k8s.io/kubernetes/cmd/}"
  install_bins "${K8S_BINS[@]}"
fi

# etcd: server/go.mod also has replace lines; its main package is built from a wrapper.
if ! have etcd; then
  log "[etcd] building go.etcd.io/etcd/server/v3@$ETCD_VERSION ($((SECONDS - START))s)"
  mkdir "$WORK/etcd" && cd "$WORK/etcd"
  go mod init sloserve.local/etcdbuild >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy
  "${NICE[@]}" go build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
    -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3
  install_bins etcd
fi

cd "$WORK"
if ! have kwok; then
  log "[kwok] building sigs.k8s.io/kwok@$KWOK_VERSION ($((SECONDS - START))s)"
  GOBIN=$WORK/out "${NICE[@]}" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  install_bins kwok
fi

if ! have helm; then
  log "[helm] building $HELM_MOD@$HELM_VERSION ($((SECONDS - START))s)"
  GOBIN=$WORK/out "${NICE[@]}" go install -trimpath \
    -ldflags "-s -w -X $HELM_MOD/internal/version.version=$HELM_VERSION" \
    "$HELM_MOD/cmd/helm@$HELM_VERSION"
  install_bins helm
fi

# kwok ships no built-in stages; take the defaults kwokctl uses from the module cache.
STAGES=$(modjson "sigs.k8s.io/kwok@$KWOK_VERSION" Dir)/kustomize/stage
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  echo '---'; cat "$STAGES/$f"
done >"$PREFIX/kwok-stages.yaml.tmp"
mv "$PREFIX/kwok-stages.yaml.tmp" "$PREFIX/kwok-stages.yaml"

# Check the version stamps before declaring the cache complete.
"$BIN/kube-apiserver" --version | grep -qx "Kubernetes $K8S_VERSION" \
  || die "kube-apiserver reports '$("$BIN/kube-apiserver" --version)', expected $K8S_VERSION"
"$BIN/etcd" --version | grep -q "etcd Version: ${ETCD_VERSION#v}" \
  || die "etcd reports '$("$BIN/etcd" --version | head -n1)', expected $ETCD_VERSION"
"$BIN/helm" version --short | grep -q "^$HELM_VERSION" \
  || die "helm reports '$("$BIN/helm" version --short)', expected $HELM_VERSION"

{ echo "$VERSIONS"; echo "built=$(date -u +%FT%TZ) seconds=$((SECONDS - START)) go=$(go env GOVERSION)"; } \
  >"$MARKER.tmp"
mv "$MARKER.tmp" "$MARKER"
log "done in $((SECONDS - START))s: $(du -sh "$BIN" | cut -f1) in $BIN"
echo "$PREFIX"
