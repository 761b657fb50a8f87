package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/webhook"
)

// migrationWebhooks is the schema of webhook subscriptions and their deliveries. A
// delivery's next_attempt_at is NULL once it succeeded or failed, so the due index holds
// only the deliveries still to be attempted.
const migrationWebhooks = `
CREATE TABLE webhooks (
	id         TEXT PRIMARY KEY,
	space      TEXT NOT NULL,
	active     INTEGER NOT NULL,
	created_at INTEGER NOT NULL, -- unix milliseconds
	version    INTEGER NOT NULL,
	doc        BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhooks_by_space ON webhooks (space, created_at, id);

CREATE TABLE webhook_deliveries (
	id              TEXT PRIMARY KEY,
	subscription_id TEXT NOT NULL,
	space           TEXT NOT NULL,
	next_attempt_at INTEGER, -- unix milliseconds; NULL when finished
	lease_until     INTEGER NOT NULL,
	lease_token     TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	doc             BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
`

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateWebhook inserts w; an existing id is ErrDuplicate.
func (s *Store) CreateWebhook(ctx context.Context, w *webhook.Subscription) error {
	doc, err := encode(w)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO webhooks (id, space, active, created_at, version, doc) VALUES (?, ?, ?, ?, ?, ?)`,
		w.ID, w.Space, boolInt(w.Active), w.CreatedAt.UnixMilli(), w.Version, doc)
	return mapErr(err, "create webhook "+w.ID)
}

// GetWebhook returns the webhook id of space.
func (s *Store) GetWebhook(ctx context.Context, space, id string) (*webhook.Subscription, error) {
	return getDoc[webhook.Subscription](ctx, s.r, "get webhook "+id, `SELECT doc FROM webhooks WHERE id = ? AND space = ?`, id, space)
}

const listWebhooksQuery = `SELECT doc FROM webhooks WHERE space = ? ORDER BY created_at, id`

// ListWebhooks returns a page of the space's webhooks, oldest first, and their count.
func (s *Store) ListWebhooks(ctx context.Context, space string, pg store.Page) ([]webhook.Subscription, int64, error) {
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM webhooks WHERE space = ?`, space).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count webhooks of "+space)
	}
	ws, err := listDocs[webhook.Subscription](ctx, s.r, "list webhooks of "+space, listWebhooksQuery+limitClause(pg), space)
	return ws, total, err
}

const activeWebhooksQuery = `SELECT doc FROM webhooks WHERE space = ? AND active = 1 ORDER BY created_at, id`

// ActiveWebhooks returns the space's active webhooks.
func (s *Store) ActiveWebhooks(ctx context.Context, space string) ([]webhook.Subscription, error) {
	return listDocs[webhook.Subscription](ctx, s.r, "list active webhooks of "+space, activeWebhooksQuery, space)
}

// UpdateWebhook applies fn to the stored webhook and writes the result if fn returns nil.
func (s *Store) UpdateWebhook(ctx context.Context, space, id string, fn func(*webhook.Subscription) error) (*webhook.Subscription, error) {
	return update(ctx, s, "update webhook "+id, `SELECT doc FROM webhooks WHERE id = ? AND space = ?`, []any{id, space}, fn,
		func(tx *sql.Tx, w *webhook.Subscription) error {
			w.Version++
			w.UpdatedAt = now()
			doc, err := encode(w)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE webhooks SET active = ?, version = ?, doc = ? WHERE id = ?`, boolInt(w.Active), w.Version, doc, id)
			return err
		})
}

// DeleteWebhook removes the webhook id of space and its deliveries, in one transaction.
func (s *Store) DeleteWebhook(ctx context.Context, space, id string) error {
	what := "delete webhook " + id
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, what)
	}
	defer func() { _ = tx.Rollback() }()
	if err := deleted(tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ? AND space = ?`, id, space))(what); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE subscription_id = ?`, id); err != nil {
		return mapErr(err, what)
	}
	return mapErr(tx.Commit(), what)
}

func millisOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func writeDelivery(ctx context.Context, x interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}, d *webhook.Delivery, insert bool) (sql.Result, error) {
	doc, err := encode(d)
	if err != nil {
		return nil, err
	}
	if insert {
		return x.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, subscription_id, space, next_attempt_at, lease_until, lease_token, created_at, doc)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.SubscriptionID, d.Space, millisOrNil(d.NextAttemptAt), d.LeaseUntil.UnixMilli(), d.LeaseToken, d.CreatedAt.UnixMilli(), doc)
	}
	return x.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?, lease_until = ?, lease_token = ?, doc = ? WHERE id = ?`,
		millisOrNil(d.NextAttemptAt), d.LeaseUntil.UnixMilli(), d.LeaseToken, doc, d.ID)
}

// EnsureDelivery inserts d unless a delivery with its id exists, and returns the stored one.
func (s *Store) EnsureDelivery(ctx context.Context, d *webhook.Delivery) (*webhook.Delivery, error) {
	if _, err := writeDelivery(ctx, s.w, d, true); err != nil {
		return nil, mapErr(err, "create delivery "+d.ID)
	}
	return getDoc[webhook.Delivery](ctx, s.r, "get delivery "+d.ID, `SELECT doc FROM webhook_deliveries WHERE id = ?`, d.ID)
}

// GetWebhookDelivery returns the delivery id.
func (s *Store) GetWebhookDelivery(ctx context.Context, id string) (*webhook.Delivery, error) {
	return getDoc[webhook.Delivery](ctx, s.r, "get delivery "+id, `SELECT doc FROM webhook_deliveries WHERE id = ?`, id)
}

// errNotDue stops a claim's closure on a delivery that is not due.
var errNotDue = errors.New("delivery not due")

// ClaimDelivery leases the delivery to token until now+lease and counts an attempt, if it is
// due at now; else ErrNotFound. The check and the write share one write transaction.
func (s *Store) ClaimDelivery(ctx context.Context, id string, now time.Time, lease time.Duration, token string) (*webhook.Delivery, error) {
	what := "claim delivery " + id
	d, err := update(ctx, s, what, `SELECT doc FROM webhook_deliveries WHERE id = ?`, []any{id},
		func(d *webhook.Delivery) error {
			if !d.Due(now) {
				return errNotDue
			}
			d.LeaseUntil = now.Add(lease).UTC().Truncate(time.Millisecond)
			d.LeaseToken = token
			d.Attempts++
			return nil
		},
		func(tx *sql.Tx, d *webhook.Delivery) error {
			_, err := writeDelivery(ctx, tx, d, false)
			return err
		})
	if errors.Is(err, errNotDue) {
		return nil, mapErr(sql.ErrNoRows, what)
	}
	return d, err
}

// FinishDelivery writes d's outcome and clears the lease, if token still holds it; else
// ErrConflict.
func (s *Store) FinishDelivery(ctx context.Context, d *webhook.Delivery, token string) error {
	what := "finish delivery " + d.ID
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, what)
	}
	defer func() { _ = tx.Rollback() }()
	var held string
	if err := tx.QueryRowContext(ctx, `SELECT lease_token FROM webhook_deliveries WHERE id = ?`, d.ID).Scan(&held); err != nil {
		return mapErr(err, what)
	}
	if held != token || token == "" {
		return fmt.Errorf("sqlitestore: %s: lease lost: %w", what, store.ErrConflict)
	}
	out := *d
	out.LeaseUntil, out.LeaseToken = time.Time{}, ""
	if _, err := writeDelivery(ctx, tx, &out, false); err != nil {
		return mapErr(err, what)
	}
	return mapErr(tx.Commit(), what)
}

// dueDeliveriesQuery selects due deliveries over the partial index of unfinished ones,
// leaving out the deliveries of skip webhooks.
func dueDeliveriesQuery(skip, limit int) string {
	q := `SELECT doc FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ? AND lease_until <= ?`
	if skip > 0 {
		q += ` AND subscription_id NOT IN (?` + strings.Repeat(", ?", skip-1) + `)`
	}
	return q + ` ORDER BY next_attempt_at` + limitClause(store.Page{Limit: limit})
}

// DueDeliveries lists deliveries due at now, earliest due first, of webhooks not in skip.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, skip []string, limit int) ([]webhook.Delivery, error) {
	ms := now.UnixMilli()
	args := append([]any{ms, ms}, stringArgs(skip)...)
	return listDocs[webhook.Delivery](ctx, s.r, "list due deliveries", dueDeliveriesQuery(len(skip), limit), args...)
}

const listDeliveriesQuery = `SELECT doc FROM webhook_deliveries WHERE subscription_id = ? AND space = ? ORDER BY created_at DESC, id DESC`

// ListDeliveries returns a page of a webhook's deliveries, newest first, and their count.
func (s *Store) ListDeliveries(ctx context.Context, space, subscriptionID string, pg store.Page) ([]webhook.Delivery, int64, error) {
	what := "deliveries of " + subscriptionID
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = ? AND space = ?`, subscriptionID, space).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count "+what)
	}
	ds, err := listDocs[webhook.Delivery](ctx, s.r, "list "+what, listDeliveriesQuery+limitClause(pg), subscriptionID, space)
	return ds, total, err
}
