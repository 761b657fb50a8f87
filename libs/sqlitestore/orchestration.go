package sqlitestore

import (
	"context"
	"strings"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/store"
)

// pipelineFilter returns the FROM and WHERE clauses of the orchestration pipeline list. The
// equality filters are generated columns with an index each; owners, the text search and
// watched pipelines are semi-joins on small tables keyed by space (pipeline_owners,
// pipeline_search, watches), so no filter reads every pipeline document of the space.
//
// Without statistics (the store never runs ANALYZE) SQLite prefers the primary key's space
// range to any secondary index of a WITHOUT ROWID table, and would read every pipeline of the
// space; so a list filtered by equalities alone names the index of its most selective one. A
// semi-join needs no such help: its uuids are probed by primary key.
func pipelineFilter(f store.PipelineFilter) (string, string, []any) {
	conds := []string{"space = ?"}
	args := []any{f.Space}
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	eq("provider", f.Provider)
	eq("state", f.State)
	eq("team_id", f.TeamID)
	eq("connector_id", f.ConnectorID)
	eq("criticality", f.Criticality)
	if f.Owner != "" {
		conds = append(conds, `uuid IN (SELECT uuid FROM pipeline_owners WHERE space = ? AND owner = ?)`)
		args = append(args, f.Space, f.Owner)
	}
	switch {
	case f.Query == "":
	case strings.Contains(f.Query, searchSeparator):
		conds = append(conds, "0") // a query cannot span two fields
	default:
		conds = append(conds, `uuid IN (SELECT uuid FROM pipeline_search WHERE space = ? AND instr(text, ?) > 0)`)
		args = append(args, f.Space, strings.ToLower(f.Query))
	}
	if f.WatchedBy != "" {
		conds = append(conds, `uuid IN (SELECT pipeline_uuid FROM watches WHERE space = ? AND user_id = ?)`)
		args = append(args, f.Space, f.WatchedBy)
	}
	from := "pipelines"
	if f.Owner == "" && f.Query == "" && f.WatchedBy == "" {
		for _, ix := range []struct{ name, v string }{
			{"pipelines_by_connector", f.ConnectorID}, {"pipelines_by_team", f.TeamID}, {"pipelines_by_criticality", f.Criticality},
			{"pipelines_by_state", f.State}, {"pipelines_by_provider", f.Provider},
		} {
			if ix.v != "" {
				from += " INDEXED BY " + ix.name
				break
			}
		}
	}
	return from, " WHERE " + strings.Join(conds, " AND "), args
}

// searchSeparator separates the fields of a pipeline's searchable text (SQL char(31)).
const searchSeparator = "\x1f"

// pipelineSearchText is the SQL expression of a pipeline's searchable text, its fields lower
// case (SQLite folds ASCII letters only) and separated by searchSeparator, read from the row's
// document; row is "NEW." or "".
func pipelineSearchText(row string) string {
	field := func(path string) string { return `coalesce(json_extract(` + row + `doc, '$.` + path + `'), '')` }
	return `lower(` + row + `uuid || char(31) || ` + field("name") + ` || char(31) || ` + field("description") + ` || char(31) || ` + field("provider_id") + `)`
}

func listPipelinesFilteredQuery(from, where string, pg store.Page) string {
	return `SELECT doc FROM ` + from + where + ` ORDER BY uuid` + limitClause(pg)
}

// ListPipelinesFiltered returns a page of the pipelines f selects, by uuid, and their total
// count.
func (s *Store) ListPipelinesFiltered(ctx context.Context, f store.PipelineFilter, pg store.Page) ([]pipeline.Pipeline, int64, error) {
	from, where, args := pipelineFilter(f)
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM `+from+where, args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count pipelines")
	}
	ps, err := listDocs[pipeline.Pipeline](ctx, s.r, "list pipelines", listPipelinesFilteredQuery(from, where, pg), args...)
	return ps, total, err
}

// listRunsByStartQuery lists runs in a started window by start time, over the partial index
// runs_by_pipeline_started: a bound on started_ms implies it is not null, which is what lets
// SQLite use that index.
func listRunsByStartQuery(w *where, pg store.Page, oldestFirst bool) string {
	order := ` ORDER BY started_ms DESC, id DESC`
	if oldestFirst {
		order = ` ORDER BY started_ms, id`
	}
	return `SELECT doc FROM pipeline_runs` + w.String() + order + limitClause(pg)
}

// runsByTypeOrStartCounted reports whether f's total must be counted over the runs rather
// than read from run_counts, which keeps neither run types nor start times. Within a
// pipeline the count is a range of runs_by_pipeline_type or runs_by_pipeline_started.
func runsByTypeOrStartCounted(f store.RunFilter) bool {
	return f.RunType != "" || f.ByStart()
}
