package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
)

// The relay takes each event's type from its subject; the subject builders and the types
// must agree for every kind.
func TestTypeOfSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject  string
		want     string
		pipeline string
		runID    string
	}{
		{natsbus.RunEventSubject("s", "p.1", 4, run.StatusRunning), event.TypePipelineRunStatusChanged, "p%2E1", "4"},
		{natsbus.RunSLAMissedSubject("s", "p", 4), event.TypePipelineRunSLAMissed, "p", "4"},
		{natsbus.BlockRunEventSubject("s", "p", 4, run.StatusQueued), event.TypeBlockRunStatusChanged, "p", "4"},
		{natsbus.CommentEventSubject("s", "p", 4, "created"), event.TypeCommentCreated, "p", "4"},
		{natsbus.CommentEventSubject("s", "p", 4, "updated"), event.TypeCommentUpdated, "p", "4"},
		{natsbus.CommentEventSubject("s", "p", 4, "deleted"), event.TypeCommentDeleted, "p", "4"},
		{natsbus.SyncEventSubject("s", "c", "j", "started"), event.TypeSyncStarted, "", ""},
		{natsbus.SyncEventSubject("s", "c", "j", "completed"), event.TypeSyncCompleted, "", ""},
		{natsbus.SyncEventSubject("s", "c", "j", "failed"), event.TypeSyncFailed, "", ""},
		{natsbus.PipelineUpdatedSubject("s", "p"), event.TypePipelineUpdated, "p", ""},
		{"runyard.evt.s.novel.a.b.c", "", "", ""},
		{natsbus.SyncEventSubject("s", "c", "j", "paused"), "", "", ""},
	}
	for _, tt := range tests {
		s, ok := natsbus.ParseEventSubject(tt.subject)
		if !ok {
			t.Fatalf("%s does not parse", tt.subject)
		}
		if got := typeOfSubject(s); got != tt.want || s.Pipeline() != tt.pipeline || s.RunID() != tt.runID {
			t.Errorf("%s: type %q pipeline %q run %q", tt.subject, got, s.Pipeline(), s.RunID())
		}
	}
}

// readChunk reads one chunk of a chunked HTTP body; nil is the last chunk.
func readChunk(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("chunk size: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
	if err != nil {
		t.Fatalf("chunk size %q: %v", line, err)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("chunk of %d bytes: %v", n, err)
	}
	if string(b[n:]) != "\r\n" {
		t.Fatalf("chunk of %d bytes ends with %q", n, b[n:])
	}
	if n == 0 {
		return nil
	}
	return b[:n]
}

// The stream writes the hub's shared frames, in order, only of its own space, batches what
// queued while it was writing into one chunk, and when the hub cuts it off as too slow it
// ends with an overflow message naming the last event it was sent, then the last chunk.
func TestStreamOnConnection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cfg := EventsConfig{ClientBuffer: 4, Replay: 100, Heartbeat: time.Hour, WriteStall: 5 * time.Second}
	h := &hub{cfg: cfg, ctx: ctx, stop: cancel, unfollow: func() {}, clients: map[string]map[*sseClient]struct{}{}}
	seq := uint64(0)
	publish := func(space string, id int64) {
		seq++
		h.deliver(natsbus.EventMsg{Seq: seq, Subject: natsbus.RunEventSubject(space, "p", id, run.StatusRunning),
			Data: []byte(fmt.Sprintf(`{"type":"pipeline_run.status_changed","run_id":%d}`, id))})
	}
	frame := func(seq uint64, id int64) string {
		return fmt.Sprintf("id: %d\nevent: pipeline_run.status_changed\ndata: {\"type\":\"pipeline_run.status_changed\",\"run_id\":%d}\n\n", seq, id)
	}

	server, client := net.Pipe()
	defer client.Close()
	cl := &sseClient{filter: eventFilter{space: "default"}, ch: make(chan *hubEvent, cfg.ClientBuffer), done: make(chan struct{})}
	s := &sseStream{h: h, cl: cl, conn: server, stall: cfg.WriteStall}
	served := make(chan struct{})
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	go func() {
		defer close(served)
		defer server.Close()
		s.serve([]byte(head), false, 0, time.Time{})
	}()
	br := bufio.NewReader(client)
	got := make([]byte, len(head))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != head {
		t.Fatalf("head %q, %v", got, err)
	}
	if c := readChunk(t, br); string(c) != "retry: 1000\n: connected\n\n" {
		t.Fatalf("first chunk %q", c)
	}

	// Registered once the greeting is out: a live event, another space's, then one more.
	publish("default", 1)
	if c := string(readChunk(t, br)); c != frame(1, 1) {
		t.Fatalf("chunk %q, want the first event", c)
	}
	publish("other", 2)
	publish("default", 3)
	if c := string(readChunk(t, br)); c != frame(3, 3) {
		t.Fatalf("chunk %q, want event 3 and nothing of the other space", c)
	}

	// The client stops reading: the stream blocks in its write of event 4, the buffer takes
	// four more, and the next one cuts the client off.
	for id := int64(4); id <= 9; id++ {
		publish("default", id)
		if id == 4 {
			deadline := time.Now().Add(5 * time.Second)
			for len(cl.ch) > 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	select {
	case <-cl.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the client was not cut off")
	}
	var rest strings.Builder
	for {
		c := readChunk(t, br)
		if c == nil {
			break
		}
		rest.Write(c)
	}
	// The buffered events may go out before the overflow message or be left for the resume:
	// either way they come in order from event 4, and the message names the last one sent.
	var want strings.Builder
	for id := int64(4); id <= 8; id++ {
		want.WriteString(frame(uint64(id), id))
		end := fmt.Sprintf("event: overflow\ndata: {\"last_event_id\":\"%d\"}\n\n", id)
		if rest.String() == want.String()+end {
			break
		}
		if id == 8 {
			t.Fatalf("after the stall: %q", rest.String())
		}
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after its last chunk")
	}
	h.close()
	if len(h.clients) != 0 {
		t.Fatalf("clients left registered: %v", h.clients)
	}
}
