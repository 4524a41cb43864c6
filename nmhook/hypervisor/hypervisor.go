// Package hypervisor tells whether this host is itself a virtual machine.
//
// vnetguard walks the 192.168.N.0/24 pool upwards inside a guest and
// downwards on bare metal, so that a host and the guests it runs choose
// subnets from opposite ends and rarely collide (the seed design's nesting
// rule). Detection reads only files, through an fs.FS, so it is testable
// without a hypervisor.
package hypervisor

import (
	"bufio"
	"bytes"
	"io/fs"
	"strings"
)

// Result says whether a hypervisor was found and on what evidence.
type Result struct {
	Guest    bool   // true when running under a hypervisor
	Evidence string // the file and value that decided it; "" on bare metal
}

// dmiFiles are read below sys/class/dmi/id; hypervisors stamp their name
// into one of them even when the CPU flag is masked.
var dmiFiles = []string{"sys_vendor", "product_name", "bios_vendor", "board_vendor", "chassis_vendor"}

// dmiVendors are substrings (lower case) that only virtual firmware reports.
var dmiVendors = []string{
	"qemu", "kvm", "vmware", "virtualbox", "innotek", "xen", "bochs",
	"parallels", "bhyve", "openstack", "ovirt", "amazon ec2", "google compute engine",
	"microsoft corporation virtual", "virtual machine", "cloud hypervisor", "firecracker",
	"apple virtualization",
}

// Detect inspects a root file system (usually os.DirFS("/")). Every source
// is optional: a missing file is no evidence either way.
func Detect(root fs.FS) Result {
	if r, ok := fromCPUInfo(root); ok {
		return r
	}
	if r, ok := fromDMI(root); ok {
		return r
	}
	if r, ok := fromXen(root); ok {
		return r
	}
	if b, err := fs.ReadFile(root, "sys/hypervisor/type"); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return Result{Guest: true, Evidence: "/sys/hypervisor/type: " + t}
		}
	}
	return Result{}
}

// fromCPUInfo looks for the "hypervisor" CPU flag, which x86 hypervisors set
// in CPUID leaf 1 for their guests.
func fromCPUInfo(root fs.FS) (Result, bool) {
	b, err := fs.ReadFile(root, "proc/cpuinfo")
	if err != nil {
		return Result{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, f := range strings.Fields(val) {
			if f == "hypervisor" {
				return Result{Guest: true, Evidence: "/proc/cpuinfo: flag hypervisor"}, true
			}
		}
		return Result{}, false // the first CPU speaks for all
	}
	return Result{}, false
}

func fromDMI(root fs.FS) (Result, bool) {
	for _, name := range dmiFiles {
		b, err := fs.ReadFile(root, "sys/class/dmi/id/"+name)
		if err != nil {
			continue
		}
		val := strings.TrimSpace(string(b))
		low := strings.ToLower(val)
		for _, v := range dmiVendors {
			if strings.Contains(low, v) {
				return Result{Guest: true, Evidence: "/sys/class/dmi/id/" + name + ": " + val}, true
			}
		}
	}
	return Result{}, false
}

// fromXen: /proc/xen exists in every Xen domain, but dom0 is the host, and
// it alone lists "control_d" in its capabilities.
func fromXen(root fs.FS) (Result, bool) {
	if _, err := fs.Stat(root, "proc/xen"); err != nil {
		return Result{}, false
	}
	caps, _ := fs.ReadFile(root, "proc/xen/capabilities")
	if strings.Contains(string(caps), "control_d") {
		return Result{}, false
	}
	return Result{Guest: true, Evidence: "/proc/xen: Xen guest domain"}, true
}

// Mode is the user's override: auto-detect, or force one answer.
type Mode string

const (
	Auto Mode = "auto"
	Yes  Mode = "yes" // behave as a guest
	No   Mode = "no"  // behave as bare metal
)

// ParseMode accepts auto, yes/guest/true, no/host/false.
func ParseMode(s string) (Mode, bool) {
	switch strings.ToLower(s) {
	case "", "auto":
		return Auto, true
	case "yes", "guest", "true":
		return Yes, true
	case "no", "host", "bare-metal", "false":
		return No, true
	}
	return "", false
}

// Resolve applies an override to detection; detect runs only in Auto mode.
func Resolve(m Mode, detect func() Result) Result {
	switch m {
	case Yes:
		return Result{Guest: true, Evidence: "forced by --hypervisor=yes"}
	case No:
		return Result{Guest: false, Evidence: "forced by --hypervisor=no"}
	}
	return detect()
}
