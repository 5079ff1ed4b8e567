#!/usr/bin/env bash
# Install everything the tests need (Debian packages, Go modules, the
# browser driver) and run every test. Needs root: the end-to-end tests
# build network namespaces. Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run as root (sudo $0): the end-to-end tests create network namespaces" >&2
  exit 1
fi

# Real peers the tests drive: curl, ffprobe, iperf3, socat, haproxy, nginx,
# rinetd, wrk, miniupnpd + upnpc/natpmpc + stund, nftables, Chromium;
# systemd-analyze and file for the package tests (packaging/); qemu-user
# for the 32-bit run of scripts/arch.sh.
PKGS=(iproute2 iperf3 curl ffmpeg socat haproxy nginx-light libnginx-mod-stream rinetd wrk
      miniupnpd-nftables miniupnpc natpmpc stun-server nftables chromium procps psmisc ca-certificates
      systemd file qemu-user
      gstreamer1.0-tools gstreamer1.0-plugins-good wireguard-go wireguard-tools zbar-tools nmap)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ -n "${CI:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${PKGS[@]}"
fi
# Debian's nginx starts a default server on port 80 on install; the tests
# run their own instances and do not want it.
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi

if [ -f web/package.json ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

export PATH="/usr/local/go/bin:$PATH"
go version
go mod download

# Every step runs even when an earlier one failed, so one CI run shows
# every problem; the script fails if any step or test failed.
failed_steps=()
step() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    failed_steps+=("$name")
  fi
}

# Pinned, so that a new staticcheck release cannot fail a run on its own;
# `go run` builds it from the module cache (the Go module proxy).
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

step "go vet" go vet ./...
# go.mod and go.sum say exactly what the code imports (direct
# requirements are not marked // indirect).
step "go mod tidy -diff" go mod tidy -diff
# The forward package's tests as a 32-bit program (386, or arm under
# qemu-arm where this kernel runs no 386 code) and cross builds for arm,
# arm64 and mipsle: see the script.
step "32-bit tests and cross builds" scripts/arch.sh
step "staticcheck (unused code included)" go run "$STATICCHECK" ./...

# go test output of every run below goes to one log, which the summary
# counts.
log=/tmp/camgate-test.log
: >"$log"
gotest() { go test "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; }

# The packages with concurrency (the data plane and its UDP batches, the
# RTSP relay, the VPN, the gateway's apply, the config transaction, the
# guard's state, the admin API) run once, under the race detector (none of
# them skips anything under -short but the browser); every other package
# runs plainly. -p 2: two packages at a time on the 2-core machines this
# runs on.
race_pkgs=(./internal/forward ./internal/udpbatch ./internal/rtsp ./internal/vpn ./internal/gateway ./internal/site ./internal/store ./internal/guard ./internal/admin ./internal/live ./internal/notify)
mapfile -t plain_pkgs < <(go list ./... | grep -vE '/internal/(forward|udpbatch|rtsp|vpn|gateway|site|store|guard|admin|notify)$')
step "go test (unit, fuzz seeds, loopback and namespace end-to-end)" \
  gotest -count=1 -p 2 -timeout 20m "$@" "${plain_pkgs[@]}"
# internal/live runs in both lists: plainly with its browser session, and
# under -race with -short, which skips the browser (it adds nothing there).
step "go test -race (forward, udpbatch, rtsp, vpn, gateway, site, store, guard, admin, live, notify)" \
  gotest -race -short -count=1 -p 2 -timeout 15m "$@" "${race_pkgs[@]}"

passed=$(grep -cE '^ok ' "$log" || true)
failed=$(grep -cE '^(FAIL|--- FAIL)' "$log" || true)
if [ ${#failed_steps[@]} -gt 0 ]; then
  printf '== failed step: %s\n' "${failed_steps[@]}"
fi
echo "== packages: $passed passed, $failed failed"
if [ "$passed" -eq 0 ]; then
  echo "scripts/test.sh: no test package ran" >&2
  exit 1
fi
if [ ${#failed_steps[@]} -gt 0 ] || [ "$failed" -gt 0 ]; then
  exit 1
fi
