package libvirt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// As libvirt 9.0 writes /run/libvirt/network/default.xml.
const statusDefault = `<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh net-edit default
or other application using the libvirt API.
-->

<networkstatus>
  <class_id bitmap='0-2'/>
  <floor sum='0'/>
  <network>
    <name>default</name>
    <uuid>e92ff321-35b4-4f73-b801-60dc97dda1fc</uuid>
    <forward mode='nat'>
      <nat>
        <port start='1024' end='65535'/>
      </nat>
    </forward>
    <bridge name='virbr0' stp='on' delay='0'/>
    <mac address='52:54:00:f7:5b:3b'/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp>
        <range start='192.168.122.2' end='192.168.122.254'/>
      </dhcp>
    </ip>
  </network>
</networkstatus>
`

func statusDir(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestStatusFilesValid(t *testing.T) {
	dir := statusDir(t, map[string]string{"default.xml": statusDefault, "default.pid": "123\n", "autostarted": ""})
	nets, err := readStatusFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || nets[0].Name != "default" || !nets[0].Active {
		t.Fatalf("got %+v", nets)
	}
	n := convert(nets[0])
	if n.Err != nil || n.Live.Network.BridgeName() != "virbr0" || n.Live.Network.Subnets()[0].Masked().String() != "192.168.122.0/24" {
		t.Fatalf("parsed %v %v, %v", n.Live.Network.BridgeName(), n.Live.Network.Subnets(), n.Err)
	}
	if !strings.HasPrefix(nets[0].LiveXML, "<network>") || !strings.HasSuffix(nets[0].LiveXML, "</network>") {
		t.Fatalf("inner XML not cut at the element: %q", nets[0].LiveXML)
	}
}

func TestStatusFilesUnexpectedFallBack(t *testing.T) {
	for name, body := range map[string]string{
		"truncated":       statusDefault[:len(statusDefault)/2],
		"unknown wrapper": strings.ReplaceAll(statusDefault, "networkstatus", "netstate"),
		"no network":      "<networkstatus><floor sum='0'/></networkstatus>",
		"two networks":    "<networkstatus><network><name>default</name></network><network><name>x</name></network></networkstatus>",
		"wrong name":      strings.Replace(statusDefault, "<name>default</name>", "<name>other</name>", 1),
		"not XML":         "\x00\x01garbage",
	} {
		dir := statusDir(t, map[string]string{"default.xml": body})
		if _, err := readStatusFiles(dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStatusFilesMissingDirFallsBack(t *testing.T) {
	_, err := readStatusFiles(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
	// An empty directory: no network is running, which is an answer.
	nets, err := readStatusFiles(t.TempDir())
	if err != nil || len(nets) != 0 {
		t.Fatalf("empty dir: %v, %v", nets, err)
	}
}
