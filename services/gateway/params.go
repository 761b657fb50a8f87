package gateway

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// Page sizes of the Mage-compatible lists.
const (
	defaultLimit = 40 // Mage's default for database-backed resources
	maxLimit     = 1000
)

// space is the space a Mage-compatible request works in: ?space= or the default. The caller
// must see it (else 404, as for a missing space) with the role the request needs (else 403).
func (g *Gateway) space(c *fiber.Ctx) (string, error) {
	s := c.Query("space")
	if s == "" {
		s = g.cfg.DefaultSpace
	} else if !slugPattern.MatchString(s) {
		return "", validation.New("space", "must be a space slug: lowercase letters, digits and '-', 2-63 characters")
	}
	if err := g.authorize(c, s, errNotFound("space %q not found", s)); err != nil {
		return "", err
	}
	return s, nil
}

// page reads Mage's _limit and _offset.
func page(c *fiber.Ctx) (store.Page, error) {
	pg := store.Page{Limit: defaultLimit}
	var errs validation.Errors
	if v := c.Query("_limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			errs.Add("_limit", "must be a whole number from 1 to %d", maxLimit)
		}
		pg.Limit = n
	}
	if v := c.Query("_offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs.Add("_offset", "must be a whole number, zero or more")
		}
		pg.Offset = n
	}
	return pg, errs.Err()
}

func metadata(pg store.Page, n int, total int64) listMetadata {
	return listMetadata{Count: total, Next: int64(pg.Offset+n) < total}
}

// intParam reads an integer id from the path; a malformed id names a record that cannot
// exist, so it is answered like a missing one.
func intParam(c *fiber.Ctx, name, what string) (int64, error) {
	v := c.Params(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, errNotFound("%s %s not found", what, v)
	}
	return id, nil
}

// intQuery reads an optional positive integer filter.
func intQuery(c *fiber.Ctx, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, validation.New(name, "must be a positive whole number")
	}
	return id, nil
}
