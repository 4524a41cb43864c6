# vnetguard %post: systemd presets on a first install (%systemd_post);
# service actions only on a live, booted host.
live() {
	[ "${SYSTEMD_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]
}
if [ "$1" -eq 1 ]; then
	systemctl --no-reload preset vnetguard.service >/dev/null 2>&1 || :
fi
if live; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
