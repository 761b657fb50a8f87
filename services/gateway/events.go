package gateway

import (
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
//
// A relay to many clients costs mostly system calls, so each event is encoded once as the
// message every client is sent, and each stream writes on its own connection (taken over from
// the HTTP server) whatever has queued for it in one write, pacing its writes slightly so
// that a burst of events shares one.

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
// message as every client is sent it, encoded once and shared by all of them.
type hubEvent struct {
	seq      uint64
	space    string // encoded subject token
	pipeline string // encoded subject token, empty when the kind names none
	runID    string
	typ      string
	frame    []byte // "id: …\nevent: …\ndata: …\n\n"; never written to
}

// sseFrame encodes one event as a Server-Sent Events message. The payload is compact JSON,
// so it holds no line break and fits one data line.
func sseFrame(seq uint64, typ string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(typ)+40)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
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
	return &hubEvent{seq: m.Seq, space: s.Space, pipeline: s.Pipeline(), runID: s.RunID(), typ: typ, frame: sseFrame(m.Seq, typ, m.Data)}, true
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
	// streams counts the streams being served: they run on connections taken from the HTTP
	// server, whose shutdown does not wait for them, so close does.
	streams sync.WaitGroup

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

// register adds a client and counts its stream until streamDone. For a client resuming after
// sequence after, it returns the kept events it missed, or catchUp true and until: the client
// reads the stream up to until, and the hub delivers everything after until.
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
	h.streams.Add(1)
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

func (h *hub) streamDone() { h.streams.Done() }

func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
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
	// Each stream writes its last bytes under a deadline of at most a second; waiting for
	// them lets the process exit with every stream ended cleanly.
	done := make(chan struct{})
	go func() {
		h.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
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
	if h.isClosed() {
		return &apiError{Status: http.StatusServiceUnavailable, Message: "the gateway is shutting down"}
	}
	c.Status(http.StatusOK)
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	resp := &c.Context().Response.Header
	resp.SetContentLength(-1) // chunked
	// The connection ends with the stream: it was taken from the server, which can no longer
	// serve another request on it.
	resp.SetConnectionClose()
	if c.Method() == fiber.MethodHead {
		return nil // the headers only: no stream, no registration
	}
	head := append([]byte(nil), resp.Header()...)
	cl := &sseClient{filter: filter, ch: make(chan *hubEvent, h.cfg.ClientBuffer), done: make(chan struct{})}
	s := &sseStream{h: h, cl: cl, conn: c.Context().Conn(), stall: h.cfg.WriteStall}
	// The stream takes the connection over once this handler returns, and writes the response
	// itself: one write per batch of events, of any size, straight from its own goroutine
	// (fasthttp's streamed bodies go through a pipe, a second goroutine and 4 KiB chunks).
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(net.Conn) {
		s.serve(head, resume, after, since)
	})
	return nil
}

// sseStream is one client's stream.
type sseStream struct {
	h     *hub
	cl    *sseClient
	conn  net.Conn
	stall time.Duration
	beat  *time.Ticker

	sent  uint64 // sequence of the last event queued
	until uint64 // the live events start after it
	// pending holds the bytes queued for the client, in order; event frames are the hub's
	// shared bytes, copied only into the write buffer.
	pending [][]byte
	queued  int
	out     []byte // the chunk being written
	backlog []*hubEvent
	live    bool // catch-up and backlog are queued; events now come from the hub
	ending  bool // nothing more after pending

	catchUp    chan *hubEvent // events read from the stream; closed when the read ends
	catchErr   error          // why the catch-up read ended, once catchUp is closed
	stopCatch  context.CancelFunc
	deadlineAt time.Time // when the connection's write deadline was last moved
	lastWrite  time.Time // when live events were last written
}

// Stream tuning. batchBytes bounds what one write takes from the client's buffer.
//
// flushPace spaces a client's writes of live events: an event that finds the client written
// to less than flushPace ago waits out the rest of it, and the events that arrive meanwhile
// go out in the same write, unless events are already waiting. A run's events come in bursts a few milliseconds apart, and on
// loopback one write costs more CPU than queueing an event for a thousand clients, so pacing
// cuts the relay's CPU; an event arriving after a quiet moment is written at once.
const (
	batchBytes = 64 << 10
	flushPace  = 5 * time.Millisecond
)

var (
	sseHello     = []byte("retry: 1000\n: connected\n\n")
	sseHeartbeat = []byte(": heartbeat\n\n")
)

// serve runs the stream on the taken-over connection until the client goes, the hub ends
// the stream, or the gateway shuts down.
func (s *sseStream) serve(head []byte, resume bool, after uint64, since time.Time) {
	// Registering before the response starts means that once a client has the response
	// headers, it misses no event published afterwards.
	backlog, catchUp, until, err := s.h.register(s.cl, resume, after)
	if err != nil {
		s.extendDeadline()
		_, _ = s.conn.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		return
	}
	defer s.h.streamDone()
	defer s.h.unregister(s.cl)
	s.beat = time.NewTicker(s.h.cfg.Heartbeat)
	defer s.beat.Stop()
	s.sent, s.until, s.backlog = after, until, backlog
	switch {
	case resume && catchUp:
		s.startCatchUp(natsbus.EventFrom{After: after})
	case !resume && !since.IsZero():
		s.startCatchUp(natsbus.EventFrom{Since: since})
	}
	if s.stopCatch != nil {
		defer s.stopCatch()
	}
	s.out = append(s.out[:0], head...)
	s.push(sseHello)
	for {
		if s.queued == 0 && !s.ending {
			s.wait()
			continue
		}
		if s.write() != nil {
			return
		}
		if s.ending {
			return
		}
	}
}

// write sends everything queued as one chunk, and the last chunk once the stream ends.
func (s *sseStream) write() error {
	if s.queued > 0 {
		s.out = strconv.AppendInt(s.out, int64(s.queued), 16)
		s.out = append(s.out, "\r\n"...)
		for i, b := range s.pending {
			s.out = append(s.out, b...)
			s.pending[i] = nil
		}
		s.out = append(s.out, "\r\n"...)
		s.pending, s.queued = s.pending[:0], 0
	}
	if s.ending {
		s.out = append(s.out, "0\r\n\r\n"...)
	}
	s.extendDeadline()
	_, err := s.conn.Write(s.out)
	if s.live {
		s.lastWrite = time.Now()
	}
	if cap(s.out) > batchBytes {
		s.out = nil // let a long batch's buffer go
	} else {
		s.out = s.out[:0]
	}
	return err
}

// extendDeadline makes a client that takes no data for the stall time end its stream instead
// of holding a goroutine and its buffers forever. Moving the deadline costs a runtime call,
// so it moves at most once a second: a stall is detected after between stall − 1 s and stall.
// A stream that ends gets a short deadline for its last write, so that a stalled client
// does not hold up a shutdown.
func (s *sseStream) extendDeadline() {
	now := time.Now()
	if s.ending {
		_ = s.conn.SetWriteDeadline(now.Add(min(s.stall, time.Second)))
		return
	}
	if now.Sub(s.deadlineAt) < time.Second {
		return
	}
	s.deadlineAt = now
	_ = s.conn.SetWriteDeadline(now.Add(s.stall))
}

// startCatchUp reads the events the hub no longer keeps, from the stream, up to until.
func (s *sseStream) startCatchUp(from natsbus.EventFrom) {
	ctx, cancel := context.WithCancel(s.h.ctx)
	s.stopCatch = cancel
	s.catchUp = make(chan *hubEvent, 256)
	filter, until := s.cl.filter, s.until
	go func() {
		defer close(s.catchUp)
		s.catchErr = s.h.src.ReadEvents(ctx, natsbus.SpaceEventsFilter(filter.space), from, until, func(m natsbus.EventMsg) error {
			e, ok := parseHubEvent(m)
			if !ok || !filter.match(e) {
				return nil
			}
			select {
			case s.catchUp <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
}

func (s *sseStream) push(b []byte) {
	s.pending = append(s.pending, b)
	s.queued += len(b)
}

// event queues e unless an earlier step already sent it.
func (s *sseStream) event(e *hubEvent) {
	if e.seq <= s.sent {
		return
	}
	s.sent = e.seq
	s.push(e.frame)
}

// drain queues, without waiting, what ch holds, up to about batchBytes queued in all.
func (s *sseStream) drain(ch <-chan *hubEvent) {
	for s.queued < batchBytes {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			s.event(e)
		default:
			return
		}
	}
}

// wait queues something for the client: the next events of the catch-up, live events, a
// heartbeat, or the end of the stream.
func (s *sseStream) wait() {
	if s.catchUp != nil {
		select {
		case e, ok := <-s.catchUp:
			if ok {
				s.event(e)
				s.drain(s.catchUp)
				return
			}
			s.catchUp = nil
			if s.catchErr != nil {
				// The gap cannot be read (NATS is away, or the gateway stops): ending the
				// stream lets the client resume later from the last event it got, with
				// nothing skipped.
				s.ending = true
				return
			}
		case <-s.beat.C:
			s.push(sseHeartbeat)
			return
		case <-s.cl.done:
			s.end()
			return
		}
	}
	if !s.live {
		for _, e := range s.backlog {
			s.event(e)
		}
		s.backlog = nil
		if s.until > s.sent {
			// Everything up to until was considered; an id-only message moves the client's
			// position there, so a reconnect resumes after it even when the filter matched
			// none.
			s.sent = s.until
			s.push(fmt.Appendf(nil, "id: %d\n\n", s.until))
		}
		s.live = true
		if s.queued > 0 {
			return
		}
	}
	select {
	case e := <-s.cl.ch:
		s.event(e)
		// Only a client that is keeping up waits: one with events queued is written to at
		// once, so pacing never limits how fast a client can be sent a flood.
		if d := flushPace - time.Since(s.lastWrite); d > 0 && len(s.cl.ch) == 0 && s.pause(d) {
			s.end()
			return
		}
		s.drain(s.cl.ch)
	case <-s.beat.C:
		s.push(sseHeartbeat)
	case <-s.cl.done:
		s.end()
	}
}

// pause waits d for more events to batch. It reports whether the hub ended the stream
// meanwhile.
func (s *sseStream) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-s.cl.done:
		return true
	}
}

// end queues the last message of a stream the hub ended.
func (s *sseStream) end() {
	if s.cl.reason == endOverflow {
		s.push(fmt.Appendf(nil, "event: overflow\ndata: {\"last_event_id\":\"%d\"}\n\n", s.sent))
	}
	s.ending = true
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
