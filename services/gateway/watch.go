package gateway

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
)

// Watching a pipeline (Qarion's "watched state", which its orchestration lists filter on with
// watched_only; the endpoints are ours): any member of the space may watch, viewers included,
// since watching changes nothing but the caller's own list.

// watchPipeline answers PUT /api/v1.0/spaces/:slug/orchestration/pipelines/:pipeline_id/watch.
func (g *Gateway) watchPipeline(c *fiber.Ctx) error {
	return g.setWatch(c, true)
}

// unwatchPipeline answers DELETE on the same path; unwatching a pipeline not watched is not an
// error.
func (g *Gateway) unwatchPipeline(c *fiber.Ctx) error {
	return g.setWatch(c, false)
}

func (g *Gateway) setWatch(c *fiber.Ctx, watched bool) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	id := c.Params("pipeline_id")
	if _, err := g.store.GetPipeline(ctx, slug, id); errors.Is(err, store.ErrNotFound) {
		return qNotFound("pipeline %s not found", id)
	} else if err != nil {
		return err
	}
	who := callerOf(c)
	if watched {
		err = g.store.PutWatch(ctx, access.Watch{Space: slug, PipelineUUID: id, UserID: who.UserID, CreatedAt: store.Now()})
	} else if err = g.store.DeleteWatch(ctx, slug, id, who.UserID); errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_id": id, "watched": watched})
}
