package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/command"
)

// commandLookup finds the stored outcome of a command by id, for a repeated Idempotency-Key.
type commandLookup func(ctx context.Context, id string) (*command.Reply, error)

// sendRunCommand publishes env, waits for its reply and decodes the run the worker answered
// with. When the reply is late it answers 202 with the command itself and returns a nil
// result and a nil error: the caller then has nothing more to write. lookup finds the stored
// outcome of an earlier command with the same id (an Idempotency-Key); nil skips it.
func (g *Gateway) sendRunCommand(c *fiber.Ctx, env command.Envelope, lookup commandLookup) (*command.RunResult, error) {
	reply, err := g.send(c.UserContext(), env, lookup)
	if err != nil {
		return nil, err
	}
	if reply == nil {
		return nil, g.accepted(c, env)
	}
	if reply.Status != command.ReplySucceeded {
		return nil, replyError(reply)
	}
	var res command.RunResult
	if err := json.Unmarshal(reply.Result, &res); err != nil {
		return nil, fmt.Errorf("gateway: decode result of %s: %w", reply.CommandID, err)
	}
	return &res, nil
}
