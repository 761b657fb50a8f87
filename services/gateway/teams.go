package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// Teams of a space (Qarion names a pipeline's owning team by team_id; its Teams API is not
// documented, so this one is ours): viewers read them, editors write them.

// qTeam is a team as the Qarion-compatible API shows it.
type qTeam struct {
	ID          string    `json:"id"`
	Space       string    `json:"space"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func presentTeam(t *access.Team) qTeam {
	return qTeam{ID: t.ID, Space: t.Space, Name: t.Name, Description: t.Description, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// teamFields are a team's writable fields; nil is absent (a PATCH leaves it).
type teamFields struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

func (f *teamFields) apply(t *access.Team) error {
	if f.Name != nil {
		t.Name = *f.Name
	}
	if f.Description != nil {
		t.Description = *f.Description
	}
	t.Normalize()
	return t.Validate("")
}

// listTeams answers GET /api/v1.0/spaces/:slug/teams, by name.
func (g *Gateway) listTeams(c *fiber.Ctx) error {
	return listSpaceRecords(g, c, access.RoleViewer, g.store.ListTeams, presentTeam)
}

// createTeam answers POST /api/v1.0/spaces/:slug/teams {"name", "description"}: 201, or 409
// when the space has a team of that name.
func (g *Gateway) createTeam(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	var f teamFields
	if err := decodeBody(c, &f); err != nil {
		return err
	}
	now := store.Now()
	t := &access.Team{ID: access.NewTeamID(), Space: slug, CreatedAt: now, UpdatedAt: now}
	if err := f.apply(t); err != nil {
		return err
	}
	if err := g.store.CreateTeam(c.UserContext(), t); errors.Is(err, store.ErrDuplicate) {
		return qConflict("space %s already has a team named %s", slug, t.Name)
	} else if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(presentTeam(t))
}

// getTeam answers GET /api/v1.0/spaces/:slug/teams/:team_id.
func (g *Gateway) getTeam(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	id := c.Params("team_id")
	t, err := g.store.GetTeam(c.UserContext(), slug, id)
	if errors.Is(err, store.ErrNotFound) {
		return qNotFound("team %s not found", id)
	} else if err != nil {
		return err
	}
	return c.JSON(presentTeam(t))
}

// updateTeam answers PATCH /api/v1.0/spaces/:slug/teams/:team_id with any of name and
// description.
func (g *Gateway) updateTeam(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	var f teamFields
	if err := decodeBody(c, &f); err != nil {
		return err
	}
	id := c.Params("team_id")
	t, err := g.store.UpdateTeam(c.UserContext(), slug, id, f.apply)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return qNotFound("team %s not found", id)
	case errors.Is(err, store.ErrDuplicate) && f.Name != nil: // only a rename can collide
		return qConflict("space %s already has a team named %s", slug, *f.Name)
	case err != nil:
		return err
	}
	return c.JSON(presentTeam(t))
}

// deleteTeam answers DELETE /api/v1.0/spaces/:slug/teams/:team_id: 204.
func (g *Gateway) deleteTeam(c *fiber.Ctx) error {
	return deleteSpaceRecord(g, c, access.RoleEditor, "team_id", "team", g.deleteTeamAndAssignments)
}

// deleteTeamAndAssignments deletes a team, then clears it from the space's pipelines, so no
// pipeline names a team that no longer exists. The team goes first: from then on an
// assignment to it is refused, so the clearing pass cannot miss a newcomer.
func (g *Gateway) deleteTeamAndAssignments(ctx context.Context, space, id string) error {
	if err := g.store.DeleteTeam(ctx, space, id); err != nil {
		return err
	}
	f := store.PipelineFilter{Space: space, TeamID: id}
	for {
		ps, _, err := g.store.ListPipelinesFiltered(ctx, f, store.Page{Limit: 100})
		if err != nil {
			return fmt.Errorf("gateway: pipelines of deleted team %s: %w", id, err)
		}
		cleared := 0
		for i := range ps {
			p, err := g.store.UpdatePipeline(ctx, space, ps[i].UUID, func(p *pipeline.Pipeline) error {
				if p.TeamID != id {
					return run.ErrNoChange
				}
				p.TeamID = ""
				return nil
			})
			switch {
			case err == nil:
				cleared++
				g.announcePipeline(ctx, p)
			case errors.Is(err, run.ErrNoChange), errors.Is(err, store.ErrNotFound):
			default:
				return fmt.Errorf("gateway: clear deleted team %s from pipeline %s: %w", id, ps[i].UUID, err)
			}
		}
		if cleared == 0 { // none left, or only ones that moved on meanwhile
			return nil
		}
	}
}
