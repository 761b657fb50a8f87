// Package webhook holds Runyard's signed webhooks: the subscriptions space admins register
// (an endpoint, the event types and pipelines it wants), the delivery record of each event
// sent to each subscription, the signature a receiver verifies, and the retry schedule.
// Stores keep the records, the gateway manages subscriptions and the notifier delivers.
package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/netguard"
	"github.com/runyard/runyard/libs/validation"
)

// Limits of a subscription's fields.
const (
	MaxURLLength         = 2048
	MaxDescriptionLength = 1000
	MaxPipelineIDs       = 100
	MaxPipelineIDLength  = 255
	MinSecretLength      = 16
	MaxSecretLength      = 256
)

// Subscription is a space's webhook: events of the space that match its filters are POSTed
// to URL, signed with Secret.
type Subscription struct {
	ID    string `json:"id" bson:"_id"`
	Space string `json:"space" bson:"space"`
	URL   string `json:"url" bson:"url"`
	// EventTypes selects event types; empty means every type.
	EventTypes []string `json:"event_types" bson:"event_types"`
	// PipelineIDs selects events about these pipelines; empty means every pipeline, and
	// events about no pipeline.
	PipelineIDs []string `json:"pipeline_ids" bson:"pipeline_ids"`
	// Secret is the signing secret as stored: sealed when SecretSealed, else in clear. It is
	// never shown after creation; SigningSecret returns it in clear.
	Secret       string    `json:"secret" bson:"secret"`
	SecretSealed bool      `json:"secret_sealed" bson:"secret_sealed"`
	Active       bool      `json:"active" bson:"active"`
	Description  string    `json:"description" bson:"description"`
	Version      int64     `json:"version" bson:"version"`
	CreatedAt    time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt    time.Time `json:"updated_at" bson:"updated_at"`
}

// Matches reports whether the subscription wants an event of type typ about pipeline (""
// for an event about no pipeline) that occurred at occurred. A subscription receives only
// what happened after it was created, so a new one is not flooded with the event history.
func (s *Subscription) Matches(typ, pipeline string, occurred time.Time) bool {
	if !s.Active || occurred.Before(s.CreatedAt.Add(-time.Second)) {
		return false
	}
	if len(s.EventTypes) > 0 && !slices.Contains(s.EventTypes, typ) {
		return false
	}
	return len(s.PipelineIDs) == 0 || (pipeline != "" && slices.Contains(s.PipelineIDs, pipeline))
}

// Normalize trims the fields a client types and drops repeated filter entries.
func (s *Subscription) Normalize() {
	s.URL = strings.TrimSpace(s.URL)
	s.Description = strings.TrimSpace(s.Description)
	s.EventTypes = dedupe(s.EventTypes)
	s.PipelineIDs = dedupe(s.PipelineIDs)
	if s.EventTypes == nil {
		s.EventTypes = []string{}
	}
	if s.PipelineIDs == nil {
		s.PipelineIDs = []string{}
	}
}

func dedupe(vs []string) []string {
	var out []string
	for _, v := range vs {
		v = strings.TrimSpace(v)
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Validate checks the subscription's fields (not Secret, which may be stored encrypted:
// check a new secret with ValidateSecret). guard decides which URL hosts are refused
// outright; the notifier checks again the address it dials.
func (s *Subscription) Validate(guard netguard.Guard) error {
	var errs validation.Errors
	if err := ValidateURL(s.URL, guard); err != nil {
		errs.Add("url", "%s", err.Error())
	}
	for i, t := range s.EventTypes {
		if !event.Known(t) {
			errs.Add(indexed("event_types", i), "must be one of %s", strings.Join(event.Types, ", "))
		}
	}
	if len(s.PipelineIDs) > MaxPipelineIDs {
		errs.Add("pipeline_ids", "must list at most %d pipelines", MaxPipelineIDs)
	}
	for i, p := range s.PipelineIDs {
		if p == "" || len(p) > MaxPipelineIDLength {
			errs.Add(indexed("pipeline_ids", i), "must be a pipeline id of 1 to %d characters", MaxPipelineIDLength)
		}
	}
	if utf8.RuneCountInString(s.Description) > MaxDescriptionLength {
		errs.Add("description", "must be at most %d characters", MaxDescriptionLength)
	}
	return errs.Err()
}

func indexed(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// urlError is a reason a URL is refused, worded for the client.
type urlError string

func (e urlError) Error() string { return string(e) }

// ValidateURL accepts an absolute http or https URL with a host and no user information,
// whose host the guard does not refuse outright.
func ValidateURL(raw string, guard netguard.Guard) error {
	if raw == "" {
		return urlError("is required")
	}
	if len(raw) > MaxURLLength {
		return urlError("must be at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return urlError("is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlError("must be an http or https URL")
	}
	if u.User != nil {
		return urlError("must not contain user information; authenticate the request with its signature")
	}
	if u.Host == "" || u.Hostname() == "" {
		return urlError("must name a host")
	}
	if u.Fragment != "" {
		return urlError("must not have a fragment")
	}
	if err := guard.CheckHost(u.Hostname()); err != nil {
		return urlError("must not point at a link-local, metadata, loopback or private address")
	}
	return nil
}

// SecretBox seals secrets at rest. The subscription's id is bound to the sealed value, so a
// sealed secret copied onto another subscription does not open.
type SecretBox interface {
	Seal(id, plaintext string) (string, error)
	Open(id, sealed string) (string, error)
}

// SetSecret stores secret, sealed by box when there is one; s.ID must be set.
func (s *Subscription) SetSecret(box SecretBox, secret string) error {
	if box == nil {
		s.Secret, s.SecretSealed = secret, false
		return nil
	}
	sealed, err := box.Seal(s.ID, secret)
	if err != nil {
		return fmt.Errorf("webhook: seal secret of %s: %w", s.ID, err)
	}
	s.Secret, s.SecretSealed = sealed, true
	return nil
}

// ErrNoSecretKey is returned for a sealed secret when there is no key to open it with.
var ErrNoSecretKey = errors.New("webhook: the secret is sealed and no secret key is configured")

// SigningSecret returns the secret in clear.
func (s *Subscription) SigningSecret(box SecretBox) (string, error) {
	if !s.SecretSealed {
		return s.Secret, nil
	}
	if box == nil {
		return "", ErrNoSecretKey
	}
	plain, err := box.Open(s.ID, s.Secret)
	if err != nil {
		return "", fmt.Errorf("webhook: open secret of %s: %w", s.ID, err)
	}
	return plain, nil
}

// ValidateSecret checks a signing secret a client chose.
func ValidateSecret(s string) error {
	n := len(s)
	if n < MinSecretLength || n > MaxSecretLength {
		return validation.New("secret", "must be %d to %d characters", MinSecretLength, MaxSecretLength)
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return validation.New("secret", "must be printable ASCII without spaces")
		}
	}
	return nil
}

// NewSecret returns a fresh signing secret: whsec_ and 32 random bytes.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a fresh subscription id: whk_ and 80 random bits.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "whk_" + idEncoding.EncodeToString(b[:])
}

// DeliveryID is the id of the delivery of event eventID to subscription subID. It is derived,
// not random, so that creating the record again (a redelivered event, two notifiers) finds
// the first one: an event is delivered to a subscription once.
func DeliveryID(subID, eventID string) string {
	h := sha256.Sum256([]byte(subID + "\x00" + eventID))
	return "dlv_" + hex.EncodeToString(h[:15])
}
