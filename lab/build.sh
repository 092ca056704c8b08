#!/usr/bin/env bash
# Build (or reuse from cache) every lab program. Idempotent: a binary already in
# the cache for its pinned version is not rebuilt. Usage: lab/build.sh [component...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/versions.env"
CACHE=${UNIMON_LAB_CACHE:-$HOME/.cache/unimon-lab}
BIN=$CACHE/bin
WORK=$CACHE/build
mkdir -p "$BIN" "$WORK"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { printf '[lab-build %(%H:%M:%S)T] %s\n' -1 "$*"; }
have() { [ -x "$BIN/$1" ]; }

# go_wrapper DIR MODULE_LINES... : a throwaway module whose go.mod we write, so
# upstream modules with local replace lines still build from the module proxy.
go_wrapper() {
  local dir=$1; shift
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module unimonlab/wrapper\n\ngo 1.24\n\n%s\n' "$*" >"$dir/go.mod"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION minor
  minor=${v#v1.}; minor=${minor%%.*}
  local names="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet"
  local all=1; for n in $names; do have "$n-$v" || all=0; done
  [ $all = 1 ] && return 0
  log "kubernetes $v"
  local gomod; gomod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # Every staging module (replaced by ./staging/... upstream) maps to its published v0.minor.patch.
  local repl; repl=$(awk -v pv="v0.${v#v1.}" '$2=="=>" && $3 ~ /^\.\/staging/ {print "replace " $1 " => " $1 " " pv}' "$gomod")
  local d=$WORK/kubernetes-$v
  go_wrapper "$d" "require k8s.io/kubernetes $v
$repl"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$d" && for n in $names; do have "$n-$v" || { log "  go build $n"; go build -mod=mod -trimpath -ldflags "$ld" -o "$BIN/$n-$v" "k8s.io/kubernetes/cmd/$n"; }; done)
}

build_etcd() {
  local v=$ETCD_VERSION
  have "etcd-$v" && return 0
  log "etcd $v"
  local d=$WORK/etcd-$v
  go_wrapper "$d" "require go.etcd.io/etcd/server/v3 $v"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$d/main.go"
  (cd "$d" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd-$v" .)
}

build_operator() {  # the operator and its config-reloader sidecar, from one wrapper module
  local v=$PROMETHEUS_OPERATOR_VERSION
  have "prometheus-operator-$v" && have "prometheus-config-reloader-$v" && return 0
  log "prometheus-operator and prometheus-config-reloader $v"
  local d=$WORK/prometheus-operator-$v m=github.com/prometheus-operator/prometheus-operator
  go_wrapper "$d" "require (
	$m $v
	$m/pkg/apis/monitoring $v
	$m/pkg/client $v
)"
  local ld="-s -w -X github.com/prometheus/common/version.Version=${v#v}"
  (cd "$d" && go build -mod=mod -trimpath -ldflags "$ld" -o "$BIN/prometheus-operator-$v" "$m/cmd/operator" \
           && go build -mod=mod -trimpath -ldflags "$ld" -o "$BIN/prometheus-config-reloader-$v" "$m/cmd/prometheus-config-reloader")
}

# Modules with no replace lines: plain go install into a version-keyed GOBIN.
go_install() {  # name version package
  local name=$1 v=$2 pkg=$3
  have "$name-$v" && return 0
  log "$name $v"
  local gobin=$WORK/gobin-$name-$v
  GOBIN=$gobin go install -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v}" "$pkg@$v"
  mv "$gobin/$(basename "${pkg%/v[0-9]*}")" "$BIN/$name-$v"
}

# Modules whose go.mod has exclude/replace lines refuse `go install`: build them as a dependency
# of a wrapper module, where those lines do not apply.
go_dep_build() {  # name version module package
  local name=$1 v=$2 mod=$3 pkg=$4
  have "$name-$v" && return 0
  log "$name $v (wrapper)"
  local d=$WORK/$name-$v
  go_wrapper "$d" "require $mod $v"
  (cd "$d" && go build -mod=mod -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v}" -o "$BIN/$name-$v" "$pkg")
}

build_metrics_server() {
  local v=$METRICS_SERVER_VERSION
  have "metrics-server-$v" && return 0
  log "metrics-server $v"
  local gobin=$WORK/gobin-metrics-server-$v
  GOBIN=$gobin go install -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$v" "sigs.k8s.io/metrics-server/cmd/metrics-server@$v"
  mv "$gobin/metrics-server" "$BIN/metrics-server-$v"
}

# The operator's upstream CRD files, for the offline CRD source of our role.
crds() {
  local v=$PROMETHEUS_OPERATOR_VERSION; local dst=$CACHE/crds/prometheus-operator-$v
  [ -d "$dst" ] && return 0
  local dir; dir=$(cd /tmp && go mod download -json "github.com/prometheus-operator/prometheus-operator@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$dst.tmp" && cp "$dir"/example/prometheus-operator-crd/*.yaml "$dst.tmp/" && chmod 644 "$dst.tmp"/* && mv "$dst.tmp" "$dst"
}

build_elasticsearch() {
  local v=$ELASTICSEARCH_VERSION; local dst=$CACHE/elasticsearch-$v
  [ -x "$dst/bin/elasticsearch" ] && return 0
  log "elasticsearch $v"
  local base=https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$v
  local zip=$WORK/elasticsearch-$v.zip
  curl -fsSL -o "$zip" "$base/elasticsearch-$v.zip"
  local want; want=$(curl -fsSL "$base/elasticsearch-$v.zip.sha1")
  echo "${want%% *}  $zip" | sha1sum -c - >/dev/null
  rm -rf "$dst.tmp" && mkdir -p "$dst.tmp" && (cd "$dst.tmp" && unzip -q "$zip") && mv "$dst.tmp"/elasticsearch-* "$dst" && rm -rf "$dst.tmp"
}

all="elasticsearch etcd kubernetes kwok prometheus node_exporter operator kube_state_metrics alertmanager metrics_server crds"
for c in ${*:-$all}; do
  case $c in
    elasticsearch) build_elasticsearch ;;
    etcd) build_etcd ;;
    kubernetes) build_kubernetes ;;
    kwok) go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
    prometheus) go_dep_build promtool "$PROMETHEUS_VERSION" github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool
                go_dep_build prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/prometheus ;;
    node_exporter) go_install node_exporter "$NODE_EXPORTER_VERSION" github.com/prometheus/node_exporter ;;
    operator) build_operator ;;
    # The proxy refuses this module's version list, which `go install` reads: build via a wrapper.
    kube_state_metrics) go_dep_build kube-state-metrics "$KUBE_STATE_METRICS_VERSION" k8s.io/kube-state-metrics/v2 k8s.io/kube-state-metrics/v2 ;;
    alertmanager) go_install alertmanager "$ALERTMANAGER_VERSION" github.com/prometheus/alertmanager/cmd/alertmanager ;;
    # No replace lines; the version is stamped where client-go reads it (what upstream's Makefile does).
    metrics_server) build_metrics_server ;;
    crds) crds ;;
    *) echo "unknown component $c" >&2; exit 2 ;;
  esac
done
log "done: $(ls "$BIN" | tr '\n' ' ')"
