#!/usr/bin/env bash
# Builds the binaries of the local test world from published Go modules into a cache
# outside the checkout, keyed by each group's pinned versions: a second run costs nothing.
#
#   world/build.sh [GROUP...]     groups: kube etcd pulumi kubernetes-provider command-provider
#
# Prints the cache's bin directory on stdout when done. The cache is
# $KPT_CATALOG_WORLD_CACHE, or ~/.cache/kpt-catalog/world.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KPT_CATALOG_WORLD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kpt-catalog/world}"
bin="$cache/bin"
mkdir -p "$bin"

export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
# Keep Go's own caches between runs (they are what makes a rebuild cheap).
export GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}" GOCACHE="${GOCACHE:-$(go env GOCACHE)}"

# Version stamps. Unstamped, kube-apiserver reports v0.0.0-master (the kubernetes provider
# refuses servers below 1.13) and the pulumi CLI reports a version the Automation API refuses.
KUBE_VERSION=v1.34.4
PULUMI_VERSION=v3.276.0
KUBERNETES_PROVIDER_VERSION=4.25.0
COMMAND_PROVIDER_VERSION=1.2.1

say() { printf 'world: %s\n' "$*" >&2; }

# build GROUP LDFLAGS NAME PACKAGE... : builds PACKAGEs of module world/GROUP into
# cache/GROUP-KEY and links each binary into cache/bin. NAME names the binary of a single
# PACKAGE ("-": go build's own names).
build() {
  local group="$1" ldflags="$2" name="$3"; shift 3
  local dir="$here/$group"
  local key
  key="$( (cd "$dir" && cat go.mod go.sum $(ls *.go 2>/dev/null); go version; echo "$ldflags $name") | sha256sum | cut -c1-16)"
  local out="$cache/$group-$key"
  if [[ ! -f "$out/.complete" ]]; then
    say "building $group ($*) into $out"
    local started=$SECONDS
    rm -rf "$out.partial"; mkdir -p "$out.partial"
    local target="$out.partial/"
    [[ "$name" == - ]] || target="$out.partial/$name"
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$target" "$@")
    printf '%s\n' "$((SECONDS - started))" > "$out.partial/.build-seconds"
    touch "$out.partial/.complete"
    rm -rf "$out"; mv "$out.partial" "$out"
    # Builds of older pins of this group are never used again.
    local old
    for old in "$cache/$group"-*; do [[ "$old" == "$out" ]] || rm -rf "$old"; done
    say "built $group in $((SECONDS - started)) s"
  fi
  local f
  for f in "$out"/*; do ln -sfn "$f" "$bin/$(basename "$f")"; done
}

group_kube() {
  local v="${KUBE_VERSION#v}" x='k8s.io/component-base/version'
  build kube "-s -w -X $x.gitVersion=$KUBE_VERSION -X $x.gitMajor=${v%%.*} -X $x.gitMinor=$(cut -d. -f2 <<<"$v") -X $x.gitTreeState=clean" - \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
}
group_etcd() { build etcd "-s -w" etcd go.etcd.io/etcd/server/v3; }
group_pulumi() {
  build pulumi "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" - \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}
group_kubernetes_provider() {
  # The module's committed schema files, which main.go embeds (see there why).
  local src
  src="$(cd "$here/kubernetes-provider" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)"
  install -m 0644 "$src/cmd/pulumi-resource-kubernetes/schema.json" \
    "$src/cmd/pulumi-resource-kubernetes/terraform-mapping.json" "$here/kubernetes-provider/"
  build kubernetes-provider "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION" pulumi-resource-kubernetes .
}
group_command_provider() {
  build command-provider "-s -w -X main.version=$COMMAND_PROVIDER_VERSION" pulumi-resource-command .
}

groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=(kube etcd pulumi kubernetes-provider command-provider)
for g in "${groups[@]}"; do
  "group_${g//-/_}"
done
find "$bin" -xtype l -delete  # links to builds that were replaced
printf '%s\n' "$bin"
