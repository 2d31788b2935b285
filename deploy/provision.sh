#!/bin/sh
# Installs ethergate on a Debian 12 or Amazon Linux 2023 system (an image
# being baked by Packer, or a chroot): the binary, the systemd unit, the
# default config, sysctls, the service user, and enables the service.
#
# Usage (as root):  provision.sh [SOURCE_DIR]
# SOURCE_DIR (default: this script's directory) holds
#   ethergate            the release binary for this machine's architecture
#   ethergate.service    deploy/systemd/ethergate.service
#   ethergate.toml       deploy/ethergate.toml (installed only if no config exists)
#   operator.md          docs/operator.md (optional)
#
# Idempotent: running it again upgrades the binary and unit and keeps the
# config. It does not start the service: on a bake instance the config is a
# placeholder until cloud-init writes the real one at first boot.
set -eu

SRC=${1:-$(dirname "$0")}
PREFIX=/usr
CONFIG_DIR=/etc/ethergate
UNIT_DIR=$PREFIX/lib/systemd/system

say() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
for f in ethergate ethergate.service ethergate.toml; do
    [ -f "$SRC/$f" ] || die "missing $SRC/$f"
done

# The binary must match this machine (x86_64 or aarch64 image).
machine=$(uname -m)
case "$machine" in
    x86_64) want="x86-64" ;;
    aarch64) want="aarch64" ;;
    *) die "unsupported architecture $machine" ;;
esac
if command -v file >/dev/null 2>&1; then
    file -L "$SRC/ethergate" | grep -qi "$want" || die "$SRC/ethergate is not a $machine binary"
fi

. /etc/os-release
case "${ID:-}" in
    debian | amzn) say "installing on $PRETTY_NAME ($machine)" ;;
    *) say "warning: untested distribution ${ID:-unknown}; continuing" ;;
esac

# sysctl(8) for ExecStartPre; useradd for the service user. Both are in the
# base images; install them only where a minimal root lacks them.
missing=""
command -v sysctl >/dev/null 2>&1 || missing="$missing procps"
command -v useradd >/dev/null 2>&1 || missing="$missing passwd"
if [ -n "$missing" ]; then
    case "$ID" in
        debian) DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q $missing ;;
        amzn) dnf install -y -q $(echo "$missing" | sed 's/passwd/shadow-utils/; s/procps/procps-ng/') ;;
        *) die "please install:$missing" ;;
    esac
fi

# The service user: no login, no home of its own beyond the state dir that
# systemd creates (StateDirectory=).
if ! getent group ethergate >/dev/null; then
    groupadd --system ethergate
fi
if ! getent passwd ethergate >/dev/null; then
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    useradd --system --gid ethergate --home-dir /var/lib/ethergate --no-create-home \
        --shell "$nologin" --comment "ethergate VPN and NAT" ethergate
fi
say "user ethergate: $(id ethergate)"

install -D -m 0755 "$SRC/ethergate" "$PREFIX/bin/ethergate"
install -D -m 0644 "$SRC/ethergate.service" "$UNIT_DIR/ethergate.service"

# Config: root-owned, readable by the service (it holds password hashes,
# which log users in: not world-readable).
install -d -m 0750 -o root -g ethergate "$CONFIG_DIR"
if [ ! -e "$CONFIG_DIR/ethergate.toml" ]; then
    install -m 0640 -o root -g ethergate "$SRC/ethergate.toml" "$CONFIG_DIR/ethergate.toml"
    say "installed the default config $CONFIG_DIR/ethergate.toml (replace it: cloud-init user-data)"
else
    say "kept the existing $CONFIG_DIR/ethergate.toml"
fi
install -D -m 0644 "$SRC/ethergate.toml" "$PREFIX/share/doc/ethergate/ethergate.toml.example"
if [ -f "$SRC/operator.md" ]; then
    install -D -m 0644 "$SRC/operator.md" "$PREFIX/share/doc/ethergate/operator.md"
fi

# Routing between the VPN taps, the private subnet and the uplink. The unit
# also sets it before start (ExecStartPre=+sysctl), this keeps it across
# reboots for anything started earlier.
cat > /etc/sysctl.d/60-ethergate.conf <<'EOF'
# ethergate: VPN clients and the private subnet are routed through this host.
net.ipv4.ip_forward = 1
EOF
# No modules-load.d entry: tun is loaded when /dev/net/tun is first opened,
# and the kernel loads tls itself when serve probes TCP_ULP "tls" (with
# CAP_NET_ADMIN); listing tls would fail the boot's systemd-modules-load on
# kernels built without it.

# Enable, do not start: systemctl works offline in a chroot or image build.
systemctl enable ethergate.service
say "enabled ethergate.service"
# The shipped config holds no password: a user with password_file gets a
# random one at the first start, readable only by the service.
if grep -q '^password_file' "$CONFIG_DIR/ethergate.toml"; then
    say "users with password_file get a random password at the first start, in /var/lib/ethergate (journalctl -u ethergate names the file)"
fi

# The installed config must be valid, or the first boot fails.
"$PREFIX/bin/ethergate" check --config "$CONFIG_DIR/ethergate.toml"
say "done"
