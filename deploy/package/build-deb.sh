#!/bin/sh
# Builds ethergate_VERSION_ARCH.deb from a built binary and the repository's
# deploy/ and docs/ files, with dpkg-deb (no other tool needed).
#
# Usage: build-deb.sh BINARY OUTDIR
# VERSION is the binary's own (`ethergate --version`), ARCH this machine's
# (dpkg --print-architecture). Cross-building (an arm64 package on x86_64):
# DEB_ARCH=arm64 and HOST_BIN=<a binary of the same version that runs here>,
# which prints the version, man pages and completions.
#
# The package: /usr/bin/ethergate; the systemd unit; the default config as a
# conffile under /etc/ethergate; sysctl; the man page and shell completions
# generated from the binary's CLI definition; docs. Maintainer scripts: see
# deploy/package/{postinst,prerm,postrm} and deploy/setup-system.sh.
set -eu

BIN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
HOST_BIN=${HOST_BIN:-$BIN}
VERSION=$("$HOST_BIN" --version | awk '{print $2}')
ARCH=${DEB_ARCH:-$(dpkg --print-architecture)}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE"

d() { install -d -m 0755 "$STAGE/$1"; }
f() { install -D -m "$1" "$2" "$STAGE/$3"; }

f 0755 "$BIN" usr/bin/ethergate
strip --strip-unneeded "$STAGE/usr/bin/ethergate" 2>/dev/null || true
f 0644 "$REPO/deploy/systemd/ethergate.service" usr/lib/systemd/system/ethergate.service
f 0640 "$REPO/deploy/ethergate.toml" etc/ethergate/ethergate.toml
f 0755 "$REPO/deploy/setup-system.sh" usr/lib/ethergate/setup-system.sh
d usr/lib/sysctl.d
cat > "$STAGE/usr/lib/sysctl.d/60-ethergate.conf" <<'SYSCTL'
# ethergate: VPN clients and the private subnet are routed through this host.
net.ipv4.ip_forward = 1
SYSCTL
chmod 0644 "$STAGE/usr/lib/sysctl.d/60-ethergate.conf"

d usr/share/man/man1
"$HOST_BIN" manpages "$STAGE/usr/share/man/man1"
gzip -9n "$STAGE"/usr/share/man/man1/*.1
d usr/share/bash-completion/completions
"$HOST_BIN" completions bash > "$STAGE/usr/share/bash-completion/completions/ethergate"
d usr/share/zsh/vendor-completions
"$HOST_BIN" completions zsh > "$STAGE/usr/share/zsh/vendor-completions/_ethergate"
d usr/share/fish/vendor_completions.d
"$HOST_BIN" completions fish > "$STAGE/usr/share/fish/vendor_completions.d/ethergate.fish"

DOC=usr/share/doc/ethergate
for doc in operator.md clients.md; do
    f 0644 "$REPO/docs/$doc" "$DOC/$doc"
done
f 0644 "$REPO/deploy/ethergate.toml" "$DOC/ethergate.toml.example"
cat > "$STAGE/$DOC/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ethergate

Files: *
License: MIT or Apache-2.0
COPYRIGHT
find "$STAGE/usr/share" -type f -exec chmod 0644 {} +

d DEBIAN
for script in postinst prerm postrm; do
    f 0755 "$HERE/$script" "DEBIAN/$script"
done
echo /etc/ethergate/ethergate.toml > "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: ethergate
Version: $VERSION
Architecture: $ARCH
Maintainer: ethergate developers <ethergate@localhost>
Installed-Size: $SIZE
Depends: libc6 (>= 2.36), adduser | passwd, procps
Section: net
Priority: optional
Description: SoftEther-compatible VPN server and eBPF NAT in one program
 ethergate replaces a NAT instance running iptables and a SoftEther VPN
 server: SNAT/DNAT in eBPF (XDP or tc), a SoftEther-protocol SSL-VPN with
 virtual hubs, DHCP and a local bridge, managed from one config file.
CONTROL

mkdir -p "$OUT"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT/ethergate_${VERSION}_${ARCH}.deb" >/dev/null
echo "$OUT/ethergate_${VERSION}_${ARCH}.deb"
