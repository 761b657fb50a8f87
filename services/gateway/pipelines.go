package gateway

import (
	"errors"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

type pipelineBody struct {
	Pipeline *pipelineFields `json:"pipeline"`
}

// pipelineFields are the writable fields; pointers tell "absent" from "empty" for updates.
type pipelineFields struct {
	UUID              *string                     `json:"uuid"`
	Name              *string                     `json:"name"`
	Description       *string                     `json:"description"`
	Variables         map[string]any              `json:"variables"`
	Blocks            *[]pipeline.Block           `json:"blocks"`
	RetryConfig       *pipeline.RetryConfig       `json:"retry_config"`
	ConcurrencyConfig *pipeline.ConcurrencyConfig `json:"concurrency_config"`
	Tags              *[]string                   `json:"tags"`
	Owners            *[]string                   `json:"owners"`
}

func (f *pipelineFields) apply(p *pipeline.Pipeline) {
	if f.Name != nil {
		p.Name = *f.Name
	}
	if f.Description != nil {
		p.Description = *f.Description
	}
	if f.Variables != nil {
		p.Variables = f.Variables
	}
	if f.Blocks != nil {
		p.Blocks = *f.Blocks
	}
	if f.RetryConfig != nil {
		p.RetryConfig = f.RetryConfig
	}
	if f.ConcurrencyConfig != nil {
		p.ConcurrencyConfig = f.ConcurrencyConfig
	}
	if f.Tags != nil {
		p.Tags = *f.Tags
	}
	if f.Owners != nil {
		p.Owners = *f.Owners
	}
}

// nativeOnly refuses to change what a provider owns: a pipeline mirrored from Airflow is
// defined there, and the next sync would undo the change.
func nativeOnly(p *pipeline.Pipeline, what string) error {
	if p.Provider == "" || p.Provider == pipeline.ProviderNative {
		return nil
	}
	return errConflict("pipeline %q is mirrored from %s connector %s: %s it in %s, not here", p.UUID, p.Provider, p.ConnectorID, what, p.Provider)
}

var nonUUIDChars = regexp.MustCompile(`[^a-z0-9_]+`)

// uuidFromName derives a pipeline uuid from its name, as Mage does when only a name is given.
func uuidFromName(name string) string {
	return strings.Trim(nonUUIDChars.ReplaceAllString(strings.ToLower(strings.TrimSpace(name)), "_"), "_")
}

func decodePipeline(c *fiber.Ctx) (*pipelineFields, error) {
	var body pipelineBody
	if err := decodeBody(c, &body); err != nil {
		return nil, prefixField(err, "pipeline")
	}
	if body.Pipeline == nil {
		return nil, validation.New("pipeline", "is required: send {\"pipeline\": {...}}")
	}
	return body.Pipeline, nil
}

// prefixField puts the envelope key in front of the field of a decoding error, so that
// "blocks[0].upstream_blocks" reads "pipeline.blocks[0].upstream_blocks". An error about the
// whole body (a body that is not an object) keeps the field "body".
func prefixField(err error, prefix string) error {
	var ve validation.Errors
	if errors.As(err, &ve) {
		out := make(validation.Errors, len(ve))
		for i, fe := range ve {
			out[i] = fe
			if fe.Field != "body" && fe.Field != prefix && !strings.HasPrefix(fe.Field, prefix+".") {
				out[i].Field = prefix + "." + fe.Field
			}
		}
		return out
	}
	return err
}

func (g *Gateway) createPipeline(c *fiber.Ctx) error {
	space, err := g.space(c)
	if err != nil {
		return err
	}
	f, err := decodePipeline(c)
	if err != nil {
		return err
	}
	p := &pipeline.Pipeline{Space: space}
	if f.UUID != nil {
		p.UUID = *f.UUID
	} else if f.Name != nil {
		p.UUID = uuidFromName(*f.Name)
	}
	f.apply(p)
	p.Normalize()
	if err := p.Validate("pipeline"); err != nil {
		return err
	}
	now := store.Now()
	p.CreatedAt, p.UpdatedAt = now, now
	if err := g.store.CreatePipeline(c.UserContext(), p); errors.Is(err, store.ErrDuplicate) {
		return errConflict("pipeline %q already exists", p.UUID)
	} else if err != nil {
		return err
	}
	g.announcePipeline(c.UserContext(), p)
	return c.JSON(fiber.Map{"pipeline": presentPipeline(p)})
}

func (g *Gateway) listPipelines(c *fiber.Ctx) error {
	space, err := g.space(c)
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	ps, total, err := g.store.ListPipelines(c.UserContext(), space, pg)
	if err != nil {
		return err
	}
	out := make([]magePipeline, len(ps))
	for i := range ps {
		out[i] = presentPipeline(&ps[i])
	}
	return c.JSON(fiber.Map{"pipelines": out, "metadata": metadata(pg, len(ps), total)})
}

func (g *Gateway) loadPipeline(c *fiber.Ctx) (*pipeline.Pipeline, error) {
	space, err := g.space(c)
	if err != nil {
		return nil, err
	}
	p, err := g.store.GetPipeline(c.UserContext(), space, c.Params("uuid"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("pipeline %q not found", c.Params("uuid"))
	}
	return p, err
}

func (g *Gateway) getPipeline(c *fiber.Ctx) error {
	p, err := g.loadPipeline(c)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline": presentPipeline(p)})
}

func (g *Gateway) updatePipeline(c *fiber.Ctx) error {
	space, err := g.space(c)
	if err != nil {
		return err
	}
	f, err := decodePipeline(c)
	if err != nil {
		return err
	}
	uuid := c.Params("uuid")
	if f.UUID != nil && *f.UUID != uuid {
		return validation.New("pipeline.uuid", "cannot be changed (is %q)", uuid)
	}
	p, err := g.store.UpdatePipeline(c.UserContext(), space, uuid, func(p *pipeline.Pipeline) error {
		if err := nativeOnly(p, "change"); err != nil {
			return err
		}
		f.apply(p)
		p.Normalize()
		return p.Validate("pipeline")
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("pipeline %q not found", uuid)
	} else if err != nil {
		return err
	}
	g.announcePipeline(c.UserContext(), p)
	return c.JSON(fiber.Map{"pipeline": presentPipeline(p)})
}

// deletePipeline removes a pipeline and its schedules; its runs stay readable.
func (g *Gateway) deletePipeline(c *fiber.Ctx) error {
	p, err := g.loadPipeline(c)
	if err != nil {
		return err
	}
	if err := nativeOnly(p, "delete"); err != nil {
		return err
	}
	ctx := c.UserContext()
	scs, _, err := g.store.ListSchedules(ctx, store.ScheduleFilter{Space: p.Space, PipelineUUID: p.UUID}, store.Page{})
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if err := g.store.DeleteSchedule(ctx, sc.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if err := g.store.DeletePipeline(ctx, p.Space, p.UUID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return c.JSON(fiber.Map{"pipeline": presentPipeline(p)})
}
