#!/usr/bin/python3
"""Reference dispatcher hook for the hook-cost benchmark (run with Debian's
python3, which has python3-libvirt): what a competent Python script using libvirt's Python bindings would do for the same check —
list every libvirt network, read its XML, and test its subnets for overlap
with the host's addresses and routes of every table (read with ip -j).
It reports clashes and acts on nothing. Not part of vnetguard."""
import ipaddress
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import libvirt


def host_prefixes():
    out = []
    addrs = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, check=True).stdout)
    for link in addrs:
        for a in link.get("addr_info", []):
            if a.get("scope") == "host":
                continue
            net = ipaddress.ip_network(f'{a["local"]}/{a["prefixlen"]}', strict=False)
            out.append((net, link["ifname"]))
    for fam in ("-4", "-6"):
        routes = json.loads(subprocess.run(["ip", "-j", fam, "route", "show", "table", "all"], capture_output=True, check=True).stdout)
        for r in routes:
            dst = r.get("dst", "default")
            if dst == "default" or r.get("type") in ("local", "broadcast", "multicast", "anycast"):
                continue
            try:
                out.append((ipaddress.ip_network(dst, strict=False), r.get("dev", "")))
            except ValueError:
                pass
    return out


def network_subnets(xml):
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    name = bridge.get("name") if bridge is not None else ""
    subnets = []
    for ip in root.findall("ip"):
        addr = ip.get("address")
        if ip.get("prefix"):
            subnets.append(ipaddress.ip_network(f"{addr}/{ip.get('prefix')}", strict=False))
        elif ip.get("netmask"):
            subnets.append(ipaddress.ip_network(f"{addr}/{ip.get('netmask')}", strict=False))
    return name, subnets


def main():
    conn = libvirt.open("qemu:///system")
    host = host_prefixes()
    clashes = 0
    for net in conn.listAllNetworks():
        if not net.isActive():
            continue
        bridge, subnets = network_subnets(net.XMLDesc(0))
        for s in subnets:
            for h, dev in host:
                if dev != bridge and s.version == h.version and s.overlaps(h):
                    clashes += 1
    conn.close()
    if clashes:
        print(f"{clashes} clashes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
