#!/bin/sh
# The system side of an ethergate install, shared by the .deb's postinst and
# provision.sh (Amazon Linux 2023, where there is no .deb): the service user,
# the config directory's owner and modes, and the enabled unit.
#
# Usage (as root): setup-system.sh
# Idempotent. Does not start the service (the config may still be a
# placeholder that cloud-init replaces at first boot).
set -eu

CONFIG_DIR=/etc/ethergate

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

# Config: root-owned, readable by the service (it holds password hashes,
# which log users in: not world-readable).
install -d -m 0750 -o root -g ethergate "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/ethergate.toml" ]; then
    chown root:ethergate "$CONFIG_DIR/ethergate.toml"
    chmod 0640 "$CONFIG_DIR/ethergate.toml"
fi

# systemctl works offline in a chroot or an image build.
systemctl enable ethergate.service >/dev/null 2>&1 || systemctl enable ethergate.service
