package sqlitestore

import (
	"strings"
	"testing"
)

// TestWebhookQueriesUseIndexes fails when a webhook query the gateway or the notifier runs
// would scan a table or sort outside an index.
func TestWebhookQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	queries := map[string]struct {
		q    string
		args []any
	}{
		"webhooks of a space":          {listWebhooksQuery + " LIMIT 20", []any{"s"}},
		"active webhooks of a space":   {`SELECT doc FROM webhooks WHERE space = ? AND active = 1 ORDER BY created_at, id`, []any{"s"}},
		"deliveries of a webhook":      {listDeliveriesQuery + " LIMIT 20", []any{"whk", "s"}},
		"due deliveries":               {`SELECT doc FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT 32`, []any{1, 1}},
		"due deliveries of some hooks": {dueDeliveriesQuery(2, 32), []any{1, 1, "a", "b"}},
	}
	for name, q := range queries {
		joined := queryPlan(t, s, name, q.q, q.args...)
		// Walking the partial index of unfinished deliveries is the point of it.
		joined = strings.ReplaceAll(joined, "SCAN webhook_deliveries USING INDEX webhook_deliveries_due", "partial index webhook_deliveries_due")
		for _, bad := range []string{"SCAN webhooks", "SCAN webhook_deliveries", "USE TEMP B-TREE"} {
			if strings.Contains(joined, bad) {
				t.Errorf("%s is not answered by an index: %s", name, joined)
			}
		}
	}
}
