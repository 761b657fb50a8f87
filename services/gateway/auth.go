package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/apikey"
	"github.com/runyard/runyard/libs/store"
)

// principalKey is where authenticate leaves the caller's user id in the request's locals, as
// the principal of the commands the request sends; callerKey holds the whole *caller.
const (
	principalKey = "principal"
	callerKey    = "caller"
)

// caller is who a request acts for: the user its API key belongs to.
type caller struct {
	UserID   string
	Username string
	// Admin is a global admin: admin in every space.
	Admin bool
	KeyID string
}

// callerOf returns the authenticated caller, nil on a route that authenticates none (the
// trigger routes), so that authorization fails closed there.
func callerOf(c *fiber.Ctx) *caller {
	who, _ := c.Locals(callerKey).(*caller)
	return who
}

func setCaller(c *fiber.Ctx, who *caller) {
	c.Locals(callerKey, who)
	c.Locals(principalKey, who.UserID)
}

// authenticate accepts an API key as the api_key query parameter, the X-API-KEY header or an
// Authorization: Bearer token. Mage clients send Mage's fixed client id as api_key next to a
// bearer token, so every presented credential is tried.
func (g *Gateway) authenticate(c *fiber.Ctx) error {
	var candidates []string
	if v := c.Query("api_key"); v != "" {
		candidates = append(candidates, v)
	}
	if v := c.Get("X-API-KEY"); v != "" {
		candidates = append(candidates, v)
	}
	if v, ok := bearer(c.Get(fiber.HeaderAuthorization)); ok {
		candidates = append(candidates, v)
	}
	if len(candidates) == 0 {
		return errUnauthorized("invalid_api_key", "an API key is required: pass it as the api_key query parameter, the X-API-KEY header or Authorization: Bearer")
	}
	who, err := g.firstValidKey(c.UserContext(), candidates)
	if err != nil {
		return err
	}
	if who == nil {
		return errUnauthorized("invalid_api_key", "the API key is not valid")
	}
	setCaller(c, who)
	return c.Next()
}

// firstValidKey returns the caller of the first valid key among candidates, nil when none is.
func (g *Gateway) firstValidKey(ctx context.Context, candidates []string) (*caller, error) {
	for _, cand := range candidates {
		who, err := g.keys.lookup(ctx, cand)
		if err == nil {
			return who, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return nil, nil
}

func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return strings.TrimSpace(h[len(p):]), true
	}
	return "", false
}

// keyCacheTTL bounds how long a gateway trusts what it read about a key: a key revoked through
// another gateway process, or a change of its user's admin flag, takes effect here within it.
// A key revoked through this process stops at once (revoke).
const keyCacheTTL = 30 * time.Second

// keyTouchInterval is how stale a key's last-used time may get: it is written when a gateway
// reads the key from the store and the recorded time is older than this, not per request.
const keyTouchInterval = time.Minute

// keyCache keeps recently seen keys, with the user they act for, for a short time, so that
// authenticating a request does not cost store reads.
type keyCache struct {
	st  Store
	ttl time.Duration
	log zerolog.Logger
	mu  sync.Mutex
	m   map[string]cachedKey
	// gen counts revocations, so that a lookup that read a key from the store before it was
	// revoked does not cache it after.
	gen uint64
}

type cachedKey struct {
	who     caller
	expires time.Time
}

func newKeyCache(st Store, ttl time.Duration, log zerolog.Logger) *keyCache {
	return &keyCache{st: st, ttl: ttl, log: log, m: map[string]cachedKey{}}
}

const maxCachedKeys = 10000

// lookup returns the caller key authenticates, or ErrNotFound.
func (kc *keyCache) lookup(ctx context.Context, key string) (*caller, error) {
	h := apikey.Hash(key)
	now := time.Now()
	kc.mu.Lock()
	ck, ok := kc.m[h]
	gen := kc.gen
	kc.mu.Unlock()
	if ok && now.Before(ck.expires) {
		who := ck.who
		return &who, nil
	}
	k, err := kc.st.GetAPIKey(ctx, h)
	if err != nil {
		return nil, err
	}
	userID := k.UserID
	if userID == "" {
		// A key written by a build before keys had users (all were admin keys), e.g. by an
		// older gateway during a rolling upgrade: the stores give such keys to this user.
		userID = access.BootstrapAdminID
	}
	u, err := kc.st.GetUser(ctx, userID)
	if err != nil {
		// A key whose user is gone authenticates nobody.
		return nil, fmt.Errorf("gateway: user %s of api key %s: %w", userID, k.ID, err)
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > keyTouchInterval {
		// Best effort: a failed write of the last-used time must not refuse a valid key.
		if err := kc.st.TouchAPIKey(ctx, h, store.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
			kc.log.Warn().Err(err).Str("key_id", k.ID).Msg("recording the last use of an api key")
		}
	}
	who := caller{UserID: u.ID, Username: u.Username, Admin: u.Admin, KeyID: k.ID}
	kc.mu.Lock()
	if kc.gen == gen {
		if len(kc.m) >= maxCachedKeys {
			clear(kc.m)
		}
		kc.m[h] = cachedKey{who: who, expires: now.Add(kc.ttl)}
	}
	kc.mu.Unlock()
	return &who, nil
}

// revoke forgets the key whose public id is keyID, so that this process refuses it from now
// on; other gateway processes forget it within the cache's TTL.
func (kc *keyCache) revoke(keyID string) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.gen++
	for h, ck := range kc.m {
		if ck.who.KeyID == keyID {
			delete(kc.m, h)
		}
	}
}

// EnsureAdminKey makes sure an admin can authenticate: the global admin user
// access.BootstrapAdminID ("admin") exists, and with value set a key with exactly that value
// belongs to it afterwards (revoking that key through the API lasts until the next start).
// With value empty and no key stored at all, a key is generated for the admin user and
// returned so the caller can show it once; otherwise it returns "".
func (g *Gateway) EnsureAdminKey(ctx context.Context, value string) (generated string, err error) {
	if err := g.ensureAdminUser(ctx); err != nil {
		return "", err
	}
	if value == "" {
		n, err := g.store.CountAPIKeys(ctx)
		if err != nil {
			return "", fmt.Errorf("gateway: count api keys: %w", err)
		}
		if n > 0 {
			return "", nil
		}
		value = apikey.Generate()
		generated = value
	}
	h := apikey.Hash(value)
	k, err := g.store.GetAPIKey(ctx, h)
	switch {
	case err == nil && k.UserID == access.BootstrapAdminID && k.ID != "":
		// Already the admin's: keep its id (which its owner may have noted) and last use.
		return generated, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return "", fmt.Errorf("gateway: read admin api key: %w", err)
	}
	key := store.APIKey{Hash: h, ID: access.NewKeyID(), UserID: access.BootstrapAdminID, Name: "admin",
		Principal: access.BootstrapAdminUsername, Admin: true, CreatedAt: store.Now()}
	if k != nil && k.ID != "" {
		key.ID, key.CreatedAt = k.ID, k.CreatedAt
	}
	if err := g.store.PutAPIKey(ctx, key); err != nil {
		return "", fmt.Errorf("gateway: store admin api key: %w", err)
	}
	return generated, nil
}

// ensureAdminUser creates the bootstrap global admin unless it exists. Its id is fixed, so
// gateways starting together agree on it.
func (g *Gateway) ensureAdminUser(ctx context.Context) error {
	u := &access.User{ID: access.BootstrapAdminID, Username: access.BootstrapAdminUsername, Name: "Administrator", Admin: true, CreatedAt: store.Now()}
	err := g.store.CreateUser(ctx, u)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrDuplicate):
		return fmt.Errorf("gateway: create admin user: %w", err)
	}
	// A duplicate is either the admin user itself or another user holding its username.
	if _, err := g.store.GetUser(ctx, access.BootstrapAdminID); err != nil {
		return fmt.Errorf("gateway: admin user %s (username %q taken by another user?): %w", access.BootstrapAdminID, access.BootstrapAdminUsername, err)
	}
	return nil
}
