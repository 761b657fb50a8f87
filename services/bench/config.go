package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Profiles.
const (
	profileQuick = "quick"
	profileLong  = "long"
)

// options is the validated command line.
type options struct {
	profile string
	out     string
	binary  string

	// Target mode: an already running Mage-compatible server; nothing is started.
	target      string
	apiKey      string
	bearer      string
	scheduleID  int64
	token       string
	allowRemote bool

	duration     time.Duration // each trigger level
	stepDuration time.Duration // each rate step of the throughput scenario
	runs         int           // e2e latency runs
	readRuns     int           // runs stored before the reads scenario
	readRequests int           // requests per read route
	buildBudget  time.Duration // longest time spent creating the reads data
	probeWindow  time.Duration // each stack-probe measurement
	clients      []int         // trigger concurrency levels
	serverEnv    []string      // extra RUNYARD_* variables for the subprocess
	rates        []float64     // open-loop arrival rates, rising
	timeout      time.Duration // the whole run

	// Event fan-out scenarios (standalone mode only).
	sseClients      int           // concurrent SSE clients; 0 skips the scenario
	sseRate         float64       // runs/s triggered while they listen
	sseDuration     time.Duration // how long runs are triggered
	sseTypes        string        // the clients' type filter; empty: every event of the space
	webhookRate     float64       // runs/s of the webhook scenario
	webhookDuration time.Duration // 0 skips the webhook scenario

	scenarios map[string]bool // the scenarios to run; nil runs all
}

// scenarioNames are the values of --scenarios, in the order the tool runs them.
var scenarioNames = []string{"probe", "costs", "latency", "events", "trigger", "throughput", "reads"}

// selected reports whether scenario name is to run.
func (o options) selected(name string) bool { return o.scenarios == nil || o.scenarios[name] }

// profileDefaults are the values a profile gives to flags left unset.
func profileDefaults(profile string) options {
	o := options{
		duration:     10 * time.Second,
		stepDuration: 10 * time.Second,
		runs:         200,
		readRequests: 2000,
		probeWindow:  2 * time.Second,
		clients:      []int{1, 8, 64},
		// From 100: every build so far kept up at 100 runs/s, and the quick profile has to
		// leave room in make bench's five minutes for the Go benchmarks.
		rates: []float64{100, 200, 400, 800},

		sseClients:      1000,
		sseRate:         10,
		sseDuration:     10 * time.Second,
		webhookRate:     10,
		webhookDuration: 10 * time.Second,
	}
	switch profile {
	case profileLong:
		o.runs = 1000
		o.readRuns = 1_000_000
		o.readRequests = 5000
		o.buildBudget = 60 * time.Minute
		o.probeWindow = 5 * time.Second
		o.rates = []float64{50, 100, 200, 400, 800, 1600, 3200}
		o.timeout = 3 * time.Hour
		o.sseDuration = 60 * time.Second
		o.webhookDuration = 60 * time.Second
	default:
		o.readRuns = 20_000
		o.buildBudget = 90 * time.Second
		o.timeout = 8 * time.Minute
	}
	return o
}

const usageText = `usage: runyard-bench [flags]

Starts bin/runyard standalone on loopback ports and a fresh data directory, runs the load
scenarios against it, prints a table and writes the results as JSON. With --target it measures
an already running Mage-compatible server instead (trigger, reads, e2e latency by polling).

flags:
`

// parseFlags parses and validates args. It returns flag.ErrHelp for -h.
func parseFlags(args []string, usageOut io.Writer) (options, error) {
	fs := flag.NewFlagSet("runyard-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		profile      = fs.String("profile", profileQuick, "quick (under 5 minutes on 2 cores) or long")
		out          = fs.String("out", "bench-results.json", "file the results are written to as JSON")
		binary       = fs.String("binary", "bin/runyard", "runyard binary started in standalone mode")
		target       = fs.String("target", "", "base URL of a running Mage-compatible server (target mode)")
		apiKey       = fs.String("api-key", "", "target mode: API key (sent as api_key and X-API-KEY)")
		bearer       = fs.String("bearer", "", "target mode: OAuth token sent as Authorization: Bearer (Mage with authentication on)")
		scheduleID   = fs.Int64("schedule-id", 0, "target mode: id of an active api pipeline schedule")
		token        = fs.String("token", "", "target mode: the schedule's trigger token")
		allowRemote  = fs.Bool("allow-remote", false, "target mode: allow a --target that is not a loopback address")
		duration     = fs.Duration("duration", 0, "length of each trigger level (default 10s)")
		stepDuration = fs.Duration("step-duration", 0, "length of each throughput rate step (default 10s)")
		runs         = fs.Int("runs", 0, "runs of the e2e latency scenario (quick 200, long 1000)")
		readRuns     = fs.Int("read-runs", 0, "runs stored before the reads scenario (quick 20000, long 1000000)")
		readRequests = fs.Int("read-requests", 0, "requests per route in the reads scenario (quick 2000, long 5000)")
		buildBudget  = fs.Duration("build-budget", 0, "longest time spent creating the reads data (quick 90s, long 60m)")
		clients      = fs.String("clients", "", "comma-separated trigger concurrency levels (default 1,8,64)")
		rates        = fs.String("rates", "", "comma-separated rising arrival rates in runs/s (quick 100,...,800; long 50 up to 3200)")
		timeout      = fs.Duration("timeout", 0, "hard limit on the whole run (quick 8m, long 3h)")
		sseClients   = fs.Int("sse-clients", 0, "concurrent SSE clients of the fan-out scenario (default 1000; 0 skips it)")
		sseRate      = fs.Float64("sse-rate", 0, "runs/s triggered while the SSE clients listen (default 10)")
		sseDuration  = fs.Duration("sse-duration", 0, "how long runs are triggered in the SSE fan-out scenario (quick 10s, long 60s)")
		sseTypes     = fs.String("sse-types", "", "comma-separated event types the SSE clients subscribe to (default: every event of the space)")
		hookRate     = fs.Float64("webhook-rate", 0, "runs/s triggered in the webhook scenario (default 10)")
		hookDuration = fs.Duration("webhook-duration", 0, "how long runs are triggered in the webhook scenario (quick 10s, long 60s; 0 skips it)")
		scenarios    = fs.String("scenarios", "", "standalone mode: comma-separated scenarios to run, of "+strings.Join(scenarioNames, ", ")+" (default all)")
		serverEnv    envList
	)
	fs.Var(&serverEnv, "env", "RUNYARD_NAME=value for the subprocess, repeatable (e.g. RUNYARD_EXECUTOR_WORKERS=64); the addresses, data directory, admin key, log level and RUNYARD_CONNECTOR_ALLOW_PRIVATE are the tool's")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(usageOut, usageText)
			fs.SetOutput(usageOut)
			fs.PrintDefaults()
		}
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q: every option is a flag (see -h)", fs.Arg(0))
	}
	if *profile != profileQuick && *profile != profileLong {
		return options{}, fmt.Errorf("--profile %q: want %s or %s", *profile, profileQuick, profileLong)
	}
	o := profileDefaults(*profile)
	o.profile, o.out, o.binary = *profile, strings.TrimSpace(*out), *binary
	o.target, o.apiKey, o.bearer, o.scheduleID, o.token, o.allowRemote = strings.TrimSpace(*target), *apiKey, *bearer, *scheduleID, *token, *allowRemote

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	durationFlag := func(name string, v time.Duration, dst *time.Duration, lo, hi time.Duration) {
		if !set[name] {
			return
		}
		if v < lo || v > hi {
			bad("--%s %s: must be between %s and %s", name, v, lo, hi)
			return
		}
		*dst = v
	}
	durationFlag("duration", *duration, &o.duration, 100*time.Millisecond, 10*time.Minute)
	durationFlag("step-duration", *stepDuration, &o.stepDuration, 500*time.Millisecond, 10*time.Minute)
	durationFlag("build-budget", *buildBudget, &o.buildBudget, 0, 24*time.Hour)
	durationFlag("timeout", *timeout, &o.timeout, 10*time.Second, 48*time.Hour)
	intFlag := func(name string, v int, dst *int, lo, hi int) {
		if !set[name] {
			return
		}
		if v < lo || v > hi {
			bad("--%s %d: must be between %d and %d", name, v, lo, hi)
			return
		}
		*dst = v
	}
	intFlag("runs", *runs, &o.runs, 1, 1_000_000)
	intFlag("read-runs", *readRuns, &o.readRuns, 0, 100_000_000)
	intFlag("read-requests", *readRequests, &o.readRequests, 1, 10_000_000)
	intFlag("sse-clients", *sseClients, &o.sseClients, 0, 100_000)
	durationFlag("sse-duration", *sseDuration, &o.sseDuration, time.Second, 10*time.Minute)
	durationFlag("webhook-duration", *hookDuration, &o.webhookDuration, 0, 10*time.Minute)
	rateFlag := func(name string, v float64, dst *float64) {
		if !set[name] {
			return
		}
		if v <= 0 || v > 1000 {
			bad("--%s %g: must be above 0 and at most 1000 runs/s", name, v)
			return
		}
		*dst = v
	}
	rateFlag("sse-rate", *sseRate, &o.sseRate)
	rateFlag("webhook-rate", *hookRate, &o.webhookRate)
	if set["scenarios"] {
		o.scenarios = map[string]bool{}
		for _, n := range strings.Split(*scenarios, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(scenarioNames, n) {
				bad("--scenarios %q: %q is not one of %s", *scenarios, n, strings.Join(scenarioNames, ", "))
				break
			}
			o.scenarios[n] = true
		}
	}
	if set["sse-types"] {
		for _, t := range strings.Split(*sseTypes, ",") {
			if t = strings.TrimSpace(t); t == "" || strings.ContainsAny(t, " &?#") {
				bad("--sse-types %q: want a comma-separated list of event types", *sseTypes)
				break
			}
		}
		o.sseTypes = strings.ReplaceAll(*sseTypes, " ", "")
	}
	if set["clients"] {
		cs, err := parseInts(*clients, 1, 4096)
		if err != nil {
			bad("--clients %q: %v", *clients, err)
		} else {
			o.clients = cs
		}
	}
	if set["rates"] {
		rs, err := parseRates(*rates)
		if err != nil {
			bad("--rates %q: %v", *rates, err)
		} else {
			o.rates = rs
		}
	}
	if o.out == "" {
		bad("--out: must name a file")
	}

	if o.target == "" {
		for _, name := range []string{"api-key", "bearer", "schedule-id", "token", "allow-remote"} {
			if set[name] {
				bad("--%s: only applies with --target", name)
			}
		}
		if o.binary == "" {
			bad("--binary: must name the runyard binary")
		}
		for _, kv := range serverEnv {
			if err := checkServerEnv(kv); err != nil {
				bad("--env %q: %v", kv, err)
			}
		}
		o.serverEnv = serverEnv
	} else {
		if set["binary"] || set["env"] {
			bad("--binary, --env: target mode starts nothing; drop them or --target")
		}
		for _, name := range []string{"sse-clients", "sse-rate", "sse-duration", "sse-types", "webhook-rate", "webhook-duration", "scenarios"} {
			if set[name] {
				bad("--%s: the event scenarios run only on the standalone server the tool starts", name)
			}
		}
		if err := checkTarget(o.target, o.allowRemote); err != nil {
			bad("--target %q: %v", o.target, err)
		}
		if o.apiKey == "" {
			bad("--api-key: required with --target")
		}
		if o.scheduleID <= 0 {
			bad("--schedule-id: required with --target, a positive schedule id")
		}
		if o.token == "" {
			bad("--token: required with --target")
		} else if strings.ContainsAny(o.token, "/?#% ") {
			bad("--token: must not contain '/', '?', '#', '%%' or spaces")
		}
	}
	if len(problems) > 0 {
		return options{}, errors.New(strings.Join(problems, "; "))
	}
	o.target = strings.TrimRight(o.target, "/")
	return o, nil
}

// checkTarget accepts an http(s) base URL without path, query or credentials; its host must
// be a loopback address unless remote targets are allowed.
func checkTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want http://host:port or https://host:port")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("names no host")
	}
	if u.User != nil {
		return errors.New("must not carry credentials: use --api-key")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must be a base URL without path or query (the tool adds /api/...)")
	}
	if !allowRemote && !isLoopback(u.Hostname()) {
		return errors.New("not a loopback address (localhost, 127.0.0.0/8, ::1); pass --allow-remote to measure a remote server")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseInts(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", strings.TrimSpace(f))
		}
		if n < lo || n > hi {
			return nil, fmt.Errorf("%d is not between %d and %d", n, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", strings.TrimSpace(f))
		}
		if r <= 0 || r > 100_000 {
			return nil, fmt.Errorf("%g is not between 0 (excluded) and 100000", r)
		}
		if len(out) > 0 && r <= out[len(out)-1] {
			return nil, fmt.Errorf("rates must rise: %g follows %g", r, out[len(out)-1])
		}
		out = append(out, r)
	}
	return out, nil
}

// envList collects repeated --env flags.
type envList []string

func (e *envList) String() string     { return strings.Join(*e, ",") }
func (e *envList) Set(v string) error { *e = append(*e, v); return nil }

// toolOwnedVars are the subprocess variables the tool sets itself.
var toolOwnedVars = map[string]bool{
	"RUNYARD_HTTP_ADDR": true, "RUNYARD_NATS_ADDR": true, "RUNYARD_DATA_DIR": true,
	"RUNYARD_ADMIN_API_KEY": true, "RUNYARD_LOG_LEVEL": true,
	// The webhook scenario's receiver listens on loopback.
	"RUNYARD_CONNECTOR_ALLOW_PRIVATE": true,
	// External services would make the measurement something other than standalone.
	"RUNYARD_NATS_URL": true, "RUNYARD_MONGO_URI": true,
}

func checkServerEnv(kv string) error {
	name, _, ok := strings.Cut(kv, "=")
	switch {
	case !ok:
		return errors.New("want RUNYARD_NAME=value")
	case !strings.HasPrefix(name, "RUNYARD_"):
		return errors.New("only RUNYARD_* variables are passed")
	case toolOwnedVars[name]:
		return fmt.Errorf("%s is set by the tool", name)
	}
	return nil
}
