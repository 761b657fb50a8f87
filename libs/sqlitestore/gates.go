package sqlitestore

import (
	"context"

	"github.com/runyard/runyard/libs/run"
)

// UpdateGate applies fn to the gate key, which starts empty when it does not exist, and
// writes the result if fn returns nil; one write transaction makes the cycle atomic.
func (s *Store) UpdateGate(ctx context.Context, key string, fn func(*run.Gate) error) (*run.Gate, error) {
	what := "update gate " + key
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer func() { _ = tx.Rollback() }()
	g, err := getDoc[run.Gate](ctx, s.inTx(tx), what, `SELECT doc FROM gates WHERE key = ?`, key)
	if isNotFound(err) {
		g, err = &run.Gate{Key: key, Holders: []run.Holder{}}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := fn(g); err != nil {
		return g, err
	}
	g.Version++
	doc, err := encode(g)
	if err != nil {
		return nil, err
	}
	if _, err := s.inTx(tx).ExecContext(ctx, `INSERT INTO gates (key, version, doc) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET version = excluded.version, doc = excluded.doc`, key, g.Version, doc); err != nil {
		return nil, mapErr(err, what)
	}
	return g, mapErr(tx.Commit(), what)
}

// DeleteGate removes the gate key.
func (s *Store) DeleteGate(ctx context.Context, key string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM gates WHERE key = ?`, key))("delete gate " + key)
}
