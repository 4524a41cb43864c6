# vnetguard %postun: restart on upgrade (%systemd_postun_with_restart).
# rpm has no purge: an erase keeps /etc/vnetguard (edited configuration is
# saved as .rpmsave) and vnetguard's state.
live() {
	[ "${SYSTEMD_OFFLINE:-0}" != 1 ] && [ -d /run/systemd/system ]
}
if live; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart vnetguard.service >/dev/null 2>&1 || :
	fi
fi
exit 0
