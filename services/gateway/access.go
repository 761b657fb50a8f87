package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
)

// Tenancy and access: every API key belongs to a user; a user is a global admin (admin in
// every space) or has the role of its membership in each space it belongs to. A caller who
// cannot see a space (not a member, or no such space) is answered as if what it asked for did
// not exist, so that ids and slugs reveal nothing across spaces.

// AccessStore is what the gateway needs from storage for spaces, users, memberships, API keys
// of users, teams and watches.
type AccessStore interface {
	CreateSpace(ctx context.Context, sp *access.Space) error
	GetSpace(ctx context.Context, slug string) (*access.Space, error)
	GetSpaces(ctx context.Context, slugs []string) (map[string]*access.Space, error)
	ListSpaces(ctx context.Context, pg store.Page) ([]access.Space, int64, error)

	CreateUser(ctx context.Context, u *access.User) error
	GetUser(ctx context.Context, id string) (*access.User, error)
	GetUsers(ctx context.Context, ids []string) (map[string]*access.User, error)

	PutMembership(ctx context.Context, m *access.Membership) error
	GetMembership(ctx context.Context, space, userID string) (*access.Membership, error)
	DeleteMembership(ctx context.Context, space, userID string) error
	ListSpaceMembers(ctx context.Context, space string, pg store.Page) ([]access.Membership, int64, error)
	ListUserMemberships(ctx context.Context, userID string, pg store.Page) ([]access.Membership, int64, error)

	ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error)
	DeleteAPIKey(ctx context.Context, userID, keyID string) error
	TouchAPIKey(ctx context.Context, hash string, at time.Time) error

	CreateTeam(ctx context.Context, t *access.Team) error
	GetTeam(ctx context.Context, space, id string) (*access.Team, error)
	ListTeams(ctx context.Context, space string, pg store.Page) ([]access.Team, int64, error)
	UpdateTeam(ctx context.Context, space, id string, fn func(*access.Team) error) (*access.Team, error)
	DeleteTeam(ctx context.Context, space, id string) error

	PutWatch(ctx context.Context, w access.Watch) error
	DeleteWatch(ctx context.Context, space, pipelineUUID, userID string) error
	ListWatchedPipelines(ctx context.Context, space, userID string) ([]string, error)
}

// roleCacheTTL bounds how long a gateway trusts a caller's role in a space: a membership
// changed through another gateway process takes effect here within it. Changes made through
// this process take effect at once (forget).
const roleCacheTTL = 5 * time.Second

// roleCache keeps callers' roles in spaces (none, for a missing space or a non-member) for a
// short time, so that authorizing a request does not cost two store reads.
type roleCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[roleKey]cachedRole
	gen uint64 // counts forgets, as keyCache.gen does
}

type roleKey struct{ user, space string }

type cachedRole struct {
	role    access.Role
	expires time.Time
}

func newRoleCache(ttl time.Duration) *roleCache {
	return &roleCache{ttl: ttl, m: map[roleKey]cachedRole{}}
}

const maxCachedRoles = 10000

// forget drops what the cache knows of space, for one user or (user "") for every user.
func (rc *roleCache) forget(space, user string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.gen++
	for k := range rc.m {
		if k.space == space && (user == "" || k.user == user) {
			delete(rc.m, k)
		}
	}
}

// roleIn returns who's role in space: admin for a global admin, the membership's role for a
// member, "" when who cannot see the space (no such space, or not a member).
func (g *Gateway) roleIn(ctx context.Context, who *caller, space string) (access.Role, error) {
	rc := g.roles
	k := roleKey{who.UserID, space}
	now := time.Now()
	rc.mu.Lock()
	cr, ok := rc.m[k]
	gen := rc.gen
	rc.mu.Unlock()
	if ok && now.Before(cr.expires) {
		return cr.role, nil
	}
	role, err := g.readRole(ctx, who, space)
	if err != nil {
		return "", err
	}
	rc.mu.Lock()
	if rc.gen == gen {
		if len(rc.m) >= maxCachedRoles {
			clear(rc.m)
		}
		rc.m[k] = cachedRole{role: role, expires: now.Add(rc.ttl)}
	}
	rc.mu.Unlock()
	return role, nil
}

func (g *Gateway) readRole(ctx context.Context, who *caller, space string) (access.Role, error) {
	if !access.ValidSlug(space) {
		return "", nil
	}
	if _, err := g.store.GetSpace(ctx, space); errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if who.Admin {
		return access.RoleAdmin, nil
	}
	m, err := g.store.GetMembership(ctx, space, who.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	return m.Role, nil
}

// errForbidden is a caller who sees the space but lacks the role an action needs.
func errForbidden(space string, need, have access.Role) error {
	return &apiError{Status: http.StatusForbidden, Type: "forbidden",
		Message: fmt.Sprintf("this needs the %s role in space %s; yours is %s", need, space, have)}
}

// mageRole is the role a Mage-compatible request needs. Mage's routes follow REST: GET reads,
// every other method (create, update, delete, run actions, manual runs) writes.
func mageRole(c *fiber.Ctx) access.Role {
	if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
		return access.RoleViewer
	}
	return access.RoleEditor
}

// authorize checks that the caller of a Mage-compatible request may act on a resource of
// space; notFound is the answer when the caller cannot see the space, the same as for a
// resource that does not exist.
func (g *Gateway) authorize(c *fiber.Ctx, space string, notFound error) error {
	who := callerOf(c)
	if who == nil {
		return notFound
	}
	role, err := g.roleIn(c.UserContext(), who, space)
	if err != nil {
		return err
	}
	if role == "" {
		return notFound
	}
	if need := mageRole(c); !role.AtLeast(need) {
		return errForbidden(space, need, role)
	}
	return nil
}

// EnsureDefaultSpace creates the space the Mage-compatible API works in by default, unless it
// exists: resources live in spaces, and a space is a record callers are authorized against.
func (g *Gateway) EnsureDefaultSpace(ctx context.Context) error {
	now := store.Now()
	sp := &access.Space{Slug: g.cfg.DefaultSpace, Name: g.cfg.DefaultSpace, CreatedAt: now, UpdatedAt: now}
	if err := sp.Validate(""); err != nil {
		return fmt.Errorf("gateway: default space %q: %w", g.cfg.DefaultSpace, err)
	}
	if err := g.store.CreateSpace(ctx, sp); err != nil && !errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("gateway: create default space: %w", err)
	}
	return nil
}
