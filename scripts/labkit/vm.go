package labkit

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// GuestVM is a real qemu guest in the lab: a libvirt domain (TCG; nested
// KVM hangs these machines' guests) that boots scripts/vm's Debian cloud
// kernel and busybox initramfs directly, with one virtio NIC on a libvirt
// network. Its DHCPv4 client starts afresh whenever the NIC's carrier comes
// back, as dhcpcd and NetworkManager do, and it reports carrier changes and
// leases on its serial console, which goes to a file in LAB_LOGDIR. The
// kernel answers pings.
//
// virsh drives it, not go-libvirt: the helper stays independent of the code
// under test.
type GuestVM struct {
	name    string
	mac     net.HardwareAddr
	console string
}

// guestEventTag starts each line scripts/vm/init writes for the host.
const guestEventTag = "VNETGUARD-GUEST "

// guestCmdline boots fast under TCG: a quiet console, no mitigations, no
// PS/2 probing, no second timer check.
const guestCmdline = "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off" +
	" no_timer_check tsc=reliable i8042.noaux i8042.nokbd random.trust_cpu=on"

// GuestDir is where scripts/vm/build-guest keeps vmlinuz and initrd.img:
// $LAB_GUEST_DIR, or /var/cache/vnetguard-lab/guest.
func GuestDir() string {
	if d := os.Getenv("LAB_GUEST_DIR"); d != "" {
		return d
	}
	return "/var/cache/vnetguard-lab/guest"
}

var (
	buildGuestOnce sync.Once
	buildGuestErr  error
)

// buildGuest runs scripts/vm/build-guest once per test binary. It returns at
// once when the cache is current, rebuilds from the cached .debs when
// scripts/vm changed, and downloads only when the cache has no .debs (which
// fails inside the lab: it has no network).
func buildGuest() error {
	buildGuestOnce.Do(func() {
		if _, err := Try(filepath.Join(scriptsDir(), "vm", "build-guest")); err != nil {
			buildGuestErr = fmt.Errorf("scripts/vm/build-guest: %w (outside the lab, "+
				"`scripts/lab install` or scripts/vm/build-guest fetches the kernel and busybox)", err)
		}
	})
	return buildGuestErr
}

// StartGuestVM starts a transient domain called name with its NIC on the
// libvirt network named network, and destroys it at cleanup. The MAC
// address follows from name (see GuestMAC). It returns once qemu runs; the
// guest boots to a lease in about 9 s on libvirt's default network (1.5 s
// of kernel, 4 s of STP on the new bridge port, 3 s of dnsmasq's ping
// check): see WaitLease.
func StartGuestVM(t testing.TB, name, network string) *GuestVM {
	t.Helper()
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		t.Fatalf("StartGuestVM: bad domain name %q", name)
	}
	if err := buildGuest(); err != nil {
		t.Fatal(err)
	}
	logdir := os.Getenv("LAB_LOGDIR")
	if logdir == "" {
		logdir = t.TempDir()
	}
	vm := &GuestVM{
		name:    name,
		mac:     GuestMAC(name),
		console: filepath.Join(logdir, "vm-"+name+".console.log"),
	}
	// A console file left by an earlier VM of the same name would lend
	// this one its leases.
	if err := os.Remove(vm.console); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	dir := GuestDir()
	domXML := guestDomainXML(name, network, vm.mac,
		filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img"), vm.console)
	file := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(file, []byte(domXML), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Try("virsh", "-q", "create", file); err != nil {
		t.Fatalf("starting guest VM %s on network %s: %v\n%s", name, network, err, domXML)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest VM %s console (%s):\n%s", name, vm.console, vm.consoleTail(40))
		}
		if _, err := Try("virsh", "-q", "destroy", name); err != nil {
			t.Logf("cleanup: destroying guest VM %s: %v", name, err)
		}
	})
	return vm
}

// GuestMAC is the MAC address StartGuestVM gives a VM called name: QEMU's
// 52:54:00 prefix, then 24 bits of an FNV-1a hash of the name.
func GuestMAC(name string) net.HardwareAddr {
	h := fnv.New32a()
	h.Write([]byte(name))
	s := h.Sum32()
	return net.HardwareAddr{0x52, 0x54, 0x00, byte(s >> 16), byte(s >> 8), byte(s)}
}

// guestDomainXML is the domain: 192 MiB, one vCPU, direct kernel boot, no
// disks, no graphics, no USB, no balloon, no option ROM on the NIC (iPXE
// would only cost boot time), and destroyed rather than rebooted when the
// guest panics or reboots.
func guestDomainXML(name, network string, mac net.HardwareAddr, kernel, initrd, console string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>%s</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <interface type='network'>
      <source network='%s'/>
      <mac address='%s'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <serial type='file'>
      <source path='%s'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`, xmlText(name), xmlText(kernel), xmlText(initrd), xmlText(guestCmdline),
		xmlText(network), mac, xmlText(console))
}

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}

// Domain is the libvirt domain's name.
func (vm *GuestVM) Domain() string { return vm.name }

// MAC is the guest NIC's MAC address.
func (vm *GuestVM) MAC() net.HardwareAddr { return vm.mac }

// ConsoleLog is the path of the file that receives the guest's serial console.
func (vm *GuestVM) ConsoleLog() string { return vm.console }

// Events lists what the guest reported so far, oldest first, without the
// tag: "boot", "carrier up", "carrier down", "lease eth0 192.168.122.57/24",
// "error WHAT".
func (vm *GuestVM) Events() []string {
	b, _ := os.ReadFile(vm.console)
	var events []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, guestEventTag); i >= 0 {
			events = append(events, strings.TrimSpace(line[i+len(guestEventTag):]))
		}
	}
	return events
}

// Leases lists every lease the guest took, oldest first.
func (vm *GuestVM) Leases() []netip.Prefix {
	var leases []netip.Prefix
	for _, e := range vm.Events() {
		f := strings.Fields(e)
		if len(f) == 3 && f[0] == "lease" {
			if p, err := netip.ParsePrefix(f[2]); err == nil {
				leases = append(leases, p)
			}
		}
	}
	return leases
}

// WaitLease waits until the guest has taken a lease inside prefix and
// returns the newest such address; it fails the test after timeout.
func (vm *GuestVM) WaitLease(t testing.TB, prefix netip.Prefix, timeout time.Duration) netip.Addr {
	t.Helper()
	return vm.WaitLeaseAfter(t, 0, prefix, timeout)
}

// WaitLeaseAfter is WaitLease counting only leases after the first n: take
// n = len(vm.Leases()) before whatever should make the guest ask again.
func (vm *GuestVM) WaitLeaseAfter(t testing.TB, n int, prefix netip.Prefix, timeout time.Duration) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		leases := vm.Leases()
		for i := len(leases) - 1; i >= n; i-- {
			if prefix.Contains(leases[i].Addr()) {
				return leases[i].Addr()
			}
		}
		if time.Now().After(deadline) {
			state, _ := Try("virsh", "domstate", vm.name)
			t.Fatalf("guest VM %s took no lease in %s within %v (leases %v, domain %s); console %s:\n%s",
				vm.name, prefix, timeout, leases, strings.TrimSpace(state), vm.console, vm.consoleTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Tap is the host side of the guest's NIC (vnetN), from virsh domiflist.
func (vm *GuestVM) Tap(t testing.TB) string {
	t.Helper()
	out := Run(t, "virsh", "-q", "domiflist", vm.name)
	mac := vm.mac.String()
	for _, line := range strings.Split(out, "\n") {
		// Interface Type Source Model MAC
		if f := strings.Fields(line); len(f) == 5 && strings.EqualFold(f[4], mac) {
			return f[0]
		}
	}
	t.Fatalf("guest VM %s: no interface with MAC %s in:\n%s", vm.name, mac, out)
	return ""
}

// SetLink sets the link state of the guest's NIC through libvirt (virsh
// domif-setlink): the guest sees its carrier go down or come back. The
// host's tap stays up.
func (vm *GuestVM) SetLink(t testing.TB, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	Run(t, "virsh", "-q", "domif-setlink", vm.name, vm.mac.String(), state)
}

// Ping pings addr from the lab host until it answers, for up to timeout.
func (vm *GuestVM) Ping(addr netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := Try("ping", "-c", "1", "-W", "1", addr.String())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("guest VM %s: %s does not answer pings within %v: %w", vm.name, addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consoleTail is the end of the console log, for failure messages.
func (vm *GuestVM) consoleTail(lines int) string {
	b, err := os.ReadFile(vm.console)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimRight(b, "\n")
	all := strings.Split(string(b), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
