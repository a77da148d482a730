# Shared by scripts/deps/*.sh (sourced, never run on its own; test-deps.sh runs scripts/deps/*.sh only).

# A python3 >= 3.9 on PATH or under pyenv, printed; exits with a message naming the caller when none.
find_python() {
  local c
  for c in python3.11 /root/.pyenv/versions/3.11*/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
      command -v "$c"
      return
    fi
  done
  echo "$(basename "$0"): no python >= 3.9 found" >&2
  exit 1
}

# cache_lock DIR: makes DIR and holds its lock until the script exits, so that checkouts sharing a
# cache (~/.cache/omnisci-handoff) build into it one at a time and the later ones find the result.
cache_lock() {
  local fd
  mkdir -p "$1"
  exec {fd}>"$1/.lock"
  flock "$fd"
}

# go_build_k8s SRC OUT: builds the Go module SRC (commands of k8s.io/kubernetes) into OUT, static and
# stamped with the module's Kubernetes version as a release build is (helm and clients read /version).
go_build_k8s() {
  local src="$1" out="$2" version minor ldflags pkg
  version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$src/go.mod")"
  minor="$(cut -d. -f2 <<<"$version")"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" .)
  mv "$out.tmp" "$out"
}
