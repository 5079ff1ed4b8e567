// Package packaging holds camgate's .deb packaging: the nfpm config, the
// hardened systemd unit, the starter config and the maintainer scripts,
// built by scripts/package.sh. It has no code of its own; its tests build
// the package, install it on this machine with dpkg, upgrade it over a
// running gateway and purge it, checking what an owner would see.
package packaging
