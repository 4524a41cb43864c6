#!/bin/sh
# vnetguard.postrm: remove keeps the configuration and the user's network
# definitions (/etc/vnetguard); purge removes them and vnetguard's state.
set -e

live() {
	[ -z "${DPKG_ROOT:-}" ] && [ "${SYSTEMD_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]
}

case "$1" in
remove)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper mask vnetguard.service >/dev/null || true
	fi
	;;
purge)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge vnetguard.service >/dev/null || true
		deb-systemd-helper unmask vnetguard.service >/dev/null || true
	fi
	# Enabled by 'vnetguard postinstall' in an image build.
	rm -f "${DPKG_ROOT:-}/etc/systemd/system/multi-user.target.wants/vnetguard-firstboot.service"
	rm -rf "${DPKG_ROOT:-}/var/lib/vnetguard" "${DPKG_ROOT:-}/var/cache/vnetguard" \
		"${DPKG_ROOT:-}/run/vnetguard" "${DPKG_ROOT:-}/etc/vnetguard"
	;;
esac
if live; then
	systemctl --system daemon-reload >/dev/null || true
fi
exit 0
