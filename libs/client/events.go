package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runyard/runyard/libs/event"
)

// EventFilter narrows an event stream; empty fields select everything.
type EventFilter struct {
	PipelineIDs []string
	RunIDs      []int64
	Types       []string
	// Since starts a stream that does not resume at the first event stored at or after it.
	Since time.Time
}

func (f EventFilter) query(lastEventID string) url.Values {
	q := url.Values{}
	if len(f.PipelineIDs) > 0 {
		q.Set("pipeline_id", strings.Join(f.PipelineIDs, ","))
	}
	if len(f.RunIDs) > 0 {
		ids := make([]string, len(f.RunIDs))
		for i, id := range f.RunIDs {
			ids[i] = strconv.FormatInt(id, 10)
		}
		q.Set("run_id", strings.Join(ids, ","))
	}
	if len(f.Types) > 0 {
		q.Set("type", strings.Join(f.Types, ","))
	}
	if lastEventID == "" && !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// Event is one event of a stream.
type Event struct {
	// ID is the event's position in the event log; a stream resumed after it continues with
	// the next event.
	ID   string
	Type string
	// Data is the payload as sent; Payload is it decoded.
	Data    json.RawMessage
	Payload event.Event
}

// Stream is a space's event stream. Its channel C delivers the events in log order, without
// gap or repeat across reconnections; it is closed when the context ends or the gateway
// refuses the stream for good (Err says why).
type Stream struct {
	C <-chan Event

	mu     sync.Mutex
	err    error
	lastID string
}

// Err is why the stream ended: nil while it runs and when its context ended.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// LastEventID is the position the stream would resume from.
func (s *Stream) LastEventID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

func (s *Stream) setLast(id string) {
	s.mu.Lock()
	s.lastID = id
	s.mu.Unlock()
}

// Reconnection backoff of an event stream.
const (
	reconnectFirst = 100 * time.Millisecond
	reconnectMax   = 5 * time.Second
)

// Events streams the events of space that match filter, resuming after lastEventID when it is
// not empty. It returns once the gateway accepted the stream: from then on no event is
// missed. When the connection drops, or the gateway cuts a slow reader off, the stream
// reconnects with backoff and resumes after the last event it delivered. The caller must
// keep reading C (or end ctx) so the gateway does not cut it off.
func (c *Client) Events(ctx context.Context, space string, filter EventFilter, lastEventID string) (*Stream, error) {
	ch := make(chan Event, 64)
	st := &Stream{C: ch, lastID: lastEventID}
	body, err := c.openEvents(ctx, space, filter, lastEventID)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(ch)
		backoff := reconnectFirst
		for {
			received := st.read(ctx, body, ch)
			body.Close()
			if ctx.Err() != nil {
				return
			}
			if received {
				backoff = reconnectFirst
			}
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, reconnectMax)
				body, err = c.openEvents(ctx, space, filter, st.LastEventID())
				var e *Error
				if errors.As(err, &e) && e.Permanent() {
					st.mu.Lock()
					st.err = err
					st.mu.Unlock()
					return
				}
				if err == nil {
					break
				}
			}
		}
	}()
	return st, nil
}

func (c *Client) openEvents(ctx context.Context, space string, filter EventFilter, lastEventID string) (io.ReadCloser, error) {
	p := "/api/v1.0/spaces/" + url.PathEscape(space) + "/orchestration/events"
	if q := filter.query(lastEventID).Encode(); q != "" {
		p += "?" + q
	}
	req, err := c.newRequest(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("runyard: events of %s: %w", space, err)
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return nil, errorOf(res.StatusCode, data)
	}
	return res.Body, nil
}

// read parses one connection's Server-Sent Events until it ends. It reports whether the
// connection delivered anything, which resets the reconnection backoff.
func (s *Stream) read(ctx context.Context, body io.Reader, ch chan<- Event) (received bool) {
	br := bufio.NewReaderSize(body, 64<<10)
	var id, typ string
	var data strings.Builder
	hasID := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return received
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id, hasID = value, true
			case "event":
				typ = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
			continue
		}
		// A blank line ends a message.
		received = true
		switch {
		case typ == "overflow":
			// The gateway cut this reader off as too slow; it resumes from the id given.
			var o struct {
				LastEventID string `json:"last_event_id"`
			}
			if json.Unmarshal([]byte(data.String()), &o) == nil && o.LastEventID != "" {
				s.setLast(o.LastEventID)
			}
			return received
		case data.Len() > 0 && typ != "":
			ev := Event{ID: id, Type: typ, Data: json.RawMessage(data.String())}
			if err := json.Unmarshal(ev.Data, &ev.Payload); err == nil {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return received
				}
			}
			if hasID {
				s.setLast(id)
			}
		case hasID:
			// A message with only an id moves the position past events this stream skips.
			s.setLast(id)
		}
		id, typ, hasID = "", "", false
		data.Reset()
	}
}
