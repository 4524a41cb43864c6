#!/bin/sh
# vnetguard.prerm: stop the daemon on removal (a live host only).
set -e

live() {
	[ -z "${DPKG_ROOT:-}" ] && [ "${SYSTEMD_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]
}

if [ "$1" = remove ] && live; then
	deb-systemd-invoke stop vnetguard.service vnetguard-firstboot.service >/dev/null || true
fi
exit 0
