// Package pipeline defines a native pipeline: a named DAG of blocks, each executed by a runner,
// and the rules that make a pipeline definition valid.
package pipeline

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/validation"
)

// Runner kinds.
const (
	KindNoop    = "noop"
	KindSleep   = "sleep"
	KindCommand = "command"
	KindHTTP    = "http"
)

// Providers.
const (
	ProviderNative  = "native"
	ProviderAirflow = "airflow"
)

// Pipeline states.
const (
	StateActive   = "active"
	StatePaused   = "paused"
	StateInactive = "inactive"
)

// Criticalities, lowest first.
var Criticalities = []string{"low", "medium", "high", "critical"}

// Kinds lists the runner kinds a block may use.
var Kinds = []string{KindNoop, KindSleep, KindCommand, KindHTTP}

// Limits on a definition, so that one pipeline cannot exhaust the store or a worker.
const (
	MaxBlocks         = 500
	MaxSleepSeconds   = 24 * 60 * 60
	MaxTimeoutSeconds = 7 * 24 * 60 * 60
)

// Pipeline is a native pipeline definition.
type Pipeline struct {
	Space       string         `json:"space" bson:"space"`
	UUID        string         `json:"uuid" bson:"uuid"`
	Name        string         `json:"name" bson:"name"`
	Description string         `json:"description" bson:"description"`
	Variables   map[string]any `json:"variables" bson:"variables"`
	Blocks      []Block        `json:"blocks" bson:"blocks"`
	// RetryConfig is the default for blocks that set none (Mage ignores a pipeline-level
	// retry_config; its users ask for one).
	RetryConfig       *RetryConfig       `json:"retry_config,omitempty" bson:"retry_config,omitempty"`
	ConcurrencyConfig *ConcurrencyConfig `json:"concurrency_config,omitempty" bson:"concurrency_config,omitempty"`

	// Provider says where the pipeline is defined and runs: ProviderNative (Runyard's executor)
	// or ProviderAirflow (mirrored from an Airflow connector). Empty reads as native.
	Provider string `json:"provider" bson:"provider"`
	// ConnectorID is the connector that synced a provider pipeline.
	ConnectorID string `json:"connector_id,omitempty" bson:"connector_id,omitempty"`
	// ProviderID is the pipeline's id at its provider (Airflow's dag_id).
	ProviderID string `json:"provider_id,omitempty" bson:"provider_id,omitempty"`
	// Owners are the provider's owner strings (Airflow's DAG owners); free text for native ones.
	Owners []string `json:"owners" bson:"owners"`
	Tags   []string `json:"tags" bson:"tags"`
	// State is StateActive, StatePaused (Airflow's paused DAG) or StateInactive (gone upstream).
	State string `json:"state" bson:"state"`
	// ScheduleDescription is the provider's schedule in its own words (an Airflow timetable
	// summary or cron); native pipelines have schedules of their own.
	ScheduleDescription string `json:"schedule_description,omitempty" bson:"schedule_description,omitempty"`
	// ProviderMetadata is the provider's raw record, kept for display.
	ProviderMetadata map[string]any `json:"provider_metadata,omitempty" bson:"provider_metadata,omitempty"`

	// Governance fields belong to Runyard: a sync never writes them.
	TeamID      string `json:"team_id,omitempty" bson:"team_id,omitempty"`
	Criticality string `json:"criticality,omitempty" bson:"criticality,omitempty"`

	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
	Version   int64     `json:"version" bson:"version"`
}

// Block is one node of a pipeline's DAG.
type Block struct {
	UUID           string   `json:"uuid" bson:"uuid"`
	Name           string   `json:"name" bson:"name"`
	Type           string   `json:"type" bson:"type"`
	UpstreamBlocks []string `json:"upstream_blocks" bson:"upstream_blocks"`
	Runner         Runner   `json:"runner" bson:"runner"`
	// RetryConfig overrides the pipeline's.
	RetryConfig *RetryConfig `json:"retry_config,omitempty" bson:"retry_config,omitempty"`
	// Timeout bounds the whole block run, every attempt and the waits between them included,
	// in seconds; 0 means no limit. Runner.Timeout bounds one attempt.
	Timeout float64 `json:"timeout,omitempty" bson:"timeout,omitempty"`
}

// RetryConfig says how often a failed block is attempted again. Field names and defaults are
// Mage's: retries 0, delay 5 s, max_delay 60 s, exponential_backoff true.
type RetryConfig struct {
	Retries            int      `json:"retries" bson:"retries"`
	Delay              *float64 `json:"delay,omitempty" bson:"delay,omitempty"`
	MaxDelay           *float64 `json:"max_delay,omitempty" bson:"max_delay,omitempty"`
	ExponentialBackoff *bool    `json:"exponential_backoff,omitempty" bson:"exponential_backoff,omitempty"`
}

// MaxRetries bounds retries per block run.
const MaxRetries = 100

// Backoff returns the wait before attempt n+1 after attempt n (n ≥ 1) failed: delay, doubled
// per attempt with exponential backoff, never more than max_delay.
func (rc *RetryConfig) Backoff(n int) time.Duration {
	delay, maxDelay, exp := 5.0, 60.0, true
	if rc.Delay != nil {
		delay = *rc.Delay
	}
	if rc.MaxDelay != nil {
		maxDelay = *rc.MaxDelay
	}
	if rc.ExponentialBackoff != nil {
		exp = *rc.ExponentialBackoff
	}
	d := delay
	if exp {
		for i := 1; i < n && d < maxDelay; i++ {
			d *= 2
		}
	}
	d = min(d, maxDelay)
	return time.Duration(d * float64(time.Second))
}

func (rc *RetryConfig) validate(f string, errs *validation.Errors) {
	if rc == nil {
		return
	}
	if rc.Retries < 0 || rc.Retries > MaxRetries {
		errs.Add(f+".retries", "must be from 0 to %d", MaxRetries)
	}
	if rc.Delay != nil && (*rc.Delay < 0 || *rc.Delay > MaxTimeoutSeconds) {
		errs.Add(f+".delay", "must be from 0 to %d seconds", MaxTimeoutSeconds)
	}
	if rc.MaxDelay != nil && (*rc.MaxDelay < 0 || *rc.MaxDelay > MaxTimeoutSeconds) {
		errs.Add(f+".max_delay", "must be from 0 to %d seconds", MaxTimeoutSeconds)
	}
}

// EffectiveRetry is the retry configuration of block b: its own, else the pipeline's, else
// none.
func EffectiveRetry(pipelineDefault, block *RetryConfig) RetryConfig {
	switch {
	case block != nil:
		return *block
	case pipelineDefault != nil:
		return *pipelineDefault
	}
	return RetryConfig{}
}

// ConcurrencyConfig limits how much of a pipeline runs at once, as Mage's does.
type ConcurrencyConfig struct {
	// BlockRunLimit caps the queued and running block runs of one pipeline run.
	BlockRunLimit int `json:"block_run_limit,omitempty" bson:"block_run_limit,omitempty"`
	// PipelineRunLimit caps the running runs of one schedule (a schedule's
	// settings.pipeline_run_limit overrides it).
	PipelineRunLimit int `json:"pipeline_run_limit,omitempty" bson:"pipeline_run_limit,omitempty"`
	// PipelineRunLimitAllTriggers caps the running runs of the pipeline.
	PipelineRunLimitAllTriggers int `json:"pipeline_run_limit_all_triggers,omitempty" bson:"pipeline_run_limit_all_triggers,omitempty"`
	// OnPipelineRunLimitReached is wait (runs stay initial until a slot frees) or skip (they
	// are cancelled).
	OnPipelineRunLimitReached string `json:"on_pipeline_run_limit_reached,omitempty" bson:"on_pipeline_run_limit_reached,omitempty"`
}

func (cc *ConcurrencyConfig) validate(f string, errs *validation.Errors) {
	if cc == nil {
		return
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"block_run_limit", cc.BlockRunLimit}, {"pipeline_run_limit", cc.PipelineRunLimit}, {"pipeline_run_limit_all_triggers", cc.PipelineRunLimitAllTriggers}} {
		if l.v < 0 || l.v > 100000 {
			errs.Add(f+"."+l.name, "must be from 0 (no limit) to 100000")
		}
	}
	switch cc.OnPipelineRunLimitReached {
	case "", "wait", "skip":
	default:
		errs.Add(f+".on_pipeline_run_limit_reached", "must be wait or skip")
	}
}

// Runner says how a block is executed. Which fields apply depends on Kind.
type Runner struct {
	Kind string `json:"kind" bson:"kind"`
	// sleep
	Seconds float64 `json:"seconds,omitempty" bson:"seconds,omitempty"`
	// command
	Command []string          `json:"command,omitempty" bson:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty" bson:"env,omitempty"`
	Dir     string            `json:"dir,omitempty" bson:"dir,omitempty"`
	// http
	Method  string            `json:"method,omitempty" bson:"method,omitempty"`
	URL     string            `json:"url,omitempty" bson:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty" bson:"headers,omitempty"`
	Body    string            `json:"body,omitempty" bson:"body,omitempty"`
	// command and http: seconds before the attempt is abandoned; 0 means no limit.
	Timeout float64 `json:"timeout,omitempty" bson:"timeout,omitempty"`
}

var uuidPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$`)

// Normalize fills defaults a client may leave out: names default to uuids, a block's type to
// "custom", an http runner's method to GET.
func (p *Pipeline) Normalize() {
	p.UUID = strings.TrimSpace(p.UUID)
	if p.Name == "" {
		p.Name = p.UUID
	}
	if p.Variables == nil {
		p.Variables = map[string]any{}
	}
	if p.Provider == "" {
		p.Provider = ProviderNative
	}
	if p.State == "" {
		p.State = StateActive
	}
	if p.Owners == nil {
		p.Owners = []string{}
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	for i := range p.Blocks {
		b := &p.Blocks[i]
		b.UUID = strings.TrimSpace(b.UUID)
		if b.Name == "" {
			b.Name = b.UUID
		}
		if b.Type == "" {
			b.Type = "custom"
		}
		if b.UpstreamBlocks == nil {
			b.UpstreamBlocks = []string{}
		}
		if b.Runner.Kind == KindHTTP && b.Runner.Method == "" {
			b.Runner.Method = http.MethodGet
		}
		b.Runner.Method = strings.ToUpper(b.Runner.Method)
	}
}

// Validate reports every problem with the definition; field paths start at prefix (the
// request's envelope key, e.g. "pipeline").
func (p *Pipeline) Validate(prefix string) error {
	var errs validation.Errors
	if !uuidPattern.MatchString(p.UUID) {
		errs.Add(prefix+".uuid", "must be 1-255 characters of letters, digits, '_' or '-', not starting with '-'")
	}
	if len(p.Name) > 255 {
		errs.Add(prefix+".name", "must be at most 255 characters")
	}
	if p.Criticality != "" && !slices.Contains(Criticalities, p.Criticality) {
		errs.Add(prefix+".criticality", "must be one of %s", strings.Join(Criticalities, ", "))
	}
	validateLabels(prefix+".owners", p.Owners, &errs)
	validateLabels(prefix+".tags", p.Tags, &errs)
	if len(p.Blocks) > MaxBlocks {
		errs.Add(prefix+".blocks", "must have at most %d blocks", MaxBlocks)
		return errs.Err()
	}
	seen := make(map[string]int, len(p.Blocks))
	for i, b := range p.Blocks {
		f := fmt.Sprintf("%s.blocks[%d]", prefix, i)
		switch j, dup := seen[b.UUID]; {
		case !uuidPattern.MatchString(b.UUID):
			errs.Add(f+".uuid", "must be 1-255 characters of letters, digits, '_' or '-', not starting with '-'")
		case dup:
			errs.Add(f+".uuid", "duplicate block uuid %q (also blocks[%d])", b.UUID, j)
		default:
			seen[b.UUID] = i
		}
		b.Runner.validate(f+".runner", &errs)
		b.RetryConfig.validate(f+".retry_config", &errs)
		if b.Timeout < 0 || b.Timeout > MaxTimeoutSeconds {
			errs.Add(f+".timeout", "must be from 0 to %d seconds", MaxTimeoutSeconds)
		}
	}
	p.RetryConfig.validate(prefix+".retry_config", &errs)
	p.ConcurrencyConfig.validate(prefix+".concurrency_config", &errs)
	for i, b := range p.Blocks {
		f := fmt.Sprintf("%s.blocks[%d].upstream_blocks", prefix, i)
		for _, up := range b.UpstreamBlocks {
			if _, ok := seen[up]; !ok {
				errs.Add(f, "block %q names unknown upstream block %q", b.UUID, up)
			} else if up == b.UUID {
				errs.Add(f, "block %q lists itself as upstream", b.UUID)
			}
		}
		if dups := duplicates(b.UpstreamBlocks); len(dups) > 0 {
			errs.Add(f, "block %q lists upstream %q more than once", b.UUID, dups[0])
		}
	}
	if len(errs) == 0 {
		if cycle := p.findCycle(); cycle != nil {
			errs.Add(prefix+".blocks", "upstream_blocks form a cycle: %s", strings.Join(cycle, " -> "))
		}
	}
	return errs.Err()
}

func (r Runner) validate(f string, errs *validation.Errors) {
	switch r.Kind {
	case KindNoop:
	case KindSleep:
		if r.Seconds < 0 || r.Seconds > MaxSleepSeconds {
			errs.Add(f+".seconds", "must be from 0 to %d", MaxSleepSeconds)
		}
	case KindCommand:
		if len(r.Command) == 0 || r.Command[0] == "" {
			errs.Add(f+".command", "must be a non-empty argument list, e.g. [\"sh\", \"-c\", \"echo hi\"]")
		}
		for k := range r.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				errs.Add(f+".env", "variable name %q is not valid", k)
			}
		}
	case KindHTTP:
		if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, r.Method) {
			errs.Add(f+".method", "must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		}
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Add(f+".url", "must be an absolute http or https URL")
		}
	case "":
		errs.Add(f+".kind", "is required: one of %s", strings.Join(Kinds, ", "))
	default:
		errs.Add(f+".kind", "unknown runner kind %q: must be one of %s", r.Kind, strings.Join(Kinds, ", "))
	}
	if r.Timeout < 0 || r.Timeout > MaxTimeoutSeconds {
		errs.Add(f+".timeout", "must be from 0 to %d seconds", MaxTimeoutSeconds)
	}
}

func duplicates(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	var d []string
	for _, x := range xs {
		if seen[x] {
			d = append(d, x)
		}
		seen[x] = true
	}
	return d
}

// findCycle returns the blocks of one cycle, first block repeated at the end, or nil.
func (p *Pipeline) findCycle() []string {
	const (
		unvisited = iota
		onPath
		done
	)
	state := make(map[string]int, len(p.Blocks))
	ups := make(map[string][]string, len(p.Blocks))
	for _, b := range p.Blocks {
		ups[b.UUID] = b.UpstreamBlocks
	}
	var path []string
	var visit func(string) []string
	visit = func(u string) []string {
		state[u] = onPath
		path = append(path, u)
		for _, up := range ups[u] {
			switch state[up] {
			case onPath:
				i := slices.Index(path, up)
				return append(slices.Clone(path[i:]), up)
			case unvisited:
				if c := visit(up); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[u] = done
		return nil
	}
	for _, b := range p.Blocks {
		if state[b.UUID] == unvisited {
			if c := visit(b.UUID); c != nil {
				slices.Reverse(c)
				return c
			}
		}
	}
	return nil
}

// MaxLabels bounds a pipeline's owners and tags; MaxLabelLen bounds each.
const (
	MaxLabels   = 100
	MaxLabelLen = 255
)

func validateLabels(f string, labels []string, errs *validation.Errors) {
	if len(labels) > MaxLabels {
		errs.Add(f, "must have at most %d entries", MaxLabels)
		return
	}
	for i, l := range labels {
		if l == "" || len(l) > MaxLabelLen {
			errs.Add(fmt.Sprintf("%s[%d]", f, i), "must be 1-%d characters", MaxLabelLen)
		}
	}
}

// Block returns the block with the given uuid.
func (p *Pipeline) Block(uuid string) (Block, bool) {
	for _, b := range p.Blocks {
		if b.UUID == uuid {
			return b, true
		}
	}
	return Block{}, false
}
