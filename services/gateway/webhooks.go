package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
	"github.com/runyard/runyard/libs/webhook"
)

// Webhooks of a space: signed HTTP deliveries of the space's events (the notifier sends
// them). Only the space's admins see or manage them, since a webhook exports the space's
// events to an address of their choosing.

// WebhookStore is what the gateway needs from storage for webhooks.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, s *webhook.Subscription) error
	GetWebhook(ctx context.Context, space, id string) (*webhook.Subscription, error)
	ListWebhooks(ctx context.Context, space string, pg store.Page) ([]webhook.Subscription, int64, error)
	UpdateWebhook(ctx context.Context, space, id string, fn func(*webhook.Subscription) error) (*webhook.Subscription, error)
	DeleteWebhook(ctx context.Context, space, id string) error
	ListDeliveries(ctx context.Context, space, subscriptionID string, pg store.Page) ([]webhook.Delivery, int64, error)
}

// qWebhook is a webhook as the API shows it: never with its secret, except once in the
// answer to its creation.
type qWebhook struct {
	ID          string    `json:"id"`
	Space       string    `json:"space"`
	URL         string    `json:"url"`
	EventTypes  []string  `json:"event_types"`
	PipelineIDs []string  `json:"pipeline_ids"`
	Active      bool      `json:"active"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Secret      string    `json:"secret,omitempty"`
}

func presentWebhook(s *webhook.Subscription) qWebhook {
	return qWebhook{
		ID: s.ID, Space: s.Space, URL: s.URL, EventTypes: s.EventTypes, PipelineIDs: s.PipelineIDs,
		Active: s.Active, Description: s.Description, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

// qDelivery is an entry of a webhook's delivery log (without the payload: the event is in
// the event stream, and the log stays small).
type qDelivery struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error"`
	ResponseCode  int        `json:"response_code"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
}

func presentDelivery(d *webhook.Delivery) qDelivery {
	return qDelivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts, LastError: d.LastError,
		ResponseCode: d.ResponseCode, NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt,
	}
}

// webhookFields are a webhook's writable fields; nil is absent (a PATCH leaves it).
type webhookFields struct {
	URL         *string   `json:"url"`
	EventTypes  *[]string `json:"event_types"`
	PipelineIDs *[]string `json:"pipeline_ids"`
	Secret      *string   `json:"secret"`
	Active      *bool     `json:"active"`
	Description *string   `json:"description"`
}

func (g *Gateway) applyWebhook(f *webhookFields, s *webhook.Subscription) error {
	var errs validation.Errors
	if f.URL != nil {
		s.URL = *f.URL
	}
	if f.EventTypes != nil {
		s.EventTypes = *f.EventTypes
	}
	if f.PipelineIDs != nil {
		s.PipelineIDs = *f.PipelineIDs
	}
	if f.Active != nil {
		s.Active = *f.Active
	}
	if f.Description != nil {
		s.Description = *f.Description
	}
	if f.Secret != nil {
		if err := webhook.ValidateSecret(*f.Secret); err != nil {
			var ve validation.Errors
			errors.As(err, &ve)
			errs = append(errs, ve...)
		}
		if err := s.SetSecret(g.cfg.WebhookSecrets, *f.Secret); err != nil {
			return err
		}
	}
	s.Normalize()
	if err := s.Validate(g.cfg.WebhookGuard); err != nil {
		var ve validation.Errors
		if errors.As(err, &ve) {
			errs = append(ve, errs...)
		}
	}
	return errs.Err()
}

// listWebhooks answers GET /api/v1.0/spaces/:slug/webhooks, oldest first.
func (g *Gateway) listWebhooks(c *fiber.Ctx) error {
	return listSpaceRecords(g, c, access.RoleAdmin, g.store.ListWebhooks, presentWebhook)
}

// createWebhook answers POST /api/v1.0/spaces/:slug/webhooks {"url", "event_types",
// "pipeline_ids", "secret", "active", "description"}: 201 with the webhook and its secret,
// generated when the body has none. The secret is never shown again.
func (g *Gateway) createWebhook(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	var f webhookFields
	if err := decodeBody(c, &f); err != nil {
		return err
	}
	now := store.Now()
	s := &webhook.Subscription{ID: webhook.NewID(), Space: slug, Active: true, CreatedAt: now, UpdatedAt: now}
	if f.URL == nil {
		empty := ""
		f.URL = &empty // reported as required
	}
	if f.Secret == nil {
		secret := webhook.NewSecret()
		f.Secret = &secret
	}
	if err := g.applyWebhook(&f, s); err != nil {
		return err
	}
	if err := g.store.CreateWebhook(c.UserContext(), s); err != nil {
		return err
	}
	out := presentWebhook(s)
	out.Secret = *f.Secret
	return c.Status(http.StatusCreated).JSON(out)
}

func (g *Gateway) webhookOf(c *fiber.Ctx, slug string) (*webhook.Subscription, error) {
	id := c.Params("webhook_id")
	s, err := g.store.GetWebhook(c.UserContext(), slug, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, qNotFound("webhook %s not found", id)
	}
	return s, err
}

// getWebhook answers GET /api/v1.0/spaces/:slug/webhooks/:webhook_id.
func (g *Gateway) getWebhook(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	s, err := g.webhookOf(c, slug)
	if err != nil {
		return err
	}
	return c.JSON(presentWebhook(s))
}

// updateWebhook answers PATCH /api/v1.0/spaces/:slug/webhooks/:webhook_id with any of the
// creation fields; a new secret replaces the old one and is not shown back.
func (g *Gateway) updateWebhook(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	var f webhookFields
	if err := decodeBody(c, &f); err != nil {
		return err
	}
	id := c.Params("webhook_id")
	s, err := g.store.UpdateWebhook(c.UserContext(), slug, id, func(s *webhook.Subscription) error { return g.applyWebhook(&f, s) })
	if errors.Is(err, store.ErrNotFound) {
		return qNotFound("webhook %s not found", id)
	} else if err != nil {
		return err
	}
	return c.JSON(presentWebhook(s))
}

// deleteWebhook answers DELETE /api/v1.0/spaces/:slug/webhooks/:webhook_id: 204. Its
// deliveries go with it, pending ones included.
func (g *Gateway) deleteWebhook(c *fiber.Ctx) error {
	return deleteSpaceRecord(g, c, access.RoleAdmin, "webhook_id", "webhook", g.store.DeleteWebhook)
}

// listWebhookDeliveries answers GET /api/v1.0/spaces/:slug/webhooks/:webhook_id/deliveries,
// newest first.
func (g *Gateway) listWebhookDeliveries(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	s, err := g.webhookOf(c, slug)
	if err != nil {
		return err
	}
	ds, total, err := g.store.ListDeliveries(c.UserContext(), slug, s.ID, p.Store())
	if err != nil {
		return err
	}
	out := make([]qDelivery, len(ds))
	for i := range ds {
		out[i] = presentDelivery(&ds[i])
	}
	return writeList(c, p, out, total)
}
