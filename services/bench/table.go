package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// goal is a target a measured value is checked against.
type goal struct {
	AtLeast bool    `json:"at_least"` // value ≥ Limit; otherwise value ≤ Limit
	Limit   float64 `json:"limit"`
}

func atLeast(v float64) *goal { return &goal{AtLeast: true, Limit: v} }
func atMost(v float64) *goal  { return &goal{Limit: v} }

func (g goal) met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if g.AtLeast {
		return v >= g.Limit
	}
	return v <= g.Limit
}

// row is one line of the result table.
type row struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Goal     *goal   `json:"target,omitempty"`
	// Failed says the value could not be measured; Note says why.
	Failed bool   `json:"failed,omitempty"`
	Note   string `json:"note,omitempty"`
	OK     *bool  `json:"ok,omitempty"`
}

// newRow builds a measured row and checks it against g (nil: no target).
func newRow(scenario, metric string, v float64, unit string, g *goal) row {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return failedRow(scenario, metric, unit, g, fmt.Errorf("not a finite number"))
	}
	r := row{Scenario: scenario, Metric: metric, Value: v, Unit: unit, Goal: g}
	if g != nil {
		ok := g.met(v)
		r.OK = &ok
	}
	return r
}

// failedRow reports a metric that could not be measured; a missed target if it had one.
func failedRow(scenario, metric, unit string, g *goal, err error) row {
	r := row{Scenario: scenario, Metric: metric, Unit: unit, Goal: g, Failed: true}
	if err != nil {
		r.Note = err.Error()
	}
	if g != nil {
		ok := false
		r.OK = &ok
	}
	return r
}

// formatValue renders v in unit.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	switch unit {
	case "ms":
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case "%":
		return strconv.FormatFloat(v, 'f', 0, 64) + "%"
	case "MB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " MB"
	case "":
		return groupDigits(v, 0)
	case "x":
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		decimals := 0
		if math.Abs(v) < 100 && v != math.Trunc(v) {
			decimals = 1
		}
		return groupDigits(v, decimals) + " " + unit
	}
}

// groupDigits formats v with thousands separators.
func groupDigits(v float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && s != strconv.FormatFloat(0, 'f', decimals, 64) {
		b.WriteByte('-')
	}
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

func (g *goal) String(unit string) string {
	if g == nil {
		return ""
	}
	op := "<="
	if g.AtLeast {
		op = ">="
	}
	return op + " " + formatValue(g.Limit, unit)
}

func (r row) valueText() string {
	if r.Failed {
		if r.Note != "" {
			return "failed: " + truncate(r.Note, 60)
		}
		return "failed"
	}
	return formatValue(r.Value, r.Unit)
}

func (r row) okText() string {
	switch {
	case r.OK == nil:
		return ""
	case *r.OK:
		return "ok"
	default:
		return "MISS"
	}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:n-1]) + "…"
}

// formatTable renders rows as an aligned text table: scenario, metric, value, target, ok?.
// A scenario's name is printed on its first row only.
func formatTable(rows []row) string {
	header := []string{"scenario", "metric", "value", "target", "ok?"}
	cells := [][]string{header}
	prev := ""
	for _, r := range rows {
		sc := r.Scenario
		if sc == prev {
			sc = ""
		}
		prev = r.Scenario
		cells = append(cells, []string{sc, r.Metric, r.valueText(), r.Goal.String(r.Unit), r.okText()})
	}
	widths := make([]int, len(header))
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	writeLine := func(line []string) {
		var sb strings.Builder
		for i, c := range line {
			if i > 0 {
				sb.WriteString("  ")
			}
			sb.WriteString(c)
			if i < len(line)-1 {
				sb.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			}
		}
		b.WriteString(strings.TrimRight(sb.String(), " "))
		b.WriteByte('\n')
	}
	writeLine(cells[0])
	sep := make([]string, len(header))
	for i, w := range widths {
		sep[i] = strings.Repeat("-", w)
	}
	writeLine(sep)
	for _, line := range cells[1:] {
		writeLine(line)
	}
	return b.String()
}

// summaryLine counts the rows with a target and those that missed it.
func summaryLine(rows []row) string {
	var withGoal, missed []string
	for _, r := range rows {
		if r.OK == nil {
			continue
		}
		withGoal = append(withGoal, r.Metric)
		if !*r.OK {
			missed = append(missed, r.Scenario+" / "+r.Metric)
		}
	}
	if len(missed) == 0 {
		return fmt.Sprintf("all %d targets met", len(withGoal))
	}
	return fmt.Sprintf("%d of %d targets missed: %s", len(missed), len(withGoal), strings.Join(missed, "; "))
}
