package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/runyard/runyard/libs/run"
)

func cached(c *stmtCache, q string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.stmts[q]
	return ok
}

// A run's writes and reads leave their statements prepared: the readers' at once, the
// writer's after the batch that first ran them; the results are those of unprepared
// statements, also on the second pass that uses the prepared ones.
func TestStatementsStayPrepared(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	ctx := context.Background()
	for id := int64(1); id <= 2; id++ {
		if err := runWrites(ctx, s, id); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != run.StatusCompleted || r.Version != 1 {
			t.Fatalf("run %d: status %s version %d", id, r.Status, r.Version)
		}
		brs, err := s.BlockRunsOf(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(brs) != 3 {
			t.Fatalf("run %d: %d block runs", id, len(brs))
		}
		for _, br := range brs {
			if br.Status != run.StatusCompleted || br.PipelineRunID != id {
				t.Fatalf("run %d: block run %+v", id, br)
			}
		}
	}
	for _, q := range []string{`SELECT doc FROM pipeline_runs WHERE id = ?`, `SELECT doc FROM block_runs WHERE pipeline_run_id = ? ORDER BY id`} {
		if !cached(s.rc, q) {
			t.Errorf("reader statement not prepared: %s", q)
		}
	}
	for _, q := range []string{`UPDATE block_runs SET version = ?, doc = ?, log = ? WHERE id = ?`, `SELECT doc FROM pipeline_runs WHERE id = ?`} {
		if !cached(s.wc, q) {
			t.Errorf("writer statement not prepared: %s", q)
		}
	}
}

// The cache stops growing at its bound and a statement that does not prepare is not kept:
// both then run unprepared, with the same results and errors.
func TestStatementCacheBound(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	ctx := context.Background()
	c := newStmtCache(s.r, false)
	t.Cleanup(c.close)
	d := cachedDB{db: s.r, c: c}
	for i := range maxCachedStmts + 10 {
		var n int
		if err := d.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + ?`, i), 1).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i+1 {
			t.Fatalf("statement %d returned %d", i, n)
		}
	}
	if len(c.stmts) != maxCachedStmts {
		t.Fatalf("%d statements cached, want %d", len(c.stmts), maxCachedStmts)
	}
	c2 := newStmtCache(s.r, false)
	t.Cleanup(c2.close)
	if err := (cachedDB{db: s.r, c: c2}).QueryRowContext(ctx, `SELECT FROM nowhere`).Scan(new(int)); err == nil {
		t.Fatal("a statement that does not parse succeeded")
	}
	if len(c2.stmts) != 0 {
		t.Fatal("a statement that does not parse was cached")
	}
}

// A writer statement first run in a transaction is prepared once the connection is free,
// and later transactions use it.
func TestWriterStatementPreparedAfterBatch(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	ctx := context.Background()
	const q = `INSERT INTO counters (name, value) VALUES (?, 1)`
	for i := range 3 {
		if err := s.g.write(ctx, func(tx *sql.Tx) error {
			_, err := s.inTx(tx).ExecContext(ctx, q, fmt.Sprintf("c%d", i))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !cached(s.wc, q) {
		t.Fatal("writer statement not prepared after its batch")
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM counters WHERE name LIKE 'c%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d rows written, want 3", n)
	}
}
