package main

import (
	"os"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	t.Parallel()
	status := "Name:\trunyard\nVmPeak:\t  900000 kB\nVmRSS:\t   34560 kB\nThreads:\t12\n"
	got, err := parseVmRSS(status)
	if err != nil || got != 34560*1024 {
		t.Fatalf("parseVmRSS = %d, %v", got, err)
	}
	if _, err := parseVmRSS("Name:\tkthreadd\n"); err == nil {
		t.Fatal("no VmRSS line: want an error")
	}
	if _, err := parseVmRSS("VmRSS:\t 12 MB\n"); err == nil {
		t.Fatal("unexpected unit: want an error")
	}
}

func TestParseStatTicks(t *testing.T) {
	t.Parallel()
	// The command name holds spaces and a ')': fields are counted from the last ')'.
	stat := "4242 (run (y) d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 12 0 100 1000 200 18446744073709551615"
	got, err := parseStatTicks(stat)
	if err != nil || got != 187 {
		t.Fatalf("parseStatTicks = %d, %v", got, err)
	}
	if _, err := parseStatTicks("4242 runyard S 1"); err == nil {
		t.Fatal("malformed stat: want an error")
	}
	if _, err := parseStatTicks("4242 (x) S 1 2"); err == nil {
		t.Fatal("short stat: want an error")
	}
}

func TestCPUPercent(t *testing.T) {
	t.Parallel()
	if got := cpuPercent(100, 300, 2*time.Second); got != 100 {
		t.Fatalf("200 ticks over 2 s = %v%%, want 100%%", got)
	}
	if got := cpuPercent(300, 100, time.Second); got != 0 {
		t.Fatalf("ticks going back = %v", got)
	}
}

func TestReadOwnProcess(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	rss, err := readRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("readRSS(self) = %d, %v", rss, err)
	}
	if _, err := readCPUTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestMachineParsers(t *testing.T) {
	t.Parallel()
	if got := cpuModel("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"); got != "AMD EPYC 7B13" {
		t.Fatalf("cpuModel = %q", got)
	}
	if got := memTotal("MemTotal:       24683520 kB\nMemFree: 1 kB\n"); got != 24683520*1024 {
		t.Fatalf("memTotal = %d", got)
	}
}

func TestParseProcStatBusy(t *testing.T) {
	t.Parallel()
	stat := "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n"
	got, err := parseProcStatBusy(stat)
	// user+nice+system+irq+softirq+steal = 100+5+50+3+2+1; idle, iowait and guest excluded.
	if err != nil || got != 161 {
		t.Fatalf("parseProcStatBusy = %d, %v", got, err)
	}
	if _, err := parseProcStatBusy("intr 1 2 3\n"); err == nil {
		t.Fatal("no cpu line: want an error")
	}
}
