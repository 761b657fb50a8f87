package executor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
)

// runtimeVariables merges what blocks see, in Mage's precedence: pipeline variables <
// schedule variables < run variables; then event variables whose keys are not yet defined;
// then the reserved keys, which nothing overrides.
func runtimeVariables(pl *pipeline.Pipeline, sc *schedule.Schedule, r *run.PipelineRun) map[string]any {
	v := make(map[string]any, len(pl.Variables)+len(sc.Variables)+len(r.Variables)+8)
	maps.Copy(v, pl.Variables)
	maps.Copy(v, sc.Variables)
	maps.Copy(v, r.Variables)
	for k, ev := range r.EventVariables {
		if _, ok := v[k]; !ok {
			v[k] = ev
		}
	}
	event := map[string]any{}
	maps.Copy(event, r.EventVariables)
	ed := r.ExecutionDate.UTC()
	v["execution_date"] = ed.Format("2006-01-02T15:04:05.000Z07:00")
	v["ds"] = ed.Format("2006-01-02")
	v["hr"] = ed.Format("15")
	v["pipeline_run_id"] = r.ID
	v["pipeline_uuid"] = r.PipelineUUID
	v["trigger_name"] = sc.Name
	v["event"] = event
	if _, ok := v["env"]; !ok {
		v["env"] = "prod" // Mage's default
	}
	return v
}

// renderRunner renders every string of a runner's configuration as a Go template over the
// run's variables, e.g. {{ .variables.env }}. A reference to a missing variable is an error,
// so that a typo fails the block instead of running it with an empty value.
func renderRunner(r pipeline.Runner, data map[string]any) (pipeline.Runner, error) {
	out := r
	var err error
	render := func(field, s string) string {
		if err != nil || !strings.Contains(s, "{{") {
			return s
		}
		t, perr := template.New(field).Option("missingkey=error").Parse(s)
		if perr != nil {
			err = fmt.Errorf("runner.%s: %w", field, perr)
			return s
		}
		var buf bytes.Buffer
		if xerr := t.Execute(&buf, data); xerr != nil {
			err = fmt.Errorf("runner.%s: %w", field, xerr)
			return s
		}
		return buf.String()
	}
	if len(r.Command) > 0 {
		out.Command = make([]string, len(r.Command))
		for i, a := range r.Command {
			out.Command[i] = render(fmt.Sprintf("command[%d]", i), a)
		}
	}
	out.Env = renderMap(r.Env, "env", render)
	out.Headers = renderMap(r.Headers, "headers", render)
	out.Dir = render("dir", r.Dir)
	out.URL = render("url", r.URL)
	out.Body = render("body", r.Body)
	out.Method = render("method", r.Method)
	return out, err
}

func renderMap(m map[string]string, field string, render func(field, s string) string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = render(field+"."+k, v)
	}
	return out
}

// variableEnv exposes the variables to a command block: each as RUNYARD_VAR_<NAME> (strings
// as they are, other values as JSON) and all of them as JSON in RUNYARD_VARIABLES.
func variableEnv(vars map[string]any, r *run.PipelineRun, br *run.BlockRun) map[string]string {
	env := make(map[string]string, len(vars)+4)
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := envName(k)
		if name == "" {
			continue
		}
		switch val := vars[k].(type) {
		case string:
			env["RUNYARD_VAR_"+name] = val
		default:
			b, err := json.Marshal(val)
			if err == nil {
				env["RUNYARD_VAR_"+name] = string(b)
			}
		}
	}
	if all, err := json.Marshal(vars); err == nil {
		env["RUNYARD_VARIABLES"] = string(all)
	}
	env["RUNYARD_PIPELINE_RUN_ID"] = strconv.FormatInt(r.ID, 10)
	env["RUNYARD_PIPELINE_UUID"] = r.PipelineUUID
	env["RUNYARD_BLOCK_RUN_ID"] = strconv.FormatInt(br.ID, 10)
	env["RUNYARD_BLOCK_UUID"] = br.BlockUUID
	return env
}

// envName upper-cases a variable name and replaces what an environment name cannot hold.
func envName(k string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(k) {
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
