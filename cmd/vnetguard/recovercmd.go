package main

import (
	"context"
	"time"

	"github.com/vnetguard/vnetguard/nmhook/logging"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

func init() {
	register("recover", "finish or undo changes that an interrupted vnetguard run left half done", runRecover)
}

func runRecover(env *runEnv, args []string) int {
	fs := newFlags(env, "recover", "[--wait-lock DURATION]", `
Complete or undo every change an interrupted vnetguard run left half done
(a renumber killed between stopping a network and starting it again, a
libvirtd that died or froze meanwhile). Every vnetguard run does this first;
this command does only that. The dispatcher hook starts it, detached, when
it must end in the middle of a change. A network whose lock another run
holds is waited for up to --wait-lock. Exit 0 when nothing is left, 2 when
a change could not be finished yet (it is retried by the next run).`)
	var o resolverOptions
	wait := fs.Duration("wait-lock", 2*time.Second, "how long to wait for a network another run holds")
	retryFor := fs.Duration("retry-for", 0, "keep retrying a change that cannot be finished yet (libvirtd down or frozen) for this long")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	log := logging.New(env.stderr)
	g, _, err := o.newGuard(log, false)
	if err != nil {
		return fail(env, "recover", err)
	}
	defer g.Close()
	set := g.Settings()
	set.RecoverTimeout = *wait + o.timeout
	g.SetSettings(set)
	// One recover at a time: the hook may hand over more than once.
	lctx, lcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	unlock, err := state.Lock(lctx, o.runDir, "recover")
	lcancel()
	if err != nil {
		log.Info("another vnetguard recover is at work; leaving it to that one", "error", err)
		return exitOK
	}
	defer unlock()
	deadline := time.Now().Add(*retryFor)
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		failed := false
		for _, oc := range g.RecoverWaiting(context.Background(), *wait) {
			failed = failed || oc.Error != "" || oc.Deferred
		}
		if !failed {
			return exitOK
		}
		if time.Now().Add(delay).After(deadline) {
			return exitError
		}
		time.Sleep(delay)
	}
}
