package main

import (
	"runtime/debug"
	"testing"

	"github.com/runyard/runyard/libs/config"
)

// Standalone sets its GC target unless GOGC is set; a service alone keeps the runtime's.
func TestGCDefault(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	if got := setGCDefault(config.ModeStandalone, env(map[string]string{"GOGC": "200"})); got != 0 {
		t.Fatalf("with GOGC set: %d", got)
	}
	if got := setGCDefault(config.ModeExecutor, env(nil)); got != 0 {
		t.Fatalf("executor alone: %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC target changed to %d without standalone", got)
	}
	if got := setGCDefault(config.ModeStandalone, env(nil)); got != standaloneGOGC {
		t.Fatalf("standalone: %d", got)
	}
	if got := debug.SetGCPercent(100); got != standaloneGOGC {
		t.Fatalf("GC target %d, want %d", got, standaloneGOGC)
	}
}
