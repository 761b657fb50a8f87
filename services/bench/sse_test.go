package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestJSONStringFieldAndEventStamp(t *testing.T) {
	t.Parallel()
	data := []byte(`{"type":"pipeline_run.status_changed","version":1,"id":"pipeline_run-42-v3","occurred_at":"2026-11-23T11:51:37.407Z","space":"default","pipeline_run":{"id":42,"note":"a \"quoted\" id"}}`)
	id, at, ok := eventStamp(data)
	if !ok || id != "pipeline_run-42-v3" || !at.Equal(time.Date(2026, 11, 23, 11, 51, 37, 407e6, time.UTC)) {
		t.Fatalf("eventStamp = %q, %v, %v", id, at, ok)
	}
	if _, ok := jsonStringField(data, "missing"); ok {
		t.Fatal("an absent field was found")
	}
	if _, ok := jsonStringField([]byte(`{"id":"a\"b"}`), "id"); ok {
		t.Fatal("a value with an escape must be refused, not cut short")
	}
	if _, _, ok := eventStamp([]byte(`{"id":"x","occurred_at":"yesterday"}`)); ok {
		t.Fatal("an unreadable occurred_at was accepted")
	}
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100<<10) // longer than the reader's buffer
	stream := "retry: 1000\n: connected\n\n" +
		"id: 7\nevent: pipeline_run.status_changed\ndata: {\"id\":\"a\"}\n\n" +
		": heartbeat\n\n" +
		"id: 9\n\n" +
		"id: 12\r\nevent: block_run.status_changed\r\ndata: " + long + "\r\n\r\n" +
		"data: one\ndata: two\n\n" +
		"event: overflow\ndata: {\"last_event_id\":\"12\"}\n\n"
	r := newSSEReader(strings.NewReader(stream))
	type want struct {
		id               uint64
		event, data      string
		comment          string
		longData, noData bool
	}
	for i, w := range []want{
		{comment: "connected", noData: true},
		{id: 7, event: "pipeline_run.status_changed", data: `{"id":"a"}`},
		{comment: "heartbeat", noData: true},
		{id: 9, noData: true},
		{id: 12, event: "block_run.status_changed", longData: true},
		{data: "one\ntwo"},
		{event: "overflow", data: `{"last_event_id":"12"}`},
	} {
		m, err := r.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.ID != w.id || m.Event != w.event || m.Comment != w.comment {
			t.Fatalf("message %d = %+v, want %+v", i, m, w)
		}
		switch {
		case w.noData && m.Data != nil:
			t.Fatalf("message %d: data %q, want none", i, m.Data)
		case w.longData && string(m.Data) != long:
			t.Fatalf("message %d: long data of %d bytes, want %d", i, len(m.Data), len(long))
		case !w.noData && !w.longData && string(m.Data) != w.data:
			t.Fatalf("message %d: data %q, want %q", i, m.Data, w.data)
		}
	}
	if _, err := r.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
}

func TestParseSyscw(t *testing.T) {
	t.Parallel()
	n, err := parseSyscw("rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4567\nread_bytes: 0\n")
	if err != nil || n != 4567 {
		t.Fatalf("parseSyscw = %d, %v", n, err)
	}
	if _, err := parseSyscw("rchar: 10\n"); err == nil {
		t.Fatal("no syscw line: want an error")
	}
}
