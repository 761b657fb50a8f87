package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit. SQLite has one writer at a time, and under load most of a write
// transaction's cost is not its own statements but what surrounds them: BEGIN and COMMIT,
// the WAL frames of every page the commit touched (a run's pages, its indexes, the
// counting tables), and handing the one writer connection from goroutine to goroutine. The
// group writer runs the write transactions queued by concurrent callers in one SQLite
// transaction, one after another, and answers every caller only after the shared COMMIT, so
// each caller keeps the semantics of its own transaction: its reads see every earlier write,
// its success is durable when it returns, and a failure leaves nothing of it behind.
//
// That last point needs care without a savepoint per caller (they cost two statements each
// on the one writer). A caller that fails before writing anything (a conditional update that
// declines, a record not found) marks its error as declined: the shared transaction goes on.
// Any other failure may have left part of the caller's writes, or ended the transaction
// (SQLite rolls the whole transaction back on an I/O error or a full disk), so the shared
// transaction is rolled back and every caller of the batch runs again alone, in its own
// transaction, as if there had been no batching. Callers may run twice for that reason: their
// functions start from what they read, as the store's update closures already must.

// maxBatch bounds how many callers share one transaction, so that one commit's WAL append
// stays small and a long queue is answered in steps.
const maxBatch = 128

// errClosed is returned to writes submitted after Close.
var errClosed = errors.New("sqlitestore: store closed")

// writeReq is one caller's write transaction.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

// groupWriter owns the writer connection's transactions for the writes submitted to it.
type groupWriter struct {
	db     *sql.DB
	stmts  *stmtCache
	reqs   chan *writeReq
	quit   chan struct{}
	exited chan struct{}
	stop   sync.Once
}

func newGroupWriter(db *sql.DB, stmts *stmtCache) *groupWriter {
	g := &groupWriter{db: db, stmts: stmts, reqs: make(chan *writeReq), quit: make(chan struct{}), exited: make(chan struct{})}
	go g.loop()
	return g
}

// close stops the writer after the batch in progress; closing twice is harmless, as closing
// a database twice is.
func (g *groupWriter) close() {
	g.stop.Do(func() { close(g.quit) })
	<-g.exited
}

// write runs fn as one write transaction, batched with concurrent ones. fn runs on the
// writer's goroutine, must use only tx (the writer connection is taken), must not keep tx,
// and may run more than once (see above), so it sets every result it hands out afresh on
// each run. Its error, marked with declined when nothing was written, rolls back what it
// wrote and is returned unmarked; nil is returned once its writes are committed.
func (g *groupWriter) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case g.reqs <- req:
	case <-g.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the write is waited for regardless of ctx: returning early could report a
	// failure for a write that then commits.
	return <-req.done
}

func (g *groupWriter) loop() {
	defer close(g.exited)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		case <-g.quit:
			return
		}
		// Everyone already waiting joins this batch; nobody waits for more to arrive.
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		g.run(batch)
		clear(batch)
		// Between batches the connection is free: prepare what the batch ran unprepared.
		g.stmts.prepareWanted(context.Background())
	}
}

// errRedo says a shared transaction was rolled back and its callers must run alone.
var errRedo = errors.New("sqlitestore: batch rolled back")

// declinedError marks a write function's failure that wrote nothing and left the
// transaction usable.
type declinedError struct{ err error }

func (e declinedError) Error() string { return e.err.Error() }
func (e declinedError) Unwrap() error { return e.err }

// declined marks err as a failure before any write.
func declined(err error) error { return declinedError{err} }

// outcome is what a caller is told: its own error, without the declined mark.
func outcome(err error) error {
	var d declinedError
	if errors.As(err, &d) {
		return d.err
	}
	return err
}

// run executes a batch and answers each caller.
func (g *groupWriter) run(batch []*writeReq) {
	results := make([]error, len(batch))
	if len(batch) == 1 {
		results[0] = g.runAlone(batch[0])
	} else {
		switch err := g.runShared(batch, results); {
		case errors.Is(err, errRedo):
			for i, r := range batch {
				results[i] = g.runAlone(r)
			}
		case err != nil:
			for i := range results {
				if results[i] == nil {
					results[i] = err
				}
			}
		}
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// runAlone runs one caller in its own transaction.
func (g *groupWriter) runAlone(r *writeReq) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	tx, err := g.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	if err := r.fn(tx); err != nil {
		_ = tx.Rollback()
		return outcome(err)
	}
	return commit(tx)
}

// runShared runs the batch in one transaction. It records each caller's declined failure in
// results; a returned error fails every caller without one, except errRedo, which asks for
// the batch to run again caller by caller.
func (g *groupWriter) runShared(batch []*writeReq, results []error) error {
	// The transaction is not tied to any caller's context: one caller giving up must not
	// roll back the others' writes.
	tx, err := g.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		err := r.fn(tx)
		if err == nil {
			continue
		}
		var d declinedError
		if errors.As(err, &d) {
			results[i] = d.err
			continue
		}
		_ = tx.Rollback()
		clear(results)
		return errRedo
	}
	return commit(tx)
}

func commit(tx *sql.Tx) error {
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}
