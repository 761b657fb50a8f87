package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// readRSS returns the resident set size of pid in bytes, from /proc/<pid>/status (VmRSS).
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	return parseVmRSS(string(b))
}

// parseVmRSS extracts VmRSS (reported in kB) from the text of /proc/<pid>/status.
func parseVmRSS(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS %q: %w", f[0], err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line (kernel thread or exited process)")
}

// readCPUTicks returns the user plus system CPU time pid has used, in clock ticks.
func readCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	return parseStatTicks(string(b))
}

// parseStatTicks extracts utime + stime (fields 14 and 15) from /proc/<pid>/stat. The command
// name (field 2) is in parentheses and may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStatTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat: %d fields after the command name", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat stime %q: %w", f[12], err)
	}
	return utime + stime, nil
}

// cpuPercent is the CPU used between two readings as a percentage of one core (200% is two
// cores busy).
func cpuPercent(ticks0, ticks1 uint64, wall time.Duration) float64 {
	if wall <= 0 || ticks1 < ticks0 {
		return 0
	}
	return float64(ticks1-ticks0) / clockTicks / wall.Seconds() * 100
}

// readMachineBusy returns the clock ticks all CPUs of the machine have spent busy (everything
// but idle and iowait), from the first line of /proc/stat.
func readMachineBusy() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read machine cpu time: %w", err)
	}
	return parseProcStatBusy(string(b))
}

func parseProcStatBusy(stat string) (uint64, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("malformed /proc/stat line %q", line)
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d %q: %w", i+1, v, err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time
		// is already counted in user and nice.
		switch i {
		case 3, 4, 8, 9:
		default:
			busy += n
		}
	}
	return busy, nil
}

// usage is a process's resource use over a window.
type usage struct {
	CPUPercent float64 `json:"cpu_percent"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	LastRSS    int64   `json:"last_rss_bytes"`
	Window     string  `json:"window"`
	// MachinePercent is the whole machine's busy CPU over the window, in the same unit
	// (100% = one core), so that load from other processes can be told apart.
	MachinePercent float64 `json:"machine_cpu_percent"`
}

// sampler reads a process's RSS every interval and its CPU time at both ends of a window.
type sampler struct {
	pid    int
	t0     time.Time
	ticks0 uint64
	busy0  uint64
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	peak int64
	last int64
	err  error
}

// startSampler begins a window on pid (0 means nothing to sample: every reading is zero).
func startSampler(ctx context.Context, pid int, interval time.Duration) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{pid: pid, t0: time.Now(), cancel: cancel, done: make(chan struct{})}
	s.busy0, _ = readMachineBusy()
	if pid == 0 {
		close(s.done)
		return s
	}
	s.ticks0, s.err = readCPUTicks(pid)
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	rss, err := readRSS(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return
	}
	s.last = rss
	s.peak = max(s.peak, rss)
}

// stop ends the window and returns the CPU share over it and the peak RSS seen.
func (s *sampler) stop() (usage, error) {
	s.cancel()
	<-s.done
	wall := time.Since(s.t0)
	var machine float64
	if busy1, err := readMachineBusy(); err == nil && s.busy0 > 0 {
		machine = cpuPercent(s.busy0, busy1, wall)
	}
	if s.pid == 0 {
		return usage{MachinePercent: machine, Window: wall.Round(time.Millisecond).String()}, nil
	}
	s.sample()
	ticks1, err := readCPUTicks(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = s.err
	}
	u := usage{CPUPercent: cpuPercent(s.ticks0, ticks1, wall), PeakRSS: s.peak, LastRSS: s.last, Window: wall.Round(time.Millisecond).String(), MachinePercent: machine}
	return u, err
}

func mb(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// readWriteSyscalls returns how many write system calls pid has made (syscw in
// /proc/<pid>/io): the fan-out scenarios report it per delivered event, the measure of how
// well a relay batches.
func readWriteSyscalls(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("read write syscalls: %w", err)
	}
	return parseSyscw(string(b))
}

func parseSyscw(io string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(io))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "syscw:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("syscw %q: %w", rest, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("no syscw line")
}
