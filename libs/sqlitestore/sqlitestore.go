// Package sqlitestore is Runyard's embedded store: one SQLite file (pure Go, so the binary
// stays static) holding every record, for the standalone binary. It passes the same
// conformance suite as the MongoDB store.
//
// Durability: WAL journal with synchronous=NORMAL. A committed write survives a process crash;
// on power loss the last transactions before the loss may roll back, never corrupt the file.
// That is the trade SQLite recommends for WAL and what a single-node orchestrator needs: a run
// lost to power loss is recovered from its command, which JetStream still holds.
//
// Concurrency: one writer connection (SQLite allows one writer at a time anyway, so a pool of
// writers would only queue on the lock) and a pool of reader connections that never block on
// the writer in WAL mode. Read-modify-write cycles run inside one write transaction, so they
// are atomic without optimistic retries.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/runyard/runyard/libs/store"
)

// FileName is the database file inside the data directory.
const FileName = "runyard.db"

// Store is the SQLite store. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the one writer connection
	r *sql.DB // readers
	// g batches the hot write transactions of concurrent callers (see writer.go); writes
	// not routed through it take the writer connection between its batches.
	g *groupWriter
	// rc and wc keep the prepared fixed statements of the readers and the writer.
	rc, wc *stmtCache
}

// Open opens (creating if needed) the database in dir and brings its schema up to date.
func Open(ctx context.Context, dir string) (*Store, error) {
	return openAt(ctx, filepath.Join(dir, FileName), len(migrations))
}

// openAt opens path and migrates it to schema version upTo; tests use it to write a database
// of an older version.
func openAt(ctx context.Context, path string, upTo int) (*Store, error) {
	dsn := func(extra ...string) string {
		q := url.Values{}
		for _, p := range append([]string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(1)", "cache_size(-32000)", "temp_store(MEMORY)"}, extra...) {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := migrate(ctx, w, upTo); err != nil {
		_ = w.Close()
		return nil, err
	}
	// Readers get a smaller page cache than the writer: they are several, their pages stay in
	// the OS page cache anyway, and at 32 MB each they held most of the process's memory
	// once the file outgrew them.
	r, err := sql.Open("sqlite", dsn("query_only(1)", "cache_size(-8000)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlitestore: open readers: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	wc := newStmtCache(w, true)
	return &Store{w: w, r: r, g: newGroupWriter(w, wc), rc: newStmtCache(r, false), wc: wc}, nil
}

// reader runs fixed statements on the readers with their prepared statements.
func (s *Store) reader() cachedDB { return cachedDB{db: s.r, c: s.rc} }

// inTx runs fixed statements in the write transaction tx with the writer's prepared
// statements.
func (s *Store) inTx(tx *sql.Tx) cachedTx { return cachedTx{tx: tx, c: s.wc} }

// Close closes the database.
func (s *Store) Close(context.Context) error {
	s.g.close()
	s.rc.close()
	s.wc.close()
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlitestore: ping: %w", err)
	}
	return nil
}

// NextIDs reserves n consecutive ids of the sequence name and returns the last one.
func (s *Store) NextIDs(ctx context.Context, name string, n int64) (int64, error) {
	var last int64
	err := s.w.QueryRowContext(ctx,
		`INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value RETURNING value`,
		name, n).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: allocate %d %s ids: %w", n, name, err)
	}
	return last, nil
}

func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlitestore: %s: %w", what, store.ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return fmt.Errorf("sqlitestore: %s: %w", what, store.ErrDuplicate)
	}
	return fmt.Errorf("sqlitestore: %s: %w", what, err)
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: encode: %w", err)
	}
	return b, nil
}

// queryer is what reads need: the reader pool, or a write transaction.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// getDoc decodes the doc column of the one row q selects.
func getDoc[T any](ctx context.Context, db queryer, what, q string, args ...any) (*T, error) {
	var raw []byte
	if err := db.QueryRowContext(ctx, q, args...).Scan(&raw); err != nil {
		return nil, mapErr(err, what)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("sqlitestore: %s: decode: %w", what, err)
	}
	return &v, nil
}

// listDocs decodes the doc column of every row q selects.
func listDocs[T any](ctx context.Context, db queryer, what, q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, mapErr(err, what)
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("sqlitestore: %s: decode: %w", what, err)
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err(), what)
}

// update runs fn on the record q selects inside one write transaction (batched with
// concurrent ones by the group writer) and writes it back with write; fn's error aborts
// without writing.
func update[T any](ctx context.Context, s *Store, what, q string, args []any, fn func(*T) error, write func(tx *sql.Tx, v *T) error) (*T, error) {
	var v, aborted *T
	var own error // the cycle's own failure, already described
	err := s.g.write(ctx, func(tx *sql.Tx) error {
		v, aborted, own = nil, nil, nil
		got, err := getDoc[T](context.WithoutCancel(ctx), s.inTx(tx), what, q, args...)
		if err != nil {
			own = err
			return declinedIf(err)
		}
		if err := fn(got); err != nil {
			aborted, own = got, err
			return declined(err)
		}
		if err := write(tx, got); err != nil {
			// write may have run several statements before failing: never declined.
			own = mapErr(err, what)
			return own
		}
		v = got
		return nil
	})
	switch {
	case own != nil:
		return aborted, own
	case err != nil:
		return nil, mapErr(err, what)
	}
	return v, nil
}

// declinedIf marks the store errors that a single statement fails with before writing, or
// after SQLite has undone the statement, leaving the transaction usable: the record is
// missing, or a unique key is taken. Anything else (I/O, a full disk, an interrupt) may have
// ended the transaction.
func declinedIf(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDuplicate) {
		return declined(err)
	}
	return err
}

// where builds a WHERE clause from the non-zero conditions.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any, set bool) {
	if set {
		w.conds = append(w.conds, cond)
		w.args = append(w.args, arg)
	}
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func limitClause(pg store.Page) string {
	limit := pg.Limit
	if limit <= 0 {
		limit = -1
	}
	return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, pg.Offset)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
