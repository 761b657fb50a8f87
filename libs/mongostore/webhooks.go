package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/webhook"
)

const (
	colWebhooks   = "webhooks"
	colDeliveries = "webhook_deliveries"
)

// CreateWebhook inserts w; an existing id is ErrDuplicate.
func (s *Store) CreateWebhook(ctx context.Context, w *webhook.Subscription) error {
	_, err := s.db.Collection(colWebhooks).InsertOne(ctx, w)
	return mapErr(err, "create webhook "+w.ID)
}

// GetWebhook returns the webhook id of space.
func (s *Store) GetWebhook(ctx context.Context, space, id string) (*webhook.Subscription, error) {
	var w webhook.Subscription
	if err := s.db.Collection(colWebhooks).FindOne(ctx, bson.M{"_id": id, "space": space}).Decode(&w); err != nil {
		return nil, mapErr(err, "get webhook "+id)
	}
	return &w, nil
}

var webhookOrder = bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}

// ListWebhooks returns a page of the space's webhooks, oldest first, and their count.
func (s *Store) ListWebhooks(ctx context.Context, space string, pg store.Page) ([]webhook.Subscription, int64, error) {
	return findPage[webhook.Subscription](ctx, s.db.Collection(colWebhooks), bson.M{"space": space}, webhookOrder, pg, "webhooks of "+space)
}

// ActiveWebhooks returns the space's active webhooks.
func (s *Store) ActiveWebhooks(ctx context.Context, space string) ([]webhook.Subscription, error) {
	return findAll[webhook.Subscription](ctx, s.db.Collection(colWebhooks), bson.M{"space": space, "active": true},
		options.Find().SetSort(webhookOrder), "active webhooks of "+space)
}

// UpdateWebhook applies fn to the stored webhook and writes the result if fn returns nil.
func (s *Store) UpdateWebhook(ctx context.Context, space, id string, fn func(*webhook.Subscription) error) (*webhook.Subscription, error) {
	return updateInSpace(ctx, s, colWebhooks, id, space, "update webhook "+id, func(w *webhook.Subscription) string { return w.Space },
		func(w *webhook.Subscription) *int64 { return &w.Version },
		func(w *webhook.Subscription, now time.Time) { w.UpdatedAt = now }, fn)
}

// DeleteWebhook removes the webhook id of space, then its deliveries. Without transactions
// the two are separate writes: deliveries left by a crash between them belong to no webhook,
// and the notifier fails them when they come due.
func (s *Store) DeleteWebhook(ctx context.Context, space, id string) error {
	what := "delete webhook " + id
	if err := deleteOne(ctx, s, colWebhooks, bson.M{"_id": id, "space": space}, what); err != nil {
		return err
	}
	_, err := s.db.Collection(colDeliveries).DeleteMany(ctx, bson.M{"subscription_id": id})
	return mapErr(err, what)
}

// EnsureDelivery inserts d unless a delivery with its id exists, and returns the stored one.
func (s *Store) EnsureDelivery(ctx context.Context, d *webhook.Delivery) (*webhook.Delivery, error) {
	_, err := s.db.Collection(colDeliveries).InsertOne(ctx, d)
	if err = mapErr(err, "create delivery "+d.ID); err != nil && !isDuplicate(err) {
		return nil, err
	}
	return s.GetWebhookDelivery(ctx, d.ID)
}

// GetWebhookDelivery returns the delivery id.
func (s *Store) GetWebhookDelivery(ctx context.Context, id string) (*webhook.Delivery, error) {
	var d webhook.Delivery
	if err := s.db.Collection(colDeliveries).FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		return nil, mapErr(err, "get delivery "+id)
	}
	return &d, nil
}

// ClaimDelivery leases the delivery to token until now+lease and counts an attempt, if it is
// due at now; else ErrNotFound. One conditional findAndModify: the filter is the due rule.
func (s *Store) ClaimDelivery(ctx context.Context, id string, now time.Time, lease time.Duration, token string) (*webhook.Delivery, error) {
	defer s.locks.lock(colDeliveries + "/" + id)()
	var d webhook.Delivery
	err := s.db.Collection(colDeliveries).FindOneAndUpdate(ctx,
		bson.M{
			"_id":             id,
			"status":          bson.M{"$in": bson.A{webhook.StatusPending, webhook.StatusRetrying}},
			"next_attempt_at": bson.M{"$lte": now},
			"lease_until":     bson.M{"$lte": now},
		},
		bson.M{
			"$set": bson.M{"lease_until": now.Add(lease).UTC().Truncate(time.Millisecond), "lease_token": token},
			"$inc": bson.M{"attempts": 1},
		},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&d)
	if err != nil {
		return nil, mapErr(err, "claim delivery "+id)
	}
	return &d, nil
}

// FinishDelivery writes d's outcome and clears the lease, if token still holds it; else
// ErrConflict.
func (s *Store) FinishDelivery(ctx context.Context, d *webhook.Delivery, token string) error {
	what := "finish delivery " + d.ID
	if token == "" {
		return fmt.Errorf("mongostore: %s: no lease: %w", what, store.ErrConflict)
	}
	defer s.locks.lock(colDeliveries + "/" + d.ID)()
	out := *d
	out.LeaseUntil, out.LeaseToken = time.Time{}, ""
	res, err := s.db.Collection(colDeliveries).ReplaceOne(ctx, bson.M{"_id": d.ID, "lease_token": token}, &out)
	if err != nil {
		return mapErr(err, what)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongostore: %s: lease lost: %w", what, store.ErrConflict)
	}
	return nil
}

// DueDeliveries lists deliveries due at now, earliest due first, of webhooks not in skip.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, skip []string, limit int) ([]webhook.Delivery, error) {
	filter := bson.M{"next_attempt_at": bson.M{"$lte": now}, "lease_until": bson.M{"$lte": now}}
	if len(skip) > 0 {
		filter["subscription_id"] = bson.M{"$nin": skip}
	}
	opts := options.Find().SetSort(bson.D{{Key: "next_attempt_at", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	return findAll[webhook.Delivery](ctx, s.db.Collection(colDeliveries), filter, opts, "due deliveries")
}

// ListDeliveries returns a page of a webhook's deliveries, newest first, and their count.
func (s *Store) ListDeliveries(ctx context.Context, space, subscriptionID string, pg store.Page) ([]webhook.Delivery, int64, error) {
	return findPage[webhook.Delivery](ctx, s.db.Collection(colDeliveries), bson.M{"subscription_id": subscriptionID, "space": space},
		bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, pg, "deliveries of "+subscriptionID)
}
