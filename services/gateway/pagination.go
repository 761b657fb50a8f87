package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// Pagination of the Qarion-compatible lists. Qarion documents page and size and says its
// orchestration lists "return pagination headers" without naming them; these are ours. A list
// answers a bare JSON array, and its headers say where it is:
//
//	X-Total-Count  items in the whole list
//	X-Page         this page, from 1
//	X-Page-Size    the page size asked for
//	X-Total-Pages  pages in the list (1 for an empty list, so that page 1 always exists)
//	Link           next, prev, first and last pages, RFC 8288
//
// A page past the last is an empty array. Use readListPage, then writeList.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// maxPageNumber keeps page×size far from overflowing an int anywhere.
	maxPageNumber = 1_000_000
)

// listPage is a page of a Qarion-compatible list: its number (1-based) and its size.
type listPage struct {
	Number int
	Size   int
}

// readListPage reads page and size from the query; a bad value is a 422 naming the parameter.
func readListPage(c *fiber.Ctx) (listPage, error) {
	p := listPage{Number: 1, Size: defaultPageSize}
	var errs validation.Errors
	if v := c.Query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageNumber {
			errs.Add("page", "must be a whole number from 1 to %d", maxPageNumber)
		}
		p.Number = n
	}
	if v := c.Query("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			errs.Add("size", "must be a whole number from 1 to %d", maxPageSize)
		}
		p.Size = n
	}
	return p, inQuery(errs.Err())
}

// Store is the page as a store query takes it.
func (p listPage) Store() store.Page {
	return store.Page{Limit: p.Size, Offset: (p.Number - 1) * p.Size}
}

// slice returns the page of items, for lists read whole from the store.
func slice[T any](items []T, p listPage) []T {
	start := min(len(items), (p.Number-1)*p.Size)
	return items[start:min(len(items), start+p.Size)]
}

// writeList answers 200 with items, a page of a list of total items, and the pagination
// headers. A nil items is written as [].
func writeList[T any](c *fiber.Ctx, p listPage, items []T, total int64) error {
	if items == nil {
		items = []T{}
	}
	pages := max(1, (total+int64(p.Size)-1)/int64(p.Size))
	c.Set("X-Total-Count", strconv.FormatInt(total, 10))
	c.Set("X-Page", strconv.Itoa(p.Number))
	c.Set("X-Page-Size", strconv.Itoa(p.Size))
	c.Set("X-Total-Pages", strconv.FormatInt(pages, 10))
	c.Set(fiber.HeaderLink, pageLinks(c, p, pages))
	return c.JSON(items)
}

// pageLinks builds the Link header: the request's own URL with page (and size) replaced, so
// that filters carry over.
func pageLinks(c *fiber.Ctx, p listPage, pages int64) string {
	q := url.Values{}
	c.Request().URI().QueryArgs().VisitAll(func(k, v []byte) { q.Add(string(k), string(v)) })
	base := c.BaseURL() + c.Path()
	link := func(n int64, rel string) string {
		q.Set("page", strconv.FormatInt(n, 10))
		q.Set("size", strconv.Itoa(p.Size))
		return fmt.Sprintf(`<%s?%s>; rel="%s"`, base, q.Encode(), rel)
	}
	cur := int64(p.Number)
	var links []string
	if cur < pages {
		links = append(links, link(cur+1, "next"))
	}
	if cur > 1 {
		links = append(links, link(min(cur-1, pages), "prev"))
	}
	links = append(links, link(1, "first"), link(pages, "last"))
	return strings.Join(links, ", ")
}

// listSpaceRecords answers a page of a space's records for a caller holding at least need in
// the space: list reads the page from the store, present shapes each record.
func listSpaceRecords[R, P any](g *Gateway, c *fiber.Ctx, need access.Role,
	list func(ctx context.Context, space string, pg store.Page) ([]R, int64, error), present func(*R) P) error {
	slug, _, err := g.inSpace(c, need)
	if err != nil {
		return err
	}
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	rs, total, err := list(c.UserContext(), slug, p.Store())
	if err != nil {
		return err
	}
	out := make([]P, len(rs))
	for i := range rs {
		out[i] = present(&rs[i])
	}
	return writeList(c, p, out, total)
}

// deleteSpaceRecord answers DELETE of the space record named by the route parameter param,
// for a caller holding at least need in the space: 204, or 404 naming the noun.
func deleteSpaceRecord(g *Gateway, c *fiber.Ctx, need access.Role, param, noun string,
	del func(ctx context.Context, space, id string) error) error {
	slug, _, err := g.inSpace(c, need)
	if err != nil {
		return err
	}
	id := c.Params(param)
	if err := del(c.UserContext(), slug, id); errors.Is(err, store.ErrNotFound) {
		return qNotFound("%s %s not found", noun, id)
	} else if err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
