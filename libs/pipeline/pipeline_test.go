package pipeline_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/validation"
)

// validPipeline returns a fresh valid pipeline: a -> b, a -> c, with one block of each
// non-trivial runner kind.
func validPipeline() pipeline.Pipeline {
	return pipeline.Pipeline{
		UUID: "etl_daily",
		Blocks: []pipeline.Block{
			{UUID: "a", Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
			{UUID: "b", UpstreamBlocks: []string{"a"}, Runner: pipeline.Runner{
				Kind:    pipeline.KindCommand,
				Command: []string{"sh", "-c", "echo hi"},
				Env:     map[string]string{"FOO": "bar"},
				Timeout: 30,
			}},
			{UUID: "c", UpstreamBlocks: []string{"a"}, Runner: pipeline.Runner{
				Kind:   pipeline.KindHTTP,
				Method: "post",
				URL:    "https://example.com/hook",
			}},
		},
	}
}

// wantErr is one expected field error: its exact field and substrings its message contains.
type wantErr struct {
	field string
	msg   []string
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prefix string // "pipeline" when empty
		modify func(p *pipeline.Pipeline)
		want   []wantErr // nil means valid
	}{
		{
			name:   "valid diamond-ish pipeline",
			modify: func(*pipeline.Pipeline) {},
		},
		{
			name: "valid with sleep and limits at their maximum",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[0].Runner = pipeline.Runner{Kind: pipeline.KindSleep, Seconds: pipeline.MaxSleepSeconds, Timeout: pipeline.MaxTimeoutSeconds}
			},
		},
		{
			name: "valid with sleep zero seconds",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[0].Runner = pipeline.Runner{Kind: pipeline.KindSleep}
			},
		},
		{
			name: "valid with exactly MaxBlocks blocks",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks = manyBlocks(pipeline.MaxBlocks)
			},
		},
		{
			name:   "other prefix",
			prefix: "body",
			modify: func(p *pipeline.Pipeline) { p.UUID = "bad.uuid" },
			want:   []wantErr{{field: "body.uuid"}},
		},
		{
			name:   "bad pipeline uuid",
			modify: func(p *pipeline.Pipeline) { p.UUID = "bad uuid!" },
			want:   []wantErr{{field: "pipeline.uuid", msg: []string{"letters, digits"}}},
		},
		{
			name:   "pipeline uuid starting with dash",
			modify: func(p *pipeline.Pipeline) { p.UUID = "-etl" },
			want:   []wantErr{{field: "pipeline.uuid"}},
		},
		{
			name:   "empty pipeline uuid",
			modify: func(p *pipeline.Pipeline) { p.UUID = "" },
			want:   []wantErr{{field: "pipeline.uuid"}},
		},
		{
			name:   "pipeline name too long",
			modify: func(p *pipeline.Pipeline) { p.Name = strings.Repeat("n", 256) },
			want:   []wantErr{{field: "pipeline.name", msg: []string{"255"}}},
		},
		{
			name:   "bad block uuid",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].UUID = "b.1" },
			want:   []wantErr{{field: "pipeline.blocks[1].uuid"}},
		},
		{
			name: "duplicate block uuid",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks = append(p.Blocks, pipeline.Block{UUID: "b", Runner: pipeline.Runner{Kind: pipeline.KindNoop}})
			},
			want: []wantErr{{field: "pipeline.blocks[3].uuid", msg: []string{`"b"`, "blocks[1]", "duplicate"}}},
		},
		{
			name:   "unknown upstream",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].UpstreamBlocks = []string{"a", "ghost"} },
			want: []wantErr{{
				field: "pipeline.blocks[1].upstream_blocks",
				msg:   []string{`block "b"`, `upstream block "ghost"`},
			}},
		},
		{
			name:   "self upstream",
			modify: func(p *pipeline.Pipeline) { p.Blocks[2].UpstreamBlocks = []string{"a", "c"} },
			want: []wantErr{{
				field: "pipeline.blocks[2].upstream_blocks",
				msg:   []string{`block "c"`, "itself"},
			}},
		},
		{
			name:   "duplicate upstream entry",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].UpstreamBlocks = []string{"a", "a"} },
			want: []wantErr{{
				field: "pipeline.blocks[1].upstream_blocks",
				msg:   []string{`block "b"`, `upstream "a" more than once`},
			}},
		},
		{
			name: "cycle a -> b -> c -> a",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[0].UpstreamBlocks = []string{"c"}
				p.Blocks[2].UpstreamBlocks = []string{"b"}
			},
			want: []wantErr{{field: "pipeline.blocks", msg: []string{"cycle", "a -> b -> c -> a"}}},
		},
		{
			name: "missing runner kind",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[2].Runner = pipeline.Runner{}
			},
			want: []wantErr{{field: "pipeline.blocks[2].runner.kind", msg: []string{"required", "noop, sleep, command, http"}}},
		},
		{
			name: "unknown runner kind python",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[1].Runner = pipeline.Runner{Kind: "python"}
			},
			want: []wantErr{{field: "pipeline.blocks[1].runner.kind", msg: []string{`"python"`}}},
		},
		{
			name: "sleep seconds negative",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[0].Runner = pipeline.Runner{Kind: pipeline.KindSleep, Seconds: -1}
			},
			want: []wantErr{{field: "pipeline.blocks[0].runner.seconds"}},
		},
		{
			name: "sleep seconds too large",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks[0].Runner = pipeline.Runner{Kind: pipeline.KindSleep, Seconds: pipeline.MaxSleepSeconds + 1}
			},
			want: []wantErr{{field: "pipeline.blocks[0].runner.seconds", msg: []string{fmt.Sprint(pipeline.MaxSleepSeconds)}}},
		},
		{
			name:   "command missing",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].Runner.Command = nil },
			want:   []wantErr{{field: "pipeline.blocks[1].runner.command"}},
		},
		{
			name:   "command with empty program",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].Runner.Command = []string{"", "x"} },
			want:   []wantErr{{field: "pipeline.blocks[1].runner.command"}},
		},
		{
			name:   "env var name with '='",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].Runner.Env = map[string]string{"A=B": "x"} },
			want:   []wantErr{{field: "pipeline.blocks[1].runner.env", msg: []string{`"A=B"`}}},
		},
		{
			name:   "env var name empty",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].Runner.Env = map[string]string{"": "x"} },
			want:   []wantErr{{field: "pipeline.blocks[1].runner.env"}},
		},
		{
			name:   "env var name with NUL",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].Runner.Env = map[string]string{"A\x00": "x"} },
			want:   []wantErr{{field: "pipeline.blocks[1].runner.env"}},
		},
		{
			name:   "http bad method",
			modify: func(p *pipeline.Pipeline) { p.Blocks[2].Runner.Method = "fetch" },
			want:   []wantErr{{field: "pipeline.blocks[2].runner.method", msg: []string{"GET"}}},
		},
		{
			name:   "http non-http URL",
			modify: func(p *pipeline.Pipeline) { p.Blocks[2].Runner.URL = "ftp://example.com/file" },
			want:   []wantErr{{field: "pipeline.blocks[2].runner.url"}},
		},
		{
			name:   "http relative URL",
			modify: func(p *pipeline.Pipeline) { p.Blocks[2].Runner.URL = "/hook" },
			want:   []wantErr{{field: "pipeline.blocks[2].runner.url"}},
		},
		{
			name:   "http URL without host",
			modify: func(p *pipeline.Pipeline) { p.Blocks[2].Runner.URL = "https://" },
			want:   []wantErr{{field: "pipeline.blocks[2].runner.url"}},
		},
		{
			name:   "negative timeout",
			modify: func(p *pipeline.Pipeline) { p.Blocks[1].Runner.Timeout = -1 },
			want:   []wantErr{{field: "pipeline.blocks[1].runner.timeout"}},
		},
		{
			name:   "timeout too large",
			modify: func(p *pipeline.Pipeline) { p.Blocks[2].Runner.Timeout = pipeline.MaxTimeoutSeconds + 1 },
			want:   []wantErr{{field: "pipeline.blocks[2].runner.timeout"}},
		},
		{
			name: "too many blocks",
			modify: func(p *pipeline.Pipeline) {
				p.Blocks = manyBlocks(pipeline.MaxBlocks + 1)
			},
			want: []wantErr{{field: "pipeline.blocks", msg: []string{fmt.Sprint(pipeline.MaxBlocks)}}},
		},
		{
			name: "every problem is reported",
			modify: func(p *pipeline.Pipeline) {
				p.UUID = ""
				p.Blocks[1].Runner.Command = nil
				p.Blocks[2].UpstreamBlocks = []string{"nope"}
			},
			want: []wantErr{
				{field: "pipeline.uuid"},
				{field: "pipeline.blocks[1].runner.command"},
				{field: "pipeline.blocks[2].upstream_blocks", msg: []string{`"c"`, `"nope"`}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := validPipeline()
			tt.modify(&p)
			p.Normalize()
			prefix := tt.prefix
			if prefix == "" {
				prefix = "pipeline"
			}
			err := p.Validate(prefix)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %+v", tt.want)
			}
			var errs validation.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Validate() error %T is not validation.Errors: %v", err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate() returned %d errors, want %d: %v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if errs[i].Field != w.field {
					t.Errorf("error %d: Field = %q, want %q (message %q)", i, errs[i].Field, w.field, errs[i].Message)
				}
				for _, s := range w.msg {
					if !strings.Contains(errs[i].Message, s) {
						t.Errorf("error %d (%s): Message = %q, want it to contain %q", i, errs[i].Field, errs[i].Message, s)
					}
				}
			}
		})
	}
}

// manyBlocks returns n independent noop blocks with distinct uuids.
func manyBlocks(n int) []pipeline.Block {
	bs := make([]pipeline.Block, n)
	for i := range bs {
		bs[i] = pipeline.Block{UUID: fmt.Sprintf("b%d", i), Runner: pipeline.Runner{Kind: pipeline.KindNoop}}
	}
	return bs
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    pipeline.Pipeline
		check func(t *testing.T, p pipeline.Pipeline)
	}{
		{
			name: "pipeline name defaults to trimmed uuid",
			in:   pipeline.Pipeline{UUID: "  etl  "},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if p.UUID != "etl" || p.Name != "etl" {
					t.Errorf("UUID, Name = %q, %q; want etl, etl", p.UUID, p.Name)
				}
			},
		},
		{
			name: "pipeline name kept",
			in:   pipeline.Pipeline{UUID: "etl", Name: "Nightly ETL"},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if p.Name != "Nightly ETL" {
					t.Errorf("Name = %q, want Nightly ETL", p.Name)
				}
			},
		},
		{
			name: "variables map made non-nil",
			in:   pipeline.Pipeline{UUID: "etl"},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if p.Variables == nil {
					t.Error("Variables is nil")
				}
			},
		},
		{
			name: "variables kept",
			in:   pipeline.Pipeline{UUID: "etl", Variables: map[string]any{"k": 1}},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if len(p.Variables) != 1 || p.Variables["k"] != 1 {
					t.Errorf("Variables = %v, want map[k:1]", p.Variables)
				}
			},
		},
		{
			name: "block defaults",
			in:   pipeline.Pipeline{UUID: "etl", Blocks: []pipeline.Block{{UUID: " load "}}},
			check: func(t *testing.T, p pipeline.Pipeline) {
				b := p.Blocks[0]
				if b.UUID != "load" || b.Name != "load" || b.Type != "custom" {
					t.Errorf("UUID, Name, Type = %q, %q, %q; want load, load, custom", b.UUID, b.Name, b.Type)
				}
				if b.UpstreamBlocks == nil || len(b.UpstreamBlocks) != 0 {
					t.Errorf("UpstreamBlocks = %#v, want non-nil empty", b.UpstreamBlocks)
				}
			},
		},
		{
			name: "block name, type and upstreams kept",
			in: pipeline.Pipeline{UUID: "etl", Blocks: []pipeline.Block{
				{UUID: "a"},
				{UUID: "b", Name: "Load", Type: "data_loader", UpstreamBlocks: []string{"a"}},
			}},
			check: func(t *testing.T, p pipeline.Pipeline) {
				b := p.Blocks[1]
				if b.Name != "Load" || b.Type != "data_loader" || len(b.UpstreamBlocks) != 1 || b.UpstreamBlocks[0] != "a" {
					t.Errorf("block = %+v, want Name Load, Type data_loader, UpstreamBlocks [a]", b)
				}
			},
		},
		{
			name: "http method defaults to GET",
			in:   pipeline.Pipeline{UUID: "etl", Blocks: []pipeline.Block{{UUID: "a", Runner: pipeline.Runner{Kind: pipeline.KindHTTP}}}},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if m := p.Blocks[0].Runner.Method; m != "GET" {
					t.Errorf("Method = %q, want GET", m)
				}
			},
		},
		{
			name: "http method upper-cased",
			in:   pipeline.Pipeline{UUID: "etl", Blocks: []pipeline.Block{{UUID: "a", Runner: pipeline.Runner{Kind: pipeline.KindHTTP, Method: "pAtCh"}}}},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if m := p.Blocks[0].Runner.Method; m != "PATCH" {
					t.Errorf("Method = %q, want PATCH", m)
				}
			},
		},
		{
			name: "non-http runner gets no method",
			in:   pipeline.Pipeline{UUID: "etl", Blocks: []pipeline.Block{{UUID: "a", Runner: pipeline.Runner{Kind: pipeline.KindCommand}}}},
			check: func(t *testing.T, p pipeline.Pipeline) {
				if m := p.Blocks[0].Runner.Method; m != "" {
					t.Errorf("Method = %q, want empty", m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.in
			p.Normalize()
			tt.check(t, p)
		})
	}
}

func TestBlock(t *testing.T) {
	t.Parallel()
	p := validPipeline()
	tests := []struct {
		uuid   string
		wantOK bool
	}{
		{"a", true},
		{"c", true},
		{"missing", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.uuid, func(t *testing.T) {
			t.Parallel()
			b, ok := p.Block(tt.uuid)
			if ok != tt.wantOK {
				t.Fatalf("Block(%q) ok = %v, want %v", tt.uuid, ok, tt.wantOK)
			}
			if ok && b.UUID != tt.uuid {
				t.Errorf("Block(%q).UUID = %q", tt.uuid, b.UUID)
			}
		})
	}
}
