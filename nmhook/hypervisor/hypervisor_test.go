package hypervisor

import (
	"testing"
	"testing/fstest"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		guest bool
	}{
		{"bare metal", map[string]string{
			"proc/cpuinfo":                  "processor\t: 0\nflags\t\t: fpu vme sse2\n",
			"sys/class/dmi/id/sys_vendor":   "Dell Inc.\n",
			"sys/class/dmi/id/product_name": "Latitude 7420\n",
		}, false},
		{"cpu flag", map[string]string{"proc/cpuinfo": "flags\t: fpu hypervisor sse2\n"}, true},
		{"flag only on a later line is not read as a flag", map[string]string{"proc/cpuinfo": "model name\t: hypervisor-ready cpu\nflags\t: fpu\n"}, false},
		{"dmi qemu", map[string]string{"sys/class/dmi/id/sys_vendor": "QEMU\n"}, true},
		{"dmi hyper-v", map[string]string{"sys/class/dmi/id/product_name": "Virtual Machine\n", "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n"}, true},
		{"dmi virtualbox", map[string]string{"sys/class/dmi/id/bios_vendor": "innotek GmbH\n"}, true},
		{"xen domU", map[string]string{"proc/xen/capabilities": ""}, true},
		{"xen dom0 is a host", map[string]string{"proc/xen/capabilities": "control_d\n"}, false},
		{"sys hypervisor type", map[string]string{"sys/hypervisor/type": "xen\n"}, true},
		{"nothing readable", map[string]string{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, v := range c.files {
				fsys[p] = &fstest.MapFile{Data: []byte(v)}
			}
			r := Detect(fsys)
			if r.Guest != c.guest {
				t.Fatalf("Detect = %+v, want guest=%v", r, c.guest)
			}
			if r.Guest && r.Evidence == "" {
				t.Fatalf("guest without evidence")
			}
		})
	}
}

func TestResolveOverrides(t *testing.T) {
	called := false
	detect := func() Result { called = true; return Result{Guest: true, Evidence: "x"} }
	if r := Resolve(No, detect); r.Guest || called {
		t.Fatalf("No: %+v called=%v", r, called)
	}
	if r := Resolve(Yes, detect); !r.Guest || called {
		t.Fatalf("Yes: %+v called=%v", r, called)
	}
	if r := Resolve(Auto, detect); !r.Guest || !called {
		t.Fatalf("Auto: %+v called=%v", r, called)
	}
	for _, s := range []string{"auto", "yes", "no", "guest", "host"} {
		if _, ok := ParseMode(s); !ok {
			t.Errorf("ParseMode(%q) rejected", s)
		}
	}
	if _, ok := ParseMode("maybe"); ok {
		t.Errorf("ParseMode(maybe) accepted")
	}
}
