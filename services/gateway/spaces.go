package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
)

// qSpace is a space as the Qarion-compatible API shows it; Role is the caller's role in it.
type qSpace struct {
	Slug      string      `json:"slug"`
	Name      string      `json:"name"`
	Role      access.Role `json:"role,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

func presentSpace(sp *access.Space, role access.Role) qSpace {
	return qSpace{Slug: sp.Slug, Name: sp.Name, Role: role, CreatedAt: sp.CreatedAt, UpdatedAt: sp.UpdatedAt}
}

// qMember is a membership with its user's names.
type qMember struct {
	Space     string      `json:"space"`
	UserID    string      `json:"user_id"`
	Username  string      `json:"username"`
	Name      string      `json:"name"`
	Role      access.Role `json:"role"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// presentMembers renders memberships with their users, read in one batch.
func (g *Gateway) presentMembers(c *fiber.Ctx, ms []access.Membership) ([]qMember, error) {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	users, err := g.store.GetUsers(c.UserContext(), ids)
	if err != nil {
		return nil, err
	}
	out := make([]qMember, len(ms))
	for i, m := range ms {
		out[i] = qMember{Space: m.Space, UserID: m.UserID, Role: m.Role, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
		if u := users[m.UserID]; u != nil {
			out[i].Username, out[i].Name = u.Username, u.Name
		}
	}
	return out, nil
}

// createSpace answers POST /api/v1.0/spaces {"slug", "name"}: global admins only.
func (g *Gateway) createSpace(c *fiber.Ctx) error {
	if err := requireGlobalAdmin(c, "create spaces"); err != nil {
		return err
	}
	var body struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	}
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	now := store.Now()
	sp := &access.Space{Slug: body.Slug, Name: body.Name, CreatedAt: now, UpdatedAt: now}
	sp.Normalize()
	if err := sp.Validate(""); err != nil {
		return err
	}
	if err := g.store.CreateSpace(c.UserContext(), sp); errors.Is(err, store.ErrDuplicate) {
		return qConflict("space %s already exists", sp.Slug)
	} else if err != nil {
		return err
	}
	// A caller may have been told the space did not exist a moment ago.
	g.roles.forget(sp.Slug, "")
	return c.Status(http.StatusCreated).JSON(presentSpace(sp, access.RoleAdmin))
}

// listSpaces answers GET /api/v1.0/spaces: the caller's spaces by slug, with its role in each;
// every space for a global admin.
func (g *Gateway) listSpaces(c *fiber.Ctx) error {
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	who, ctx := callerOf(c), c.UserContext()
	if who.Admin {
		sps, total, err := g.store.ListSpaces(ctx, p.Store())
		if err != nil {
			return err
		}
		out := make([]qSpace, len(sps))
		for i := range sps {
			out[i] = presentSpace(&sps[i], access.RoleAdmin)
		}
		return writeList(c, p, out, total)
	}
	ms, total, err := g.store.ListUserMemberships(ctx, who.UserID, p.Store())
	if err != nil {
		return err
	}
	slugs := make([]string, len(ms))
	for i, m := range ms {
		slugs[i] = m.Space
	}
	sps, err := g.store.GetSpaces(ctx, slugs)
	if err != nil {
		return err
	}
	out := make([]qSpace, 0, len(ms))
	for _, m := range ms {
		if sp := sps[m.Space]; sp != nil {
			out = append(out, presentSpace(sp, m.Role))
		}
	}
	return writeList(c, p, out, total)
}

// spaceMembersShown bounds the members a space's answer carries; the members list pages
// through all of them.
const spaceMembersShown = maxPageSize

// getSpace answers GET /api/v1.0/spaces/:slug: the space, the caller's role, its members.
func (g *Gateway) getSpace(c *fiber.Ctx) error {
	slug, role, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	sp, err := g.store.GetSpace(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return spaceNotFound(slug)
	} else if err != nil {
		return err
	}
	ms, total, err := g.store.ListSpaceMembers(ctx, slug, store.Page{Limit: spaceMembersShown})
	if err != nil {
		return err
	}
	members, err := g.presentMembers(c, ms)
	if err != nil {
		return err
	}
	return c.JSON(struct {
		qSpace
		Members     []qMember `json:"members"`
		MemberCount int64     `json:"member_count"`
	}{presentSpace(sp, role), members, total})
}

// listMembers answers GET /api/v1.0/spaces/:slug/members, by user id.
func (g *Gateway) listMembers(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	ms, total, err := g.store.ListSpaceMembers(c.UserContext(), slug, p.Store())
	if err != nil {
		return err
	}
	out, err := g.presentMembers(c, ms)
	if err != nil {
		return err
	}
	return writeList(c, p, out, total)
}

// putMember answers PUT /api/v1.0/spaces/:slug/members/:user_id {"role"}: adds the user to
// the space or changes its role. Space admins and global admins only.
func (g *Gateway) putMember(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	var body struct {
		Role access.Role `json:"role"`
	}
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if err := access.ValidateRole("role", body.Role); err != nil {
		return err
	}
	ctx := c.UserContext()
	userID := c.Params("user_id")
	u, err := g.store.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return qNotFound("user %s not found", userID)
	} else if err != nil {
		return err
	}
	now := store.Now()
	m := &access.Membership{Space: slug, UserID: u.ID, Role: body.Role, CreatedAt: now, UpdatedAt: now}
	if err := g.store.PutMembership(ctx, m); err != nil {
		return err
	}
	g.roles.forget(slug, u.ID)
	return c.JSON(qMember{Space: slug, UserID: u.ID, Username: u.Username, Name: u.Name, Role: m.Role, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt})
}

// deleteMember answers DELETE /api/v1.0/spaces/:slug/members/:user_id: 204, or 404 for a user
// who is not a member. Space admins and global admins only.
func (g *Gateway) deleteMember(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	userID := c.Params("user_id")
	if err := g.store.DeleteMembership(c.UserContext(), slug, userID); errors.Is(err, store.ErrNotFound) {
		return qNotFound("user %s is not a member of space %s", userID, slug)
	} else if err != nil {
		return err
	}
	g.roles.forget(slug, userID)
	return c.SendStatus(http.StatusNoContent)
}
