package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/validation"
)

// The event relay: GET /api/v1.0/spaces/:slug/orchestration/events streams a space's events
// as Server-Sent Events.
//
// One hub per gateway follows the whole event stream through a single JetStream ordered
// consumer (live core-NATS messages would lack the stream sequence that resuming needs) and
// fans each event out to the clients of its space, each through a bounded buffer. The hub
// never waits for a client: a client whose buffer is full is cut off with a final overflow
// event naming the last event it was sent, from which it resumes. The hub keeps the newest
// events in memory; a client resuming from within them is served from memory, one resuming
// from further back reads the gap from the stream through a short-lived consumer filtered by
// its space, up to the hub's position when it registered, and then continues with the live
// events after that position. Stream sequences decide what was sent, so the switch from
// catch-up to live repeats and skips nothing.

// EventSource is what the event relay needs from JetStream.
type EventSource interface {
	LastEventSeq(ctx context.Context) (uint64, error)
	FollowEvents(ctx context.Context, after uint64, f func(natsbus.EventMsg)) (stop func(), err error)
	ReadEvents(ctx context.Context, filter string, from natsbus.EventFrom, until uint64, f func(natsbus.EventMsg) error) error
}

// EventsConfig tunes the event relay; zero fields take the defaults.
type EventsConfig struct {
	// Heartbeat is how often an idle stream gets a comment line, so proxies keep it open and
	// clients notice a dead connection (default 15 s).
	Heartbeat time.Duration
	// ClientBuffer is how many events may wait for one client before it is cut off as too
	// slow (default 1024).
	ClientBuffer int
	// Replay is how many recent events the hub keeps for resuming clients (default 10000).
	Replay int
	// WriteStall bounds one write to a client; a client that takes no data for this long is
	// disconnected (default 30 s).
	WriteStall time.Duration
}

func (c *EventsConfig) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = 1024
	}
	if c.Replay <= 0 {
		c.Replay = 10000
	}
	if c.WriteStall <= 0 {
		c.WriteStall = 30 * time.Second
	}
}

// StartEvents starts relaying events from src; until it is called the events route answers
// 503. Shutdown ends the relay and every stream.
func (g *Gateway) StartEvents(ctx context.Context, src EventSource, cfg EventsConfig) error {
	cfg.setDefaults()
	h, err := startHub(ctx, src, cfg)
	if err != nil {
		return fmt.Errorf("gateway: start event relay: %w", err)
	}
	g.events.Store(h)
	return nil
}

// stopEvents ends the relay: every stream ends cleanly, so the HTTP server's shutdown does not
// wait for them.
func (g *Gateway) stopEvents() {
	if h := g.events.Load(); h != nil {
		h.close()
	}
}

// hubEvent is one event as the hub keeps it: the subject's tokens it filters on, and the
// payload as stored.
type hubEvent struct {
	seq      uint64
	space    string // encoded subject token
	pipeline string // encoded subject token, empty when the kind names none
	runID    string
	typ      string
	data     []byte
}

func parseHubEvent(m natsbus.EventMsg) (*hubEvent, bool) {
	s, ok := natsbus.ParseEventSubject(m.Subject)
	if !ok {
		return nil, false
	}
	typ := typeOfSubject(s)
	if typ == "" {
		// A kind this gateway does not know: the payload says. Known kinds skip this, since
		// decoding every payload would cost more than all the rest of the relay.
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(m.Data, &head); err != nil || head.Type == "" {
			return nil, false
		}
		typ = head.Type
	}
	return &hubEvent{seq: m.Seq, space: s.Space, pipeline: s.Pipeline(), runID: s.RunID(), typ: typ, data: m.Data}, true
}

// typeOfSubject is the event type the subject scheme implies, empty when it implies none.
func typeOfSubject(s natsbus.EventSubject) string {
	switch s.Kind {
	case natsbus.EventKindRun:
		if s.C == "sla_missed" {
			return event.TypePipelineRunSLAMissed
		}
		return event.TypePipelineRunStatusChanged
	case natsbus.EventKindBlockRun:
		return event.TypeBlockRunStatusChanged
	case natsbus.EventKindComment, natsbus.EventKindSync:
		if t := s.Kind + "." + s.C; event.Known(t) {
			return t
		}
	case natsbus.EventKindPipeline:
		if s.C == "updated" {
			return event.TypePipelineUpdated
		}
	}
	return ""
}

// eventFilter selects a client's events; nil sets allow everything.
type eventFilter struct {
	space     string
	pipelines map[string]bool
	runs      map[string]bool
	types     map[string]bool
}

func (f *eventFilter) match(e *hubEvent) bool {
	return e.space == f.space &&
		(f.pipelines == nil || f.pipelines[e.pipeline]) &&
		(f.runs == nil || f.runs[e.runID]) &&
		(f.types == nil || f.types[e.typ])
}

// Why a client's stream ends from the hub's side.
const (
	endShutdown = iota + 1
	endOverflow
)

type sseClient struct {
	filter eventFilter
	ch     chan *hubEvent
	done   chan struct{}
	once   sync.Once
	reason int
}

func (c *sseClient) end(reason int) {
	c.once.Do(func() {
		c.reason = reason
		close(c.done)
	})
}

type hub struct {
	src  EventSource
	cfg  EventsConfig
	ctx  context.Context // ends when the hub closes; catch-up reads run under it
	stop context.CancelFunc

	mu      sync.Mutex
	last    uint64 // sequence of the newest event seen
	floor   uint64 // the ring holds every event with a sequence in (floor, last]
	ring    []*hubEvent
	head    int // index of the oldest event in ring once it is full
	clients map[string]map[*sseClient]struct{}
	closed  bool

	unfollow func()
}

func startHub(ctx context.Context, src EventSource, cfg EventsConfig) (*hub, error) {
	last, err := src.LastEventSeq(ctx)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &hub{src: src, cfg: cfg, ctx: hctx, stop: cancel, last: last, floor: last,
		ring: make([]*hubEvent, 0, min(cfg.Replay, 1024)), clients: map[string]map[*sseClient]struct{}{}}
	unfollow, err := src.FollowEvents(ctx, last, h.deliver)
	if err != nil {
		cancel()
		return nil, err
	}
	h.unfollow = unfollow
	return h, nil
}

// deliver takes one event from the follower, in stream order.
func (h *hub) deliver(m natsbus.EventMsg) {
	e, ok := parseHubEvent(m)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || m.Seq <= h.last {
		return
	}
	h.last = m.Seq
	if !ok {
		// Not an event a client can see, but its sequence is accounted for: the ring still
		// covers every sequence up to last.
		return
	}
	if len(h.ring) < h.cfg.Replay {
		h.ring = append(h.ring, e)
	} else {
		h.floor = h.ring[h.head].seq
		h.ring[h.head] = e
		h.head = (h.head + 1) % len(h.ring)
	}
	for c := range h.clients[e.space] {
		if !c.filter.match(e) {
			continue
		}
		select {
		case c.ch <- e:
		default:
			h.removeLocked(c)
			c.end(endOverflow)
		}
	}
}

// register adds a client. For a client resuming after sequence after, it returns the kept
// events it missed, or catchUp true and until: the client reads the stream up to until, and
// the hub delivers everything after until.
func (h *hub) register(c *sseClient, resume bool, after uint64) (backlog []*hubEvent, catchUp bool, until uint64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, 0, errors.New("gateway: event relay is shut down")
	}
	set := h.clients[c.filter.space]
	if set == nil {
		set = map[*sseClient]struct{}{}
		h.clients[c.filter.space] = set
	}
	set[c] = struct{}{}
	if !resume || after >= h.last {
		return nil, false, h.last, nil
	}
	if after < h.floor {
		return nil, true, h.last, nil
	}
	for i := range h.ring {
		e := h.ring[(h.head+i)%len(h.ring)]
		if e.seq > after && c.filter.match(e) {
			backlog = append(backlog, e)
		}
	}
	return backlog, false, h.last, nil
}

func (h *hub) unregister(c *sseClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

func (h *hub) removeLocked(c *sseClient) {
	if set := h.clients[c.filter.space]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.clients, c.filter.space)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for _, set := range h.clients {
		for c := range set {
			c.end(endShutdown)
		}
	}
	h.clients = nil
	h.mu.Unlock()
	h.unfollow()
	h.stop()
}

// streamEvents answers GET /api/v1.0/spaces/:slug/orchestration/events.
func (g *Gateway) streamEvents(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	filter, since, err := eventQuery(c, slug)
	if err != nil {
		return err
	}
	resume, after, bad := lastEventID(c)
	if bad != nil {
		return c.Status(http.StatusUnprocessableEntity).JSON(fiber.Map{"detail": []qarionFieldError{{
			Loc: bad, Msg: "must be the id of an event: a whole number", Type: "value_error",
		}}})
	}
	h := g.events.Load()
	if h == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Message: "the event relay is not running"}
	}
	cl := &sseClient{filter: filter, ch: make(chan *hubEvent, h.cfg.ClientBuffer), done: make(chan struct{})}
	// Registering before the response starts means that once a client has the response
	// headers, it misses no event published afterwards.
	backlog, catchUp, until, err := h.register(cl, resume, after)
	if err != nil {
		return &apiError{Status: http.StatusServiceUnavailable, Message: "the gateway is shutting down"}
	}
	var from natsbus.EventFrom
	switch {
	case resume && catchUp:
		from = natsbus.EventFrom{After: after}
	case !resume && !since.IsZero():
		from, catchUp = natsbus.EventFrom{Since: since}, true
	}
	conn := c.Context().Conn()
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer h.unregister(cl)
		s := &sseStream{w: w, conn: conn, stall: h.cfg.WriteStall, sent: after}
		s.run(h, cl, catchUp, from, until, backlog)
	})
	return nil
}

// sseStream writes one client's stream.
type sseStream struct {
	w     *bufio.Writer
	conn  net.Conn
	stall time.Duration
	sent  uint64 // sequence of the last event written
	err   error
}

func (s *sseStream) run(h *hub, cl *sseClient, catchUp bool, from natsbus.EventFrom, until uint64, backlog []*hubEvent) {
	s.printf("retry: 1000\n: connected\n\n")
	s.flush()
	if catchUp {
		err := h.src.ReadEvents(h.ctx, natsbus.SpaceEventsFilter(cl.filter.space), from, until, func(m natsbus.EventMsg) error {
			if e, ok := parseHubEvent(m); ok && cl.filter.match(e) {
				s.event(e)
			}
			if s.err == nil && s.w.Buffered() > 32<<10 {
				s.flush()
			}
			return s.err
		})
		if err != nil && s.err == nil {
			// The gap cannot be read (NATS is away, or the gateway stops): ending the stream
			// lets the client resume later from the last event it got, with nothing skipped.
			return
		}
	}
	for _, e := range backlog {
		s.event(e)
	}
	if until > s.sent {
		// Everything up to until was considered; an id-only message moves the client's
		// position there, so a reconnect resumes after it even when the filter matched none.
		s.sent = until
		s.printf("id: %d\n\n", until)
	}
	s.flush()
	beat := time.NewTicker(h.cfg.Heartbeat)
	defer beat.Stop()
	for s.err == nil {
		select {
		case e := <-cl.ch:
			s.event(e)
			// Events that queued meanwhile go out in the same flush.
		batch:
			for n := 0; n < 256; n++ {
				select {
				case e := <-cl.ch:
					s.event(e)
				default:
					break batch
				}
			}
			s.flush()
		case <-beat.C:
			s.printf(": heartbeat\n\n")
			s.flush()
		case <-cl.done:
			if cl.reason == endOverflow {
				s.printf("event: overflow\ndata: {\"last_event_id\":\"%d\"}\n\n", s.sent)
				s.flush()
			}
			return
		}
	}
}

func (s *sseStream) event(e *hubEvent) {
	if s.err != nil || e.seq <= s.sent {
		return
	}
	s.printf("id: %d\nevent: %s\ndata: %s\n\n", e.seq, e.typ, e.data)
	s.sent = e.seq
}

func (s *sseStream) printf(format string, args ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, args...)
	}
}

// flush sends what is buffered. The deadline makes a client that takes nothing end its
// stream instead of holding this writer forever.
func (s *sseStream) flush() {
	if s.err != nil {
		return
	}
	if s.conn != nil {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.stall))
	}
	s.err = s.w.Flush()
}

// eventQuery reads the stream's filters: pipeline_id, run_id and type, each a comma-separated
// list, and since (RFC 3339).
func eventQuery(c *fiber.Ctx, space string) (eventFilter, time.Time, error) {
	f := eventFilter{space: natsbus.EventToken(space)}
	var errs validation.Errors
	list := func(name string, check func(string) bool, msg string, encode bool) map[string]bool {
		v, present := c.Queries()[name]
		if !present {
			return nil
		}
		set := map[string]bool{}
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if !check(item) {
				errs.Add(name, "%s", msg)
				return nil
			}
			if encode {
				// Pipelines and runs are compared with the subject's tokens.
				item = natsbus.EventToken(item)
			}
			set[item] = true
		}
		return set
	}
	f.pipelines = list("pipeline_id", func(s string) bool { return s != "" && len(s) <= 255 },
		"must be a comma-separated list of pipeline ids", true)
	f.runs = list("run_id", func(s string) bool { n, err := strconv.ParseInt(s, 10, 64); return err == nil && n > 0 },
		"must be a comma-separated list of run ids (positive whole numbers)", true)
	f.types = list("type", event.Known, "must be a comma-separated list of event types: "+strings.Join(event.Types, ", "), false)
	var since time.Time
	if v, present := c.Queries()["since"]; present {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs.Add("since", "must be an RFC 3339 date-time such as 2026-11-23T11:51:37Z")
		}
		since = t
	}
	return f, since, inQuery(errs.Err())
}

// lastEventID reads where a client resumes: the Last-Event-ID header, or last_event_id in the
// query for clients that cannot set headers. bad locates a value that is not an event id.
func lastEventID(c *fiber.Ctx) (resume bool, after uint64, bad []any) {
	v, loc := c.Get("Last-Event-ID"), []any{"header", "last-event-id"}
	if v == "" {
		v, loc = c.Query("last_event_id"), []any{"query", "last_event_id"}
	}
	if v == "" {
		return false, 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return false, 0, loc
	}
	return true, n, nil
}
