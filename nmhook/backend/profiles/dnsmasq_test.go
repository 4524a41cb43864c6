package profiles

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/netdef"
)

var testFiles = DnsmasqFiles{Pid: "/run/v/d/n.pid", Leases: "/run/v/d/n.leases", Log: "/run/v/d/n.log"}

func TestDnsmasqConfig(t *testing.T) {
	d := parse(t, `<network><name>own</name><forward mode='nat'/><bridge name='br6'/>
<domain name='lab.example' localOnly='yes'/>
<dns><forwarder addr='10.9.9.9'/><forwarder domain='corp.example' addr='10.8.8.8'/><host ip='10.1.6.7'><hostname>db</hostname><hostname>db2</hostname></host></dns>
<ip address='10.1.6.1' prefix='24'><dhcp>
  <range start='10.1.6.100' end='10.1.6.109'><lease expiry='2' unit='hours'/></range>
  <range start='10.1.6.200' end='10.1.6.201'/>
  <host mac='52:54:00:00:00:01' ip='10.1.6.5' name='web'/>
  <bootp file='pxelinux.0' server='10.1.6.2'/>
</dhcp></ip>
<ip family='ipv6' address='fd00:6::1' prefix='64'><dhcp><range start='fd00:6::100' end='fd00:6::10f'/><host id='00:01:02:03' name='web' ip='fd00:6::5'/></dhcp></ip>
<ip family='ipv6' address='fd00:7::1' prefix='64'/></network>`)
	got, err := DnsmasqConfig(d, testFiles)
	if err != nil {
		t.Fatal(err)
	}
	want := `# written by vnetguard for network own; rewritten on every change
strict-order
no-hosts
except-interface=lo
bind-dynamic
interface=br6
pid-file=/run/v/d/n.pid
dhcp-leasefile=/run/v/d/n.leases
log-facility=/run/v/d/n.log
domain=lab.example
local=/lab.example/
expand-hosts
server=10.9.9.9
server=/corp.example/10.8.8.8
host-record=db,db2,10.1.6.7
dhcp-range=10.1.6.100,10.1.6.109,255.255.255.0,2h
dhcp-range=10.1.6.200,10.1.6.201,255.255.255.0
dhcp-host=52:54:00:00:00:01,10.1.6.5,web
dhcp-boot=pxelinux.0,,10.1.6.2
dhcp-range=fd00:6::100,fd00:6::10f,64
dhcp-host=id:00:01:02:03,[fd00:6::5],web
dhcp-range=fd00:7::,ra-only,64
dhcp-no-override
dhcp-authoritative
dhcp-lease-max=30
enable-ra
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDnsmasqConfigIsolatedAndQuiet(t *testing.T) {
	d := parse(t, `<network><name>iso</name><bridge name='br4'/><dns enable='no'/>
<ip address='10.1.4.1' prefix='24'><dhcp><range start='10.1.4.10' end='10.1.4.10'/><host mac='52:54:00:00:00:02' ip='10.1.4.3'/></dhcp></ip>
<ip family='ipv6' address='fd00:4::1' prefix='64'><dhcp><range start='fd00:4::10' end='fd00:4::11'/></dhcp></ip></network>`)
	got, err := DnsmasqConfig(d, testFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"port=0", "dhcp-option=3", "enable-ra", "ra-param=br4,10,0", "dhcp-lease-max=4"} {
		if !strings.Contains(string(got), "\n"+line+"\n") {
			t.Errorf("no %q in\n%s", line, got)
		}
	}
}

// A network NetworkManager's shared mode serves needs no dnsmasq of ours.
func TestDnsmasqConfigNoneForShared(t *testing.T) {
	for _, xml := range []string{
		`<network><name>s</name><forward mode='nat'/><bridge name='br3'/><ip address='10.1.3.1' prefix='24'><dhcp><range start='10.1.3.10' end='10.1.3.20'/></dhcp></ip></network>`,
		`<network><name>s</name><bridge name='br3'/><ip address='10.1.3.1' prefix='24'/></network>`,
	} {
		got, err := DnsmasqConfig(parse(t, xml), testFiles)
		if err != nil || got != nil {
			t.Errorf("%s: got %q, %v; want none", xml, got, err)
		}
	}
}

// Values from a definition that could add options to the configuration
// are refused, naming the element.
func TestDnsmasqConfigRefusesUnsafeValues(t *testing.T) {
	d := parse(t, `<network><name>x</name><bridge name='br2'/><dns><host ip='10.1.2.7'><hostname>a,port=5353</hostname></host></dns>
<ip address='10.1.2.1' prefix='24'/></network>`)
	_, err := DnsmasqConfig(d, testFiles)
	var p netdef.Problem
	if !errors.As(err, &p) || p.Element != "network/dns[0]/host[0]" || !strings.Contains(err.Error(), "cannot be passed to dnsmasq") {
		t.Fatalf("got %v", err)
	}
}

// fakeDaemon is a sidecar whose daemon is a shell that writes its pid file
// and then waits with the configuration on its command line, as dnsmasq
// and radvd do. Its children are this test's, so a killed one lingers as
// a zombie until reaped: running must not count it.
func fakeDaemon(t *testing.T) sidecar {
	dir := t.TempDir()
	return sidecar{dir: dir, more: []string{".leases"}, start: func(name, conf, pid, log string) error {
		cmd := exec.Command("/bin/sh", "-c", `echo $$ >"$1"; : >"$2"; exec tail -f "$0"`, conf, pid, filepath.Join(dir, name+".leases"))
		if err := cmd.Start(); err != nil {
			return err
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for i := 0; i < 250; i++ {
			if b, _ := os.ReadFile(pid); strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("fake daemon did not start")
	}}
}

func TestSidecarSupervises(t *testing.T) {
	s := fakeDaemon(t)
	if err := s.sync(map[string][]byte{"a": []byte("one\n")}); err != nil {
		t.Fatal(err)
	}
	first := s.running("a")
	if first == 0 {
		t.Fatal("not started")
	}
	if err := s.sync(map[string][]byte{"a": []byte("one\n")}); err != nil || s.running("a") != first {
		t.Fatalf("same configuration: restarted or failed (%v)", err)
	}
	if err := s.sync(map[string][]byte{"a": []byte("two\n")}); err != nil {
		t.Fatal(err)
	}
	second := s.running("a")
	if second == 0 || second == first {
		t.Fatalf("changed configuration: pid %d, was %d", second, first)
	}
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && s.running("a") != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if s.running("a") != 0 {
		t.Fatal("a killed daemon still counts as running")
	}
	if err := s.sync(map[string][]byte{"a": []byte("two\n")}); err != nil {
		t.Fatal(err)
	}
	if third := s.running("a"); third == 0 || third == second {
		t.Fatalf("dead daemon not started again (pid %d)", third)
	}
	if err := s.sync(nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.dir)
	if len(ents) != 0 || s.running("a") != 0 {
		t.Fatalf("after stop: %d files left, running %d", len(ents), s.running("a"))
	}
}
