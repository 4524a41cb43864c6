# Helpers for use inside the lab (scripts/lab run / shell); source this file.
# They only touch the lab's own network namespace and namespaces they create
# (ip netns works because /run, and so /run/netns, is the lab's own tmpfs).
#
#   lab_uplink NAME [ROUTER_CIDR]  a veth NAME in the lab host whose far end,
#                                  rt-NAME, sits in namespace rt-NAME (the
#                                  "router" of a LAN), addressed with
#                                  ROUTER_CIDR (e.g. 192.168.122.1/24) when
#                                  given. NAME is up and unaddressed: give it
#                                  an address with `ip addr add`, or hand it
#                                  to NetworkManager (lab_nm_static).
#   lab_nm_static NAME CIDR [NMCLI-SETTINGS...]
#                                  NetworkManager manages NAME and activates
#                                  connection NAME on it with static CIDR
#                                  (IPv4 or IPv6; the other family disabled)
#   lab_uplink_exec NAME CMD...    run CMD in the router namespace
#   lab_uplink_del NAME
#
#   lab_guest NAME BRIDGE          namespace NAME whose interface NAME is
#                                  plugged into BRIDGE (host end vg-NAME),
#                                  running a DHCPv4 client and taking SLAAC
#                                  addresses from router advertisements
#   lab_guest_exec NAME CMD...     run CMD in the guest
#   lab_guest_addr NAME [4|6]      the guest's global addresses (CIDR form)
#   lab_guest_wait_lease NAME PREFIX [SECS]
#                                  wait until the guest has an address in PREFIX
#   lab_guest_del NAME
#
#   lab_private PATH...            succeed only when every PATH (or, for one
#                                  that does not exist, its nearest existing
#                                  parent) lies on a mount the lab made: an
#                                  overlay lab-* whose upper layer is in the
#                                  lab's /run, or a tmpfs lab-*; name the
#                                  first that does not otherwise
#   lab_dpkg_install DEB...        dpkg -i the packages, in a lab started with
#                                  --dpkg only, and only after lab_private
#                                  holds for every path in them and every
#                                  directory dpkg and maintainer scripts
#                                  write; refuses (status 3) otherwise
#
# Environment: LAB_GUEST_MAC sets the next guest's MAC address.
# LAB_DHCP_CLIENT=dhcpcd (default) or dhclient. dhcpcd watches
# the carrier and asks for a lease again when the link comes back (as when a
# bridge port is re-plugged); ISC dhclient does not, it only renews at T1.
# The guest's interface is named after the guest, not eth0: the DHCP
# clients keep pid files, sockets and leases per interface name under the
# shared /run and /var/lib, so names must be unique across guests.

_lab_logdir() { echo "${LAB_LOGDIR:-/tmp}"; }

_lab_inside() {
	if [ "${LAB:-}" != 1 ]; then
		echo "lab-lib: not inside the lab (use scripts/lab run / scripts/lab shell)" >&2
		return 1
	fi
}

# Interface names have at most 15 bytes; NAME gets a 3-byte prefix.
_lab_name_ok() {
	if [ ${#1} -gt 12 ] || [ -z "$1" ]; then
		echo "lab-lib: name '$1' must have 1 to 12 characters (interfaces rt-NAME and vg-NAME)" >&2
		return 2
	fi
}

lab_uplink() {
	_lab_inside || return 1
	_lab_name_ok "$1" || return 2
	local name=$1 cidr=${2:-}
	local rt="rt-$name"
	ip netns add "$rt"
	# Created directly with its far end in the router's namespace.
	ip link add "$name" type veth peer name "$rt" netns "$rt"
	ip -n "$rt" link set lo up
	ip -n "$rt" link set "$rt" up
	if [ -n "$cidr" ]; then
		# nodad: a router address that is usable at once (IPv6).
		ip -n "$rt" addr add "$cidr" dev "$rt" nodad 2>/dev/null ||
			ip -n "$rt" addr add "$cidr" dev "$rt"
	fi
	ip link set "$name" up
}

lab_uplink_exec() {
	local name=$1
	shift
	ip netns exec "rt-$name" "$@"
}

lab_nm_static() {
	_lab_inside || return 1
	local name=$1 cidr=$2
	shift 2
	local ip=(ipv4.method manual ipv4.addresses "$cidr" ipv6.method disabled)
	case $cidr in *:*) ip=(ipv4.method disabled ipv6.method manual ipv6.addresses "$cidr") ;; esac
	nmcli device set "$name" managed yes
	nmcli connection add type ethernet ifname "$name" con-name "$name" "${ip[@]}" "$@" >/dev/null
	nmcli --wait 20 connection up "$name" >/dev/null
}

lab_uplink_del() {
	local name=$1
	nmcli connection delete "$name" >/dev/null 2>&1 || true
	# shellcheck disable=SC2046
	kill $(ip netns pids "rt-$name" 2>/dev/null) 2>/dev/null || true
	ip link del "$name" 2>/dev/null || true
	ip netns del "rt-$name" 2>/dev/null || true
}

lab_guest() {
	_lab_inside || return 1
	_lab_name_ok "$1" || return 2
	local name=$1 bridge=$2
	local dir="/run/lab/$name" log
	log="$(_lab_logdir)/dhcp-$name.log"
	mkdir -p "$dir" "/etc/netns/$name"
	# `ip netns exec` binds /etc/netns/NAME/* over /etc: the guest's DHCP
	# client may write its own resolv.conf without touching the lab host's.
	: >"/etc/netns/$name/resolv.conf"
	ip netns add "$name"
	# The host end is named vg-NAME (the bridge port); the guest end NAME.
	# LAB_GUEST_MAC: the guest's MAC address (for a DHCP host entry).
	ip link add "vg-$name" type veth peer name "$name" ${LAB_GUEST_MAC:+address "$LAB_GUEST_MAC"} netns "$name"
	ip link set "vg-$name" master "$bridge" up
	ip -n "$name" link set lo up
	# SLAAC from router advertisements (accept_ra=2: even if forwarding were
	# on); no DAD so addresses are usable at once.
	ip netns exec "$name" sysctl -qw "net.ipv6.conf.$name.accept_ra=2" "net.ipv6.conf.$name.autoconf=1" \
		"net.ipv6.conf.$name.accept_dad=0"
	ip -n "$name" link set "$name" up
	local client
	case ${LAB_DHCP_CLIENT:-dhcpcd} in
	dhcpcd)
		# DHCPv4 only (the kernel does SLAAC); no hooks that would write
		# resolv.conf, hostname or NTP settings; keep trying for ever.
		# -B: stay in the foreground.
		cat >"$dir/dhcpcd.conf" <<-CONF
			ipv4only
			noarp
			nohook resolv.conf, hostname, timezone, ntp
			option subnet_mask, routers
			timeout 0
			reboot 1
		CONF
		client="dhcpcd -B -4 -f $dir/dhcpcd.conf $name"
		;;
	dhclient)
		# -d foreground; own pid and lease files; the standard
		# dhclient-script sets the address and routes with ip.
		client="dhclient -4 -d -v -pf $dir/dhclient.pid -lf $dir/dhclient.leases $name"
		;;
	*)
		echo "lab-lib: LAB_DHCP_CLIENT must be dhcpcd or dhclient" >&2
		return 2
		;;
	esac
	# Start the client once the bridge forwards the port. With STP on (as
	# in libvirt's default network) a new port listens and learns for two
	# forward delays (2 s each at least) and drops everything meanwhile:
	# a client started at once loses its first requests and, backing off,
	# takes 12-15 s instead of 4 to get a lease. In the background, so
	# guests come up in parallel. Output to the log, never to the caller's
	# stdout (a Go test reading it would wait for ever).
	(
		state=/sys/class/net/vg-$name/brport/state
		for _ in $(seq 200); do
			[ -e "$state" ] || exit 0 # guest deleted meanwhile
			[ "$(cat "$state")" = 3 ] && break
			sleep 0.05
		done
		# shellcheck disable=SC2086
		exec ip netns exec "$name" $client
	) </dev/null >"$log" 2>&1 &
	echo $! >"$dir/client.pid"
}

lab_guest_exec() {
	local name=$1
	shift
	ip netns exec "$name" "$@"
}

lab_guest_del() {
	local name=$1
	# The client (or the wait before it), and every process in the guest:
	# whatever a test ran there.
	[ -f "/run/lab/$name/client.pid" ] && kill "$(cat "/run/lab/$name/client.pid")" 2>/dev/null
	# shellcheck disable=SC2046
	kill $(ip netns pids "$name" 2>/dev/null) 2>/dev/null || true
	ip link del "vg-$name" 2>/dev/null || true
	ip netns del "$name" 2>/dev/null || true
	rm -rf "/run/lab/$name" "/etc/netns/$name"
}

lab_guest_addr() {
	local name=$1 fam=${2:-4}
	ip -n "$name" -"$fam" -o addr show dev "$name" scope global | awk '{print $4}'
}

# lab_guest_wait_lease NAME PREFIX [SECS]: any prefix length, either family.
lab_guest_wait_lease() {
	local name=$1 prefix=$2 secs=${3:-30}
	python3 - "$name" "$prefix" "$secs" <<-'PY' && return 0
		import ipaddress, json, subprocess, sys, time
		name, prefix, secs = sys.argv[1], ipaddress.ip_network(sys.argv[2], strict=False), float(sys.argv[3])
		deadline = time.monotonic() + secs
		while True:
		    out = subprocess.run(["ip", "-n", name, "-j", "addr", "show", "dev", name],
		                         capture_output=True, text=True).stdout or "[]"
		    for link in json.loads(out):
		        for a in link.get("addr_info", []):
		            if a.get("scope") == "global" and ipaddress.ip_address(a["local"]) in prefix:
		                sys.exit(0)
		    if time.monotonic() > deadline:
		        sys.exit(1)
		    time.sleep(0.05)
	PY
	echo "lab-lib: guest $name got no address in $prefix within ${secs}s (has: $(lab_guest_addr "$name" 4) $(lab_guest_addr "$name" 6))" >&2
	return 1
}

# lab_private PATH...: see the top of this file. Every mount scripts/lab
# makes is named lab-*; the real host has none of that name, and a mount of
# the host's seen inside the lab (its / above all) has another.
lab_private() {
	_lab_inside || return 1
	local p q line src fstype opts upper
	for p in "$@"; do
		# A link is written where it is, not where it points.
		q=$p
		[ -L "$q" ] && q=$(dirname "$q")
		while [ ! -e "$q" ] && [ "$q" != / ]; do
			q=$(dirname "$q")
		done
		line=$(findmnt -n -o SOURCE,FSTYPE,OPTIONS --target "$q") || {
			echo "lab-lib: $p: findmnt failed" >&2
			return 1
		}
		read -r src fstype opts <<<"$line"
		case $src/$fstype in
		lab-*/tmpfs) continue ;;
		lab-*/overlay)
			upper=$(tr , '\n' <<<"$opts" | sed -n 's/^upperdir=//p')
			case $upper in
			/run/lab/*)
				line=$(findmnt -n -o SOURCE,FSTYPE --target "$upper")
				[ "$line" = "lab-run tmpfs" ] && continue
				echo "lab-lib: $p: the overlay's upper layer $upper is on '$line', not the lab's /run" >&2
				return 1
				;;
			esac
			;;
		esac
		echo "lab-lib: $p is on $src ($fstype, $(findmnt -n -o TARGET --target "$q")), not a mount of the lab's own" >&2
		return 1
	done
}

# The directories dpkg itself and the maintainer scripts it runs write:
# its database and log, deb-systemd-helper's state and unit links,
# debconf's database, triggers' caches (man-db's /var/cache/man). All of
# /etc, /usr and /var is checked, and with them every path a package holds.
_lab_dpkg_dirs=(/var/lib/dpkg /var/log/dpkg.log /var/lib/systemd /var/cache /var/lib /var/backups /var /etc /etc/systemd/system /usr)

lab_dpkg_install() {
	_lab_inside || return 1
	if [ "${LAB_DPKG:-0}" != 1 ]; then
		echo "lab-lib: refusing dpkg -i: this lab's package database is the host's, read-only (start it with scripts/lab run --dpkg)" >&2
		return 3
	fi
	local deb list paths=()
	for deb in "$@"; do
		# Every path the package holds, as dpkg will write it.
		list=$(dpkg-deb --fsys-tarfile "$deb" | tar -t) && [ -n "$list" ] || {
			echo "lab-lib: cannot read $deb" >&2
			return 3
		}
		mapfile -t -O ${#paths[@]} paths < <(sed -e 's|^\./|/|' -e 's|/$||' -e '/^$/d' <<<"$list")
	done
	if ! lab_private "${_lab_dpkg_dirs[@]}" "${paths[@]}"; then
		echo "lab-lib: refusing dpkg -i: it would write outside the lab's private mounts" >&2
		return 3
	fi
	echo "lab-lib: ${#paths[@]} package paths and ${_lab_dpkg_dirs[*]} are on the lab's own mounts: dpkg -i $*" >&2
	DEBIAN_FRONTEND=noninteractive dpkg -i "$@"
}
