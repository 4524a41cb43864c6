# vnetguard %preun: on erase, disable and stop (%systemd_preun).
live() {
	[ "${SYSTEMD_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]
}
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable vnetguard.service vnetguard-firstboot.service >/dev/null 2>&1 || :
	if live; then
		systemctl stop vnetguard.service vnetguard-firstboot.service >/dev/null 2>&1 || :
	fi
fi
exit 0
