package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Delivery statuses.
const (
	// StatusPending: created, not yet attempted.
	StatusPending = "pending"
	// StatusRetrying: attempted and failed; attempted again at NextAttemptAt.
	StatusRetrying = "retrying"
	// StatusSucceeded: the receiver answered 2xx. Never sent again.
	StatusSucceeded = "succeeded"
	// StatusFailed: no 2xx within the retry horizon, or the subscription is gone.
	StatusFailed = "failed"
)

// Delivery is the record of one event sent (or to be sent) to one subscription. Its id is
// DeliveryID(subscription, event), which makes its creation idempotent.
type Delivery struct {
	ID             string `json:"id" bson:"_id"`
	SubscriptionID string `json:"subscription_id" bson:"subscription_id"`
	Space          string `json:"space" bson:"space"`
	EventID        string `json:"event_id" bson:"event_id"`
	EventType      string `json:"event_type" bson:"event_type"`
	// Payload is the event's JSON, sent as the request body on every attempt.
	Payload      []byte `json:"payload" bson:"payload"`
	Status       string `json:"status" bson:"status"`
	Attempts     int    `json:"attempts" bson:"attempts"`
	LastError    string `json:"last_error" bson:"last_error"`
	ResponseCode int    `json:"response_code" bson:"response_code"`
	// NextAttemptAt is when the delivery is next due; nil once it succeeded or failed.
	NextAttemptAt *time.Time `json:"next_attempt_at" bson:"next_attempt_at"`
	// LeaseUntil and LeaseToken are the claim of the worker making the current attempt: no
	// other worker claims the delivery before LeaseUntil, and only the token's holder records
	// the attempt's outcome.
	LeaseUntil  time.Time  `json:"lease_until" bson:"lease_until"`
	LeaseToken  string     `json:"lease_token" bson:"lease_token"`
	CreatedAt   time.Time  `json:"created_at" bson:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at" bson:"delivered_at"`
	// GiveUpAt is CreatedAt plus the retry horizon: no attempt is scheduled after it.
	GiveUpAt time.Time `json:"give_up_at" bson:"give_up_at"`
}

// Due reports whether a worker may attempt d at now.
func (d *Delivery) Due(now time.Time) bool {
	return (d.Status == StatusPending || d.Status == StatusRetrying) && d.NextAttemptAt != nil &&
		!d.NextAttemptAt.After(now) && !d.LeaseUntil.After(now)
}

// Retry schedule: the first retry after BackoffBase, each next one after twice as long, at
// most BackoffCap apart.
const (
	BackoffBase = time.Second
	BackoffCap  = 5 * time.Minute
)

// Backoff is the wait after the attempts-th failed attempt (1 for the first).
func Backoff(attempts int) time.Duration {
	d := BackoffBase
	for i := 1; i < attempts && d < BackoffCap; i++ {
		d *= 2
	}
	return min(d, BackoffCap)
}

// Fail records a failed attempt made at now: the delivery is retried after Backoff, or
// fails for good when that would be past GiveUpAt.
func (d *Delivery) Fail(now time.Time, code int, reason string) {
	d.ResponseCode = code
	d.LastError = reason
	next := now.Add(Backoff(d.Attempts))
	if next.After(d.GiveUpAt) {
		d.Status = StatusFailed
		d.NextAttemptAt = nil
		return
	}
	d.Status = StatusRetrying
	d.NextAttemptAt = &next
}

// Succeed records a 2xx answer at now.
func (d *Delivery) Succeed(now time.Time, code int) {
	d.Status = StatusSucceeded
	d.ResponseCode = code
	d.LastError = ""
	d.NextAttemptAt = nil
	d.DeliveredAt = &now
}

// Request headers of a delivery.
const (
	HeaderEvent     = "X-Runyard-Event"
	HeaderDelivery  = "X-Runyard-Delivery"
	HeaderTimestamp = "X-Runyard-Timestamp"
	HeaderSignature = "X-Runyard-Signature"
	UserAgent       = "Runyard-Webhook/1"
)

// Sign returns the X-Runyard-Signature value of body sent at timestamp (unix seconds):
// "v1=" and the hex HMAC-SHA256, keyed with the secret, of the timestamp, ".", and the body.
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by Verify for a request that was not signed with the secret,
// or not recently.
var ErrBadSignature = errors.New("webhook: bad signature")

// Verify checks a received delivery as a receiver should: the signature header holds a v1
// signature of timestamp and body under secret (compared in constant time), and the timestamp
// is within tolerance of now, so a captured request cannot be replayed later.
func Verify(secret, signatureHeader, timestampHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestampHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrBadSignature, timestampHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp is %s away from now", ErrBadSignature, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(strings.TrimSpace(signatureHeader)), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}
