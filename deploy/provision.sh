#!/bin/sh
# Installs ethergate on a Debian 12 or Amazon Linux 2023 system (an image
# being baked by Packer, or a chroot) and enables the service.
#
# On Debian it installs the package (ethergate_*.deb from
# deploy/package/build-deb.sh): binary, unit, default config as a conffile,
# sysctl, man page, completions; its postinst creates the service user and
# enables the unit. Elsewhere (Amazon Linux 2023: no .deb) it installs the
# same files itself and runs setup-system.sh, which the postinst runs too.
#
# Usage (as root):  provision.sh [SOURCE_DIR]
# SOURCE_DIR (default: this script's directory) holds
#   ethergate_*.deb      the package for this machine's architecture (Debian)
#   ethergate            the release binary for this machine's architecture
#   ethergate.service    deploy/systemd/ethergate.service
#   ethergate.toml       deploy/ethergate.toml (installed only if no config exists)
#   setup-system.sh      deploy/setup-system.sh
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
for f in ethergate ethergate.service ethergate.toml setup-system.sh; do
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

deb=$(ls "$SRC"/ethergate_*.deb 2>/dev/null | head -n 1 || true)
if [ "$ID" = debian ] && [ -n "$deb" ]; then
    # --force-confold: an operator's edited config is kept on re-provision.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confold install -y -q --no-install-recommends --reinstall "$deb"
    say "installed the package $(basename "$deb")"
else
    install -D -m 0755 "$SRC/ethergate" "$PREFIX/bin/ethergate"
    install -D -m 0644 "$SRC/ethergate.service" "$UNIT_DIR/ethergate.service"
    install -D -m 0755 "$SRC/setup-system.sh" "$PREFIX/lib/ethergate/setup-system.sh"
    install -d -m 0750 "$CONFIG_DIR"
    if [ ! -e "$CONFIG_DIR/ethergate.toml" ]; then
        install -m 0640 "$SRC/ethergate.toml" "$CONFIG_DIR/ethergate.toml"
        say "installed the default config $CONFIG_DIR/ethergate.toml (replace it: cloud-init user-data)"
    else
        say "kept the existing $CONFIG_DIR/ethergate.toml"
    fi
    install -D -m 0644 "$SRC/ethergate.toml" "$PREFIX/share/doc/ethergate/ethergate.toml.example"
    if [ -f "$SRC/operator.md" ]; then
        install -D -m 0644 "$SRC/operator.md" "$PREFIX/share/doc/ethergate/operator.md"
    fi
    # Routing between the VPN taps, the private subnet and the uplink. The
    # unit also sets it before start (ExecStartPre=+sysctl); this keeps it
    # across reboots for anything started earlier.
    install -d -m 0755 "$PREFIX/lib/sysctl.d"
    printf '%s\n' \
        "# ethergate: VPN clients and the private subnet are routed through this host." \
        "net.ipv4.ip_forward = 1" > "$PREFIX/lib/sysctl.d/60-ethergate.conf"
    "$PREFIX/lib/ethergate/setup-system.sh"
fi
# No modules-load.d entry: tun is loaded when /dev/net/tun is first opened,
# and the kernel loads tls itself when serve probes TCP_ULP "tls" (with
# CAP_NET_ADMIN); listing tls would fail the boot's systemd-modules-load on
# kernels built without it.
say "user ethergate: $(id ethergate)"
say "enabled ethergate.service"
# The shipped config holds no password: a user with password_file gets a
# random one at the first start, readable only by the service.
if grep -q '^password_file' "$CONFIG_DIR/ethergate.toml"; then
    say "users with password_file get a random password at the first start, in /var/lib/ethergate (journalctl -u ethergate names the file)"
fi

# The installed config must be valid, or the first boot fails.
"$PREFIX/bin/ethergate" check --config "$CONFIG_DIR/ethergate.toml"
say "done"
