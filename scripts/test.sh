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
# rinetd, wrk, miniupnpd + upnpc/natpmpc + stund, nftables, Chromium.
PKGS=(iproute2 iperf3 curl ffmpeg socat haproxy nginx-light libnginx-mod-stream rinetd wrk
      miniupnpd-nftables miniupnpc natpmpc stun-server nftables chromium procps psmisc ca-certificates
      qemu-user)
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
echo "== go vet"
go vet ./...
echo "== 32-bit and other architectures (recvmmsg/sendmmsg layouts, cross builds)"
scripts/arch.sh
echo "== go test (unit, fuzz seeds, loopback and namespace end-to-end)"
# -p 2: two packages at a time on the 2-core machines this runs on.
go test -count=1 -p 2 -timeout 20m "$@" ./... 2>&1 | tee /tmp/camgate-test.log
status=${PIPESTATUS[0]}
passed=$(grep -cE '^ok ' /tmp/camgate-test.log || true)
failed=$(grep -cE '^(FAIL|--- FAIL)' /tmp/camgate-test.log || true)
echo "== packages: $passed passed, $failed failed"
if [ "$passed" -eq 0 ]; then
  echo "scripts/test.sh: no test package ran" >&2
  exit 1
fi
exit "$status"
