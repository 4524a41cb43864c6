# Helpers for use inside the lab (source this file). They build only inside
# the lab's own network namespace and the namespaces they create.
#
#   lab_uplink NAME [ROUTER_CIDR]  a veth NAME in the lab host whose far end
#                                  sits in namespace rt-NAME (the "router"),
#                                  addressed with ROUTER_CIDR when given
#   lab_guest NAME BRIDGE          namespace NAME with interface NAME plugged
#                                  into BRIDGE, running a DHCP client (dhcpcd,
#                                  which re-leases on carrier loss) and
#                                  taking SLAAC addresses
#   lab_guest_addr NAME [4|6]      the guest's global addresses
#   lab_guest_wait_lease NAME PREFIX SECS
#                                  wait until the guest has an address in PREFIX
#   lab_guest_del NAME / lab_uplink_del NAME

lab_uplink() {
	local name=$1 cidr=${2:-}
	ip netns add "rt-$name"
	ip link add "$name" type veth peer name "rt-$name" netns "rt-$name"
	ip -n "rt-$name" link set lo up
	ip -n "rt-$name" link set "rt-$name" up
	if [ -n "$cidr" ]; then
		ip -n "rt-$name" addr add "$cidr" dev "rt-$name" nodad 2>/dev/null ||
			ip -n "rt-$name" addr add "$cidr" dev "rt-$name"
	fi
	ip link set "$name" up
}

lab_uplink_del() {
	ip link del "$1" 2>/dev/null || true
	ip netns del "rt-$1" 2>/dev/null || true
}

lab_guest() {
	local name=$1 bridge=$2
	local dir="/run/lab/$name"
	mkdir -p "$dir"
	ip netns add "$name"
	# The host end is named vg-NAME (a bridge port); the guest end NAME.
	ip link add "vg-$name" type veth peer name "$name" netns "$name"
	ip link set "vg-$name" master "$bridge" up
	ip -n "$name" link set lo up
	ip netns exec "$name" sysctl -qw "net.ipv6.conf.$name.accept_ra=2" "net.ipv6.conf.$name.autoconf=1" \
		"net.ipv6.conf.$name.accept_dad=0"
	ip -n "$name" link set "$name" up
	# dhcpcd does DHCPv4 only here (the kernel does SLAAC); it watches the
	# carrier and asks again when the link comes back, as a real guest's
	# client does after its virtual cable was re-plugged.
	cat >"$dir/dhcpcd.conf" <<-CONF
		ipv4only
		noarp
		nohook resolv.conf, hostname, timezone, ntp
		option subnet_mask, routers
		timeout 0
		reboot 1
	CONF
	ip netns exec "$name" dhcpcd --config "$dir/dhcpcd.conf" -B -4 -f "$dir/dhcpcd.conf" \
		"$name" >"${LAB_LOGDIR:-/tmp}/dhcpcd-$name.log" 2>&1 &
	echo $! >"$dir/dhcpcd.pid"
}

lab_guest_del() {
	local name=$1
	[ -f "/run/lab/$name/dhcpcd.pid" ] && kill "$(cat "/run/lab/$name/dhcpcd.pid")" 2>/dev/null
	ip link del "vg-$name" 2>/dev/null || true
	ip netns del "$name" 2>/dev/null || true
	rm -rf "/run/lab/$name"
}

lab_guest_addr() {
	local name=$1 fam=${2:-4}
	ip -n "$name" -"$fam" -o addr show dev "$name" scope global | awk '{print $4}'
}

# lab_guest_wait_lease NAME PREFIX SECS: prefix match is done by python's
# ipaddress, so any prefix length works.
lab_guest_wait_lease() {
	local name=$1 prefix=$2 secs=${3:-30} i fam=4
	case $prefix in *:*) fam=6 ;; esac
	for ((i = 0; i < secs * 10; i++)); do
		for a in $(lab_guest_addr "$name" $fam); do
			if python3 -c 'import ipaddress,sys; sys.exit(0 if ipaddress.ip_interface(sys.argv[1]).ip in ipaddress.ip_network(sys.argv[2]) else 1)' "$a" "$prefix"; then
				return 0
			fi
		done
		sleep 0.1
	done
	echo "lab: guest $name got no address in $prefix within ${secs}s" >&2
	return 1
}
