package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared statements. Preparing is SQLite's parser and code generator, and for a
// pipeline_runs write it also compiles the counting triggers; without a cache it runs on
// every execution and was the largest single cost of a run's store writes. A statement cache
// keeps one *sql.Stmt per SQL text for each connection pool; database/sql prepares it once
// on each connection that runs it and the driver keeps the compiled statement between
// executions.
//
// Only statements whose text is fixed go through the cache (the call sites choose): a text
// built with literal limits or a variable number of placeholders would fill it with
// statements run once. maxCachedStmts bounds it all the same.
const maxCachedStmts = 128

// stmtCache holds the prepared statements of one pool.
type stmtCache struct {
	db *sql.DB
	// deferred is set for the writer pool: its one connection is held by the transaction
	// that first runs a statement, so the statement is prepared after that transaction
	// (prepareWanted) and runs unprepared until then.
	deferred bool

	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]struct{}
	closed bool
}

func newStmtCache(db *sql.DB, deferred bool) *stmtCache {
	return &stmtCache{db: db, deferred: deferred, stmts: map[string]*sql.Stmt{}, wanted: map[string]struct{}{}}
}

// get returns the prepared statement of q, preparing it now for a pool that allows it; nil
// means run q unprepared.
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.stmts[q]
	full := c.closed || len(c.stmts)+len(c.wanted) >= maxCachedStmts
	if !ok && !full && c.deferred {
		c.wanted[q] = struct{}{}
	}
	c.mu.Unlock()
	if ok || full || c.deferred {
		return st
	}
	// A statement that fails to prepare is not cached: running it unprepared reports the
	// error to its caller.
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	return c.keep(q, st)
}

// keep caches st for q, or returns the statement another caller cached meanwhile.
func (c *stmtCache) keep(q string, st *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if have, ok := c.stmts[q]; ok || c.closed {
		_ = st.Close()
		return have
	}
	c.stmts[q] = st
	return st
}

// prepareWanted prepares the statements the writer ran unprepared. It must be called when
// the caller holds no transaction on the pool.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	qs := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		qs = append(qs, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range qs {
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.keep(q, st)
		}
	}
}

// close finalizes every cached statement; later lookups run their statements unprepared.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
	clear(c.wanted)
}

// cachedDB runs fixed statements on a pool through its cache.
type cachedDB struct {
	db *sql.DB
	c  *stmtCache
}

func (d cachedDB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := d.c.get(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.db.QueryContext(ctx, q, args...)
}

func (d cachedDB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := d.c.get(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.db.QueryRowContext(ctx, q, args...)
}

// cachedTx runs fixed statements inside a write transaction through the writer's cache.
type cachedTx struct {
	tx *sql.Tx
	c  *stmtCache
}

func (t cachedTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.c.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.c.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t cachedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.c.get(ctx, q); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}
