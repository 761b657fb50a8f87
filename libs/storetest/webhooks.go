package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/webhook"
)

// WebhookStore is what the suite exercises of webhook subscriptions and deliveries, part of
// Store.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, s *webhook.Subscription) error
	GetWebhook(ctx context.Context, space, id string) (*webhook.Subscription, error)
	// ListWebhooks orders oldest created first.
	ListWebhooks(ctx context.Context, space string, pg store.Page) ([]webhook.Subscription, int64, error)
	UpdateWebhook(ctx context.Context, space, id string, fn func(*webhook.Subscription) error) (*webhook.Subscription, error)
	// DeleteWebhook removes the subscription and its deliveries.
	DeleteWebhook(ctx context.Context, space, id string) error
	// ActiveWebhooks lists the space's active subscriptions.
	ActiveWebhooks(ctx context.Context, space string) ([]webhook.Subscription, error)

	// EnsureDelivery inserts d unless a delivery with its id exists, and returns the stored one.
	EnsureDelivery(ctx context.Context, d *webhook.Delivery) (*webhook.Delivery, error)
	// ClaimDelivery leases the delivery id to token until now+lease and counts an attempt, if
	// it is due at now (pending or retrying, next attempt not after now, no live lease); else
	// ErrNotFound.
	ClaimDelivery(ctx context.Context, id string, now time.Time, lease time.Duration, token string) (*webhook.Delivery, error)
	// FinishDelivery writes d's outcome and clears the lease, if token still holds it; else
	// ErrConflict.
	FinishDelivery(ctx context.Context, d *webhook.Delivery, token string) error
	// DueDeliveries lists deliveries due at now, earliest due first, of subscriptions not in
	// skip.
	DueDeliveries(ctx context.Context, now time.Time, skip []string, limit int) ([]webhook.Delivery, error)
	GetWebhookDelivery(ctx context.Context, id string) (*webhook.Delivery, error)
	// ListDeliveries lists a subscription's deliveries, newest first.
	ListDeliveries(ctx context.Context, space, subscriptionID string, pg store.Page) ([]webhook.Delivery, int64, error)
}

func newSubscription(space string, created time.Time, active bool) *webhook.Subscription {
	return &webhook.Subscription{
		ID: webhook.NewID(), Space: space, URL: "https://hooks.example.com/" + space, EventTypes: []string{"sync.failed"},
		PipelineIDs: []string{"etl"}, Secret: "whsec_0123456789abcdef", Active: active, Description: "d",
		CreatedAt: created, UpdatedAt: created,
	}
}

func newDelivery(sub *webhook.Subscription, eventID string, created time.Time) *webhook.Delivery {
	next := created
	return &webhook.Delivery{
		ID: webhook.DeliveryID(sub.ID, eventID), SubscriptionID: sub.ID, Space: sub.Space, EventID: eventID,
		EventType: "sync.failed", Payload: []byte(`{"id":"` + eventID + `"}`), Status: webhook.StatusPending,
		NextAttemptAt: &next, CreatedAt: created, GiveUpAt: created.Add(time.Hour),
	}
}

// testWebhooks covers subscriptions: create, read, list by space, update, delete (with
// their deliveries), and the active ones of a space.
func testWebhooks(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a1 := newSubscription("a", base, true)
	a2 := newSubscription("a", base.Add(time.Minute), false)
	b1 := newSubscription("b", base, true)
	for _, sub := range []*webhook.Subscription{a2, a1, b1} {
		must(t, s.CreateWebhook(c, sub))
	}
	wantErr(t, s.CreateWebhook(c, a1), store.ErrDuplicate)

	got, err := s.GetWebhook(c, "a", a1.ID)
	must(t, err)
	if got.URL != a1.URL || got.Secret != a1.Secret || !got.Active || len(got.EventTypes) != 1 || got.PipelineIDs[0] != "etl" || !got.CreatedAt.Equal(base) {
		t.Fatalf("webhook read back wrong: %+v", got)
	}
	_, err = s.GetWebhook(c, "b", a1.ID)
	wantErr(t, err, store.ErrNotFound)

	list, total, err := s.ListWebhooks(c, "a", store.Page{})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].ID != a1.ID || list[1].ID != a2.ID {
		t.Fatalf("webhooks of a = %d %+v", total, list)
	}
	list, total, err = s.ListWebhooks(c, "a", store.Page{Limit: 1, Offset: 1})
	must(t, err)
	if total != 2 || len(list) != 1 || list[0].ID != a2.ID {
		t.Fatalf("second page = %d %+v", total, list)
	}

	active, err := s.ActiveWebhooks(c, "a")
	must(t, err)
	if len(active) != 1 || active[0].ID != a1.ID {
		t.Fatalf("active webhooks of a = %+v", active)
	}

	up, err := s.UpdateWebhook(c, "a", a2.ID, func(w *webhook.Subscription) error { w.Active = true; w.URL = "https://other.example.com/"; return nil })
	must(t, err)
	if !up.Active || up.Version != a2.Version+1 || up.URL != "https://other.example.com/" {
		t.Fatalf("updated = %+v", up)
	}
	active, err = s.ActiveWebhooks(c, "a")
	must(t, err)
	if len(active) != 2 {
		t.Fatalf("active after update = %+v", active)
	}
	stop := errors.New("no")
	if _, err := s.UpdateWebhook(c, "a", a2.ID, func(*webhook.Subscription) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("closure error = %v", err)
	}
	_, err = s.UpdateWebhook(c, "b", a2.ID, func(*webhook.Subscription) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	d := newDelivery(a1, "e1", base)
	_, err = s.EnsureDelivery(c, d)
	must(t, err)
	wantErr(t, s.DeleteWebhook(c, "b", a1.ID), store.ErrNotFound)
	must(t, s.DeleteWebhook(c, "a", a1.ID))
	wantErr(t, s.DeleteWebhook(c, "a", a1.ID), store.ErrNotFound)
	_, err = s.GetWebhook(c, "a", a1.ID)
	wantErr(t, err, store.ErrNotFound)
	due, err := s.DueDeliveries(c, base.Add(time.Hour), nil, 10)
	must(t, err)
	if len(due) != 0 {
		t.Fatalf("deliveries of a deleted webhook still due: %+v", due)
	}
}

// testWebhookDeliveries covers delivery records: idempotent creation, claims that exclude
// each other, outcomes written only by the claim's holder, due lists and the log.
func testWebhookDeliveries(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	sub := newSubscription("a", base, true)
	other := newSubscription("a", base, true)
	must(t, s.CreateWebhook(c, sub))
	must(t, s.CreateWebhook(c, other))

	d1, err := s.EnsureDelivery(c, newDelivery(sub, "e1", base))
	must(t, err)
	if d1.Status != webhook.StatusPending || string(d1.Payload) != `{"id":"e1"}` || d1.Attempts != 0 {
		t.Fatalf("created delivery = %+v", d1)
	}
	// Creating it again returns the stored record, not the new one.
	again := newDelivery(sub, "e1", base.Add(time.Minute))
	again.Payload = []byte(`{"id":"changed"}`)
	d1b, err := s.EnsureDelivery(c, again)
	must(t, err)
	if string(d1b.Payload) != `{"id":"e1"}` || !d1b.CreatedAt.Equal(base) {
		t.Fatalf("second ensure = %+v", d1b)
	}
	_, err = s.EnsureDelivery(c, newDelivery(sub, "e2", base.Add(time.Second)))
	must(t, err)
	_, err = s.EnsureDelivery(c, newDelivery(other, "e1", base.Add(2*time.Second)))
	must(t, err)

	// Not due before its next attempt.
	_, err = s.ClaimDelivery(c, d1.ID, base.Add(-time.Second), time.Minute, "early")
	wantErr(t, err, store.ErrNotFound)

	// Eight workers race for one claim: exactly one wins.
	now := base.Add(10 * time.Second)
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := fmt.Sprint("w", i)
			d, err := s.ClaimDelivery(c, d1.ID, now, time.Minute, tok)
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(tok)
				if d.Attempts != 1 || d.LeaseToken != tok {
					t.Errorf("claimed delivery = %+v", d)
				}
			case !errors.Is(err, store.ErrNotFound):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d claims won, want 1", wins.Load())
	}
	tok := winner.Load().(string)

	// A leased delivery is not due; the others are, earliest first; skip leaves a
	// subscription out.
	due, err := s.DueDeliveries(c, now, nil, 10)
	must(t, err)
	if len(due) != 2 || due[0].EventID != "e2" || due[1].SubscriptionID != other.ID {
		t.Fatalf("due = %+v", due)
	}
	due, err = s.DueDeliveries(c, now, []string{other.ID}, 10)
	must(t, err)
	if len(due) != 1 || due[0].EventID != "e2" {
		t.Fatalf("due without %s = %+v", other.ID, due)
	}
	due, err = s.DueDeliveries(c, now, nil, 1)
	must(t, err)
	if len(due) != 1 {
		t.Fatalf("limit 1: %d due", len(due))
	}

	// A failed attempt, recorded by the holder: retried later, not due before then.
	d, err := s.GetWebhookDelivery(c, d1.ID)
	must(t, err)
	d.Fail(now, 503, "503 Service Unavailable")
	wantErr(t, s.FinishDelivery(c, d, "not-the-holder"), store.ErrConflict)
	must(t, s.FinishDelivery(c, d, tok))
	_, err = s.ClaimDelivery(c, d1.ID, now, time.Minute, "again")
	wantErr(t, err, store.ErrNotFound)
	retryAt := now.Add(webhook.Backoff(1))
	d, err = s.ClaimDelivery(c, d1.ID, retryAt, time.Minute, "second")
	must(t, err)
	if d.Attempts != 2 || d.Status != webhook.StatusRetrying || d.ResponseCode != 503 || d.LastError == "" {
		t.Fatalf("second claim = %+v", d)
	}
	d.Succeed(retryAt, 204)
	must(t, s.FinishDelivery(c, d, "second"))
	// Succeeded is final: never claimed or due again.
	_, err = s.ClaimDelivery(c, d1.ID, retryAt.Add(time.Hour), time.Minute, "third")
	wantErr(t, err, store.ErrNotFound)
	ens, err := s.EnsureDelivery(c, newDelivery(sub, "e1", retryAt))
	must(t, err)
	if ens.Status != webhook.StatusSucceeded || ens.DeliveredAt == nil || !ens.DeliveredAt.Equal(retryAt) || ens.NextAttemptAt != nil {
		t.Fatalf("delivered record = %+v", ens)
	}

	// An expired lease can be taken over; the old holder then cannot record its outcome.
	e2 := webhook.DeliveryID(sub.ID, "e2")
	_, err = s.ClaimDelivery(c, e2, now, time.Second, "slow")
	must(t, err)
	taken, err := s.ClaimDelivery(c, e2, now.Add(2*time.Second), time.Minute, "fast")
	must(t, err)
	taken.Fail(now.Add(2*time.Second), 0, "connection refused")
	stale := *taken
	stale.Succeed(now, 200)
	wantErr(t, s.FinishDelivery(c, &stale, "slow"), store.ErrConflict)
	must(t, s.FinishDelivery(c, taken, "fast"))

	// The log: newest first, per subscription, and only in its space.
	log, total, err := s.ListDeliveries(c, "a", sub.ID, store.Page{})
	must(t, err)
	if total != 2 || len(log) != 2 || log[0].EventID != "e2" || log[1].Status != webhook.StatusSucceeded || log[0].Attempts != 2 {
		t.Fatalf("deliveries of %s = %d %+v", sub.ID, total, log)
	}
	log, total, err = s.ListDeliveries(c, "b", sub.ID, store.Page{})
	must(t, err)
	if total != 0 || len(log) != 0 {
		t.Fatalf("deliveries seen from another space: %+v", log)
	}
	_, err = s.GetWebhookDelivery(c, "dlv_missing")
	wantErr(t, err, store.ErrNotFound)
}
