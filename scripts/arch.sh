#!/usr/bin/env bash
# The data plane lays kernel structures (struct mmsghdr, cmsghdr) out per
# architecture; a layout right for 64-bit only misreads every datagram's
# sender on 32-bit (issue #13.11). This runs the forward package's tests
# as a 32-bit program and cross-builds the binary for the boards camgate
# is likely to run on (Raspberry Pi OS armhf and arm64, MIPS routers).
#
# GOARCH=386 runs natively where the kernel runs 32-bit x86 programs.
# Where it cannot (some sandboxes run no 32-bit code; qemu-i386 crashes
# Go's 386 runtime), the same tests run as GOARCH=arm under qemu-arm, the
# architecture of Raspberry Pi OS. Under emulation four tests are skipped:
# qemu does not pass TCP_CONGESTION to the kernel, the 64-connection
# stress test does not finish under instruction emulation, and two tests
# re-execute the test binary, which only qemu can run.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

GOARCH=386 go test -c -o "$tmp/forward-386.test" ./internal/forward/
if "$tmp/forward-386.test" -test.run '^$' >/dev/null 2>&1; then
  echo "forward tests, GOARCH=386"
  GOARCH=386 go test -count=1 ./internal/forward/
else
  echo "forward tests, GOARCH=arm GOARM=7 under qemu-arm (this kernel runs no 386 programs)"
  GOARCH=arm GOARM=7 go test -c -o "$tmp/forward-arm.test" ./internal/forward/
  (cd internal/forward && qemu-arm "$tmp/forward-arm.test" -test.count=1 \
    -test.skip 'TestDeviceCongestion|TestManyConcurrentMixed|TestPrivilegedBindAsNobody|TestLowFDLimitStalledReaders')
fi

for target in arm:7 arm64: mipsle:; do
  arch=${target%%:*} arm=${target#*:}
  echo "build ./cmd/camgate GOARCH=$arch${arm:+ GOARM=$arm}"
  GOARCH=$arch GOARM=$arm go build -o /dev/null ./cmd/camgate
done
