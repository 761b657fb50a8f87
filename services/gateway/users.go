package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/apikey"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// qUser is a user as the Qarion-compatible API shows it.
type qUser struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

func presentUser(u *access.User) qUser {
	return qUser{ID: u.ID, Username: u.Username, Name: u.Name, Admin: u.Admin, CreatedAt: u.CreatedAt}
}

// qAPIKey is an API key without its value, which only its creation answer carries (Key).
type qAPIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Key        string     `json:"key,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// createUser answers POST /api/v1.0/users {"username", "name", "admin"}: global admins only.
func (g *Gateway) createUser(c *fiber.Ctx) error {
	if err := requireGlobalAdmin(c, "create users"); err != nil {
		return err
	}
	var body struct {
		Username string `json:"username"`
		Name     string `json:"name"`
		Admin    bool   `json:"admin"`
	}
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	u := &access.User{ID: access.NewUserID(), Username: body.Username, Name: body.Name, Admin: body.Admin, CreatedAt: store.Now()}
	u.Normalize()
	if err := u.Validate(""); err != nil {
		return err
	}
	if err := g.store.CreateUser(c.UserContext(), u); errors.Is(err, store.ErrDuplicate) {
		return qConflict("username %s is taken", u.Username)
	} else if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(presentUser(u))
}

// targetUser resolves :user_id ("me" is the caller) and checks that the caller may act on it:
// itself, or anyone for a global admin. The check comes before any read, so that a refusal
// says nothing about whether the user exists.
func targetUser(c *fiber.Ctx) (string, error) {
	who := callerOf(c)
	id := c.Params("user_id")
	if id == "me" {
		id = who.UserID
	}
	if id != who.UserID && !who.Admin {
		return "", qForbidden("only the user itself or a global admin can do this")
	}
	return id, nil
}

// getUser answers GET /api/v1.0/users/:user_id.
func (g *Gateway) getUser(c *fiber.Ctx) error {
	id, err := targetUser(c)
	if err != nil {
		return err
	}
	u, err := g.store.GetUser(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return qNotFound("user %s not found", id)
	} else if err != nil {
		return err
	}
	return c.JSON(presentUser(u))
}

// createAPIKey answers POST /api/v1.0/users/:user_id/api-keys {"name"}: 201 with the key's
// value, shown this once; only its hash is stored.
func (g *Gateway) createAPIKey(c *fiber.Ctx) error {
	id, err := targetUser(c)
	if err != nil {
		return err
	}
	var body struct {
		Name string `json:"name"`
	}
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	body.Name = strings.TrimSpace(body.Name)
	if n := utf8.RuneCountInString(body.Name); n == 0 || n > access.MaxNameLength {
		return validation.New("name", "is required, at most %d characters", access.MaxNameLength)
	}
	ctx := c.UserContext()
	u, err := g.store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return qNotFound("user %s not found", id)
	} else if err != nil {
		return err
	}
	value := apikey.Generate()
	k := store.APIKey{Hash: apikey.Hash(value), ID: access.NewKeyID(), UserID: u.ID, Name: body.Name, Principal: u.Username, CreatedAt: store.Now()}
	if err := g.store.PutAPIKey(ctx, k); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(qAPIKey{ID: k.ID, Name: k.Name, Key: value, CreatedAt: k.CreatedAt})
}

// listAPIKeys answers GET /api/v1.0/users/:user_id/api-keys: the user's keys, oldest first,
// without their values.
func (g *Gateway) listAPIKeys(c *fiber.Ctx) error {
	id, err := targetUser(c)
	if err != nil {
		return err
	}
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if _, err := g.store.GetUser(ctx, id); errors.Is(err, store.ErrNotFound) {
		return qNotFound("user %s not found", id)
	} else if err != nil {
		return err
	}
	// A user has a handful of keys: they are read whole and paged here.
	keys, err := g.store.ListAPIKeys(ctx, id)
	if err != nil {
		return err
	}
	page := slice(keys, p)
	out := make([]qAPIKey, len(page))
	for i, k := range page {
		out[i] = qAPIKey{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
	}
	return writeList(c, p, out, int64(len(keys)))
}

// deleteAPIKey answers DELETE /api/v1.0/users/:user_id/api-keys/:key_id: the key stops
// authenticating at once on this gateway, and within the key cache's TTL (30 s) on others.
func (g *Gateway) deleteAPIKey(c *fiber.Ctx) error {
	id, err := targetUser(c)
	if err != nil {
		return err
	}
	keyID := c.Params("key_id")
	if err := g.store.DeleteAPIKey(c.UserContext(), id, keyID); errors.Is(err, store.ErrNotFound) {
		return qNotFound("api key %s not found", keyID)
	} else if err != nil {
		return err
	}
	g.keys.revoke(keyID)
	return c.SendStatus(http.StatusNoContent)
}
