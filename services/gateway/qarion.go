package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/validation"
)

// The Qarion-compatible API lives under /api/v1.0. It differs from the Mage-compatible one in
// its authentication (a bearer key), its bodies (no envelopes), its success codes (201 on
// creation, 204 on deletion) and its errors: {"detail": "..."}, and for invalid input 422 with
// FastAPI's list of {"loc", "msg", "type"}.

// qarionPrefix is the path prefix of the Qarion-compatible API.
const qarionPrefix = "/api/v1.0"

func isQarionPath(p string) bool {
	return p == qarionPrefix || strings.HasPrefix(p, qarionPrefix+"/")
}

func (g *Gateway) qarionRoutes(a *fiber.App) {
	v1 := a.Group(qarionPrefix, g.qarionAuthenticate)
	v1.Post("/spaces", g.createSpace)
	v1.Get("/spaces", g.listSpaces)
	v1.Get("/spaces/:slug", g.getSpace)
	v1.Get("/spaces/:slug/members", g.listMembers)
	v1.Put("/spaces/:slug/members/:user_id", g.putMember)
	v1.Delete("/spaces/:slug/members/:user_id", g.deleteMember)
	v1.Get("/spaces/:slug/teams", g.listTeams)
	v1.Post("/spaces/:slug/teams", g.createTeam)
	v1.Get("/spaces/:slug/teams/:team_id", g.getTeam)
	v1.Patch("/spaces/:slug/teams/:team_id", g.updateTeam)
	v1.Delete("/spaces/:slug/teams/:team_id", g.deleteTeam)
	v1.Put("/spaces/:slug/orchestration/pipelines/:pipeline_id/watch", g.watchPipeline)
	v1.Delete("/spaces/:slug/orchestration/pipelines/:pipeline_id/watch", g.unwatchPipeline)
	v1.Get("/spaces/:slug/webhooks", g.listWebhooks)
	v1.Post("/spaces/:slug/webhooks", g.createWebhook)
	v1.Get("/spaces/:slug/webhooks/:webhook_id", g.getWebhook)
	v1.Patch("/spaces/:slug/webhooks/:webhook_id", g.updateWebhook)
	v1.Delete("/spaces/:slug/webhooks/:webhook_id", g.deleteWebhook)
	v1.Get("/spaces/:slug/webhooks/:webhook_id/deliveries", g.listWebhookDeliveries)
	v1.Get("/spaces/:slug/orchestration/pipelines", g.listOrchestrationPipelines)
	v1.Get("/spaces/:slug/orchestration/pipelines/:pipeline_id", g.getOrchestrationPipeline)
	v1.Patch("/spaces/:slug/orchestration/pipelines/:pipeline_id/team", g.setPipelineTeam)
	v1.Patch("/spaces/:slug/orchestration/pipelines/:pipeline_id/criticality", g.setPipelineCriticality)
	v1.Post("/spaces/:slug/orchestration/pipelines/:pipeline_id/trigger", g.triggerOrchestrationPipeline)
	v1.Get("/spaces/:slug/orchestration/pipelines/:pipeline_id/runs", g.listOrchestrationRuns)
	v1.Get("/spaces/:slug/orchestration/runs/:run_id", g.getOrchestrationRun)
	v1.Get("/spaces/:slug/orchestration/runs/:run_id/comments", g.listRunComments)
	v1.Post("/spaces/:slug/orchestration/runs/:run_id/comments", g.createRunComment)
	v1.Get("/spaces/:slug/orchestration/task-runs/:task_run_id/comments", g.listTaskRunComments)
	v1.Post("/spaces/:slug/orchestration/task-runs/:task_run_id/comments", g.createTaskRunComment)
	v1.Put("/spaces/:slug/orchestration/comments/:comment_id", g.updateComment)
	v1.Patch("/spaces/:slug/orchestration/comments/:comment_id", g.updateComment)
	v1.Delete("/spaces/:slug/orchestration/comments/:comment_id", g.deleteComment)
	v1.Get("/spaces/:slug/orchestration/events", g.streamEvents)
	v1.Post("/spaces/:slug/orchestration/connectors", g.createConnector)
	v1.Get("/spaces/:slug/orchestration/connectors", g.listConnectors)
	v1.Get("/spaces/:slug/orchestration/connectors/:connector_id", g.getConnector)
	v1.Patch("/spaces/:slug/orchestration/connectors/:connector_id", g.updateConnector)
	v1.Delete("/spaces/:slug/orchestration/connectors/:connector_id", g.deleteConnector)
	v1.Post("/spaces/:slug/orchestration/connectors/:connector_id/test", g.testConnector)
	v1.Post("/spaces/:slug/orchestration/connectors/:connector_id/sync", g.syncConnector)
	v1.Get("/spaces/:slug/orchestration/connectors/:connector_id/syncs", g.listConnectorSyncs)
	v1.Get("/spaces/:slug/orchestration/connectors/:connector_id/syncs/:job_id", g.getConnectorSync)
	v1.Post("/users", g.createUser)
	v1.Get("/users/:user_id", g.getUser)
	v1.Post("/users/:user_id/api-keys", g.createAPIKey)
	v1.Get("/users/:user_id/api-keys", g.listAPIKeys)
	v1.Delete("/users/:user_id/api-keys/:key_id", g.deleteAPIKey)
	v1.Use(func(c *fiber.Ctx) error {
		return &apiError{Status: http.StatusNotFound, Message: "Not Found"} // FastAPI's answer
	})
}

// qarionAuthenticate accepts an API key as Authorization: Bearer (Qarion's way) or, for
// convenience, as X-API-KEY; not as a query parameter, which ends up in access logs.
func (g *Gateway) qarionAuthenticate(c *fiber.Ctx) error {
	var candidates []string
	if v, ok := bearer(c.Get(fiber.HeaderAuthorization)); ok {
		candidates = append(candidates, v)
	}
	if v := c.Get("X-API-KEY"); v != "" {
		candidates = append(candidates, v)
	}
	if len(candidates) == 0 {
		return errUnauthorized("", "an API key is required: send it as an Authorization: Bearer token")
	}
	who, err := g.firstValidKey(c.UserContext(), candidates)
	if err != nil {
		return err
	}
	if who == nil {
		return errUnauthorized("", "the API key is not valid")
	}
	setCaller(c, who)
	return c.Next()
}

// queryError is invalid input in query parameters. It unwraps to its validation.Errors, so
// the Mage renderer answers it as any field error; the Qarion renderer locates it in the
// query.
type queryError struct{ errs validation.Errors }

func (e *queryError) Error() string { return e.errs.Error() }
func (e *queryError) Unwrap() error { return e.errs }

// inQuery marks field errors as being about query parameters.
func inQuery(err error) error {
	var ve validation.Errors
	if errors.As(err, &ve) {
		return &queryError{errs: ve}
	}
	return err
}

// qarionFieldError is one entry of a 422 answer, FastAPI's shape.
type qarionFieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// handleQarionError renders errors of /api/v1.0 routes as Qarion does. Unexpected errors are
// logged once here and never shown to the client.
func (g *Gateway) handleQarionError(c *fiber.Ctx, err error) error {
	var (
		ae *apiError
		qe *queryError
		ve validation.Errors
		fe *fiber.Error
	)
	status, detail := http.StatusInternalServerError, any("internal error")
	switch {
	case errors.As(err, &ae):
		status, detail = ae.Status, ae.Message
		if status == http.StatusUnauthorized {
			c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
		}
	case errors.As(err, &qe):
		status, detail = http.StatusUnprocessableEntity, fieldErrors("query", qe.errs)
	case errors.As(err, &ve):
		status, detail = http.StatusUnprocessableEntity, fieldErrors("body", ve)
	case errors.As(err, &fe):
		status, detail = fe.Code, fe.Message
		if fe.Code == http.StatusRequestEntityTooLarge {
			detail = fmt.Sprintf("request body is larger than %d bytes", g.cfg.MaxBodyBytes)
		}
	default:
		g.log.Error().Err(err).Str("method", c.Method()).Str("path", c.Path()).Msg("request failed")
	}
	return c.Status(status).JSON(fiber.Map{"detail": detail})
}

func fieldErrors(in string, ve validation.Errors) []qarionFieldError {
	out := make([]qarionFieldError, len(ve))
	for i, fe := range ve {
		out[i] = qarionFieldError{Loc: location(in, fe.Field), Msg: fe.Message, Type: "value_error"}
	}
	return out
}

// location turns a field path ("members[2].role") into FastAPI's loc (["body", "members", 2,
// "role"]). The path "body" is the body as a whole.
func location(in, field string) []any {
	loc := []any{in}
	if field == "" || (in == "body" && field == "body") {
		return loc
	}
	for _, part := range strings.Split(field, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			loc = append(loc, name)
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			if n, err := strconv.Atoi(idx); err == nil {
				loc = append(loc, n)
			} else {
				loc = append(loc, idx)
			}
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return loc
}

// spaceNotFound is the one answer for a space the caller cannot see, whether it does not exist
// or the caller is not a member: the bytes must not tell the two apart.
func spaceNotFound(slug string) error {
	return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("space %s not found", slug)}
}

func qNotFound(format string, args ...any) error {
	return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

func qConflict(format string, args ...any) error {
	return &apiError{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

func qForbidden(format string, args ...any) error {
	return &apiError{Status: http.StatusForbidden, Message: fmt.Sprintf(format, args...)}
}

// inSpace authorizes a request under /api/v1.0/spaces/:slug: the caller must see the space
// (else the 404 of a missing space) and hold at least need in it (else 403). It returns the
// slug and the caller's role.
func (g *Gateway) inSpace(c *fiber.Ctx, need access.Role) (string, access.Role, error) {
	slug := c.Params("slug")
	who := callerOf(c)
	if who == nil {
		return "", "", spaceNotFound(slug)
	}
	role, err := g.roleIn(c.UserContext(), who, slug)
	if err != nil {
		return "", "", err
	}
	if role == "" {
		return "", "", spaceNotFound(slug)
	}
	if !role.AtLeast(need) {
		return "", "", errForbidden(slug, need, role)
	}
	return slug, role, nil
}

// requireGlobalAdmin refuses callers who are not global admins.
func requireGlobalAdmin(c *fiber.Ctx, what string) error {
	if who := callerOf(c); who == nil || !who.Admin {
		return qForbidden("only a global admin can %s", what)
	}
	return nil
}
