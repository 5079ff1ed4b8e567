#!/usr/bin/env bash
# Build camgate's .deb packages: one command, no toolchain but Go.
#
#   scripts/package.sh                 # amd64, arm64 and armhf into dist/
#   scripts/package.sh amd64           # only the architectures named
#   VERSION=1.2.0 scripts/package.sh   # the version to stamp (else from git)
#
# Each binary is built with CGO_ENABLED=0 and stamped with -ldflags -X
# (version, commit, build date: "camgate version" prints them), then nfpm
# (run as a Go module, pinned below) wraps it with packaging/nfpm.yaml.
# armhf is built for ARMv6 with VFP (GOARM=6), so one package runs on
# every Raspberry Pi, the Pi Zero and Pi 1 included.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
OUT=${OUT:-dist}
ARCHS=("$@")
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(amd64 arm64 armhf)

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]; then
	commit="$commit-dirty"
fi
if [ -z "${VERSION:-}" ]; then
	# A tag v1.2.0 gives 1.2.0; between tags, or with none, a version that
	# grows with the commit time so upgrades sort right: 0.1.0+git20261206.0301.abc1234.
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		VERSION=${tag#v}
	else
		ts=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d.%H%M 2>/dev/null || date -u +%Y%m%d.%H%M)
		VERSION="0.1.0+git$ts.${commit%%-dirty}"
	fi
fi
VERSION=${VERSION#v}
# SOURCE_DATE_EPOCH (reproducible builds) fixes the build date when set.
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

mkdir -p "$OUT/bin"
# nfpm is built once per checkout, whatever OUT is.
tools=$(pwd)/dist/.tools
if [ ! -x "$tools/nfpm" ]; then
	echo "== building nfpm ($NFPM)"
	GOBIN=$tools CGO_ENABLED=0 GOFLAGS= go install "$NFPM"
fi

ldflags="-s -w -X main.version=$VERSION -X main.commit=$commit -X main.buildDate=$date"
for arch in "${ARCHS[@]}"; do
	case $arch in
	amd64) goarch=amd64 goarm= ;;
	arm64) goarch=arm64 goarm= ;;
	armhf) goarch=arm goarm=6 ;;
	*) echo "scripts/package.sh: unknown architecture $arch (use amd64, arm64 or armhf)" >&2; exit 2 ;;
	esac
	bin=$OUT/bin/camgate-linux-$arch
	echo "== camgate $VERSION for $arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$bin" ./cmd/camgate
	# nfpm expands variables in name, arch and version but not in file
	# paths, so the binary's path is written into a copy of the config.
	sed "s|\${BIN}|$bin|" packaging/nfpm.yaml >"$OUT/nfpm-$arch.yaml"
	VERSION=$VERSION DEB_ARCH=$arch \
		"$tools/nfpm" package --config "$OUT/nfpm-$arch.yaml" --packager deb --target "$OUT/"
done
ls -l "$OUT"/camgate_"$VERSION"_*.deb
