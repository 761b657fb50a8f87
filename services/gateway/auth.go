package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/apikey"
	"github.com/runyard/runyard/libs/store"
)

// principalKey is where authenticate leaves the caller's identity in the request's locals.
const principalKey = "principal"

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
	for _, cand := range candidates {
		k, err := g.keys.lookup(c.UserContext(), cand)
		if err == nil {
			c.Locals(principalKey, k.Principal)
			return c.Next()
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return errUnauthorized("invalid_api_key", "the API key is not valid")
}

func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return strings.TrimSpace(h[len(p):]), true
	}
	return "", false
}

// keyCache keeps recently seen keys for a short time, so that authenticating a request does
// not cost a store read. A revoked key stops working within the cache's TTL.
type keyCache struct {
	st  Store
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedKey
}

type cachedKey struct {
	key     store.APIKey
	expires time.Time
}

func newKeyCache(st Store, ttl time.Duration) *keyCache {
	return &keyCache{st: st, ttl: ttl, m: map[string]cachedKey{}}
}

const maxCachedKeys = 10000

func (kc *keyCache) lookup(ctx context.Context, key string) (*store.APIKey, error) {
	h := apikey.Hash(key)
	now := time.Now()
	kc.mu.Lock()
	ck, ok := kc.m[h]
	kc.mu.Unlock()
	if ok && now.Before(ck.expires) {
		return &ck.key, nil
	}
	k, err := kc.st.GetAPIKey(ctx, h)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	if len(kc.m) >= maxCachedKeys {
		clear(kc.m)
	}
	kc.m[h] = cachedKey{key: *k, expires: now.Add(kc.ttl)}
	kc.mu.Unlock()
	return k, nil
}

// EnsureAdminKey makes sure an admin can authenticate. With value set, a key with exactly
// that value exists afterwards. With value empty and no key stored at all, a key is
// generated and returned so the caller can show it once; otherwise it returns "".
func (g *Gateway) EnsureAdminKey(ctx context.Context, value string) (generated string, err error) {
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
	err = g.store.PutAPIKey(ctx, store.APIKey{Hash: apikey.Hash(value), Name: "admin", Principal: "admin", Admin: true, CreatedAt: store.Now()})
	if err != nil {
		return "", fmt.Errorf("gateway: store admin api key: %w", err)
	}
	return generated, nil
}
