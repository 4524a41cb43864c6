package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11: the completion scripts come from the command table: every
// command (but the hook) and its flags are in each of them, and the
// scripts parse in their shells (when the shell is installed).
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errs := runCLI(t, "completion", shell)
		if code != exitOK {
			t.Fatalf("completion %s: exit %d: %s", shell, code, errs)
		}
		for name := range commands {
			if name == "hook" {
				if strings.Contains(out, " hook") {
					t.Errorf("%s: the hook is offered", shell)
				}
				continue
			}
			if !strings.Contains(out, name) {
				t.Errorf("%s: command %s missing", shell, name)
			}
		}
		for _, want := range []string{"family", "networks-dir", "define"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: %q missing", shell, want)
			}
		}
		path, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		f := filepath.Join(t.TempDir(), "completion")
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v: %s", shell, err, b)
		}
	}
	if code, _, _ := runCLI(t, "completion", "tcsh"); code != exitError {
		t.Errorf("unknown shell: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "completion"); code != exitError {
		t.Errorf("no shell: exit %d, want 2", code)
	}
}

// The bash script completes a command's flags when sourced.
func TestBashCompletionCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, out, _ := runCLI(t, "completion", "bash")
	f := filepath.Join(t.TempDir(), "vnetguard")
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `source "$1"; COMP_WORDS=(vnetguard pick --fam); COMP_CWORD=2; _vnetguard; echo "${COMPREPLY[*]}"
COMP_WORDS=(vnetguard ne); COMP_CWORD=1; _vnetguard; echo "${COMPREPLY[*]}"
COMP_WORDS=(vnetguard net und); COMP_CWORD=2; _vnetguard; echo "${COMPREPLY[*]}"`
	b, err := exec.Command(bash, "-c", script, "bash", f).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got, want := string(b), "--family\nnet\nundefine\n"; got != want {
		t.Errorf("completions %q, want %q", got, want)
	}
}

// A man page per command, from its --help: named, with its synopsis and
// options, and (when groff is installed) free of roff warnings.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runCLI(t, "completion", "man", dir); code != exitOK {
		t.Fatalf("completion man: exit %d: %s", code, errs)
	}
	groff, _ := exec.LookPath("groff")
	for name := range commands {
		b, err := os.ReadFile(filepath.Join(dir, "vnetguard-"+name+".8"))
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		for _, want := range []string{".SH NAME\nvnetguard\\-" + strings.ReplaceAll(name, "-", `\-`) + ` \- `, ".SH SYNOPSIS", ".SH EXIT STATUS", "vnetguard (8)"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: %q missing", name, want)
			}
		}
		if groff == "" {
			continue
		}
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(dir, "vnetguard-"+name+".8"))
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v: %s", name, err, out)
		}
	}
}
