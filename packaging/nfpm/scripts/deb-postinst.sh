#!/bin/sh
# vnetguard.postinst: deb-systemd-helper conventions (as dh_installsystemd
# writes them); service actions only on a live, booted host, never in a
# chroot or an image build.
set -e

live() {
	[ -z "${DPKG_ROOT:-}" ] && [ "${SYSTEMD_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]
}

case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		# Only removes a mask deb-systemd-helper made at removal.
		deb-systemd-helper unmask vnetguard.service >/dev/null || true
		# was-enabled is true on a first install: enable then.
		if deb-systemd-helper --quiet was-enabled vnetguard.service; then
			deb-systemd-helper enable vnetguard.service >/dev/null || true
		else
			deb-systemd-helper update-state vnetguard.service >/dev/null || true
		fi
	fi
	if live; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then action=try-restart; else action=start; fi
		deb-systemd-invoke "$action" vnetguard.service >/dev/null || true
	fi
	;;
esac
exit 0
