package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"
)

// The event fan-out scenarios read each event's id and occurred_at straight from the payload
// bytes: decoding a thousand clients' JSON would make the load generator, which shares the
// machine with the server, the bottleneck it is meant to measure.

// statusChanged is the event type whose delivery the fan-out scenarios time.
const statusChanged = "pipeline_run.status_changed"

// jsonStringField returns the value of the first "name":"value" pair in data, which for an
// event payload is the top-level field: the envelope's fields come before the resource's. ok
// is false when the field is absent or its value holds an escape.
func jsonStringField(data []byte, name string) (string, bool) {
	key := make([]byte, 0, len(name)+4)
	key = append(append(append(key, '"'), name...), `":"`...)
	i := bytes.Index(data, key)
	if i < 0 {
		return "", false
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// eventStamp is what the fan-out scenarios need of an event payload: its id and when the
// change it reports was written (occurred_at, the resource's updated_at).
func eventStamp(data []byte) (id string, occurred time.Time, ok bool) {
	id, ok = jsonStringField(data, "id")
	if !ok {
		return "", time.Time{}, false
	}
	at, ok := jsonStringField(data, "occurred_at")
	if !ok {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return "", time.Time{}, false
	}
	return id, t, true
}

// sseMessage is one message of an event stream as the scenario sees it.
type sseMessage struct {
	ID      uint64 // 0 when the message had no id line
	Event   string
	Data    []byte // valid until the next call of next
	Comment string // the text of a comment line (": connected"), for a comment-only message
}

// sseReader reads Server-Sent Events messages. It keeps the fields it is told about and no
// more: the scenario runs a thousand of them at once.
type sseReader struct {
	br   *bufio.Reader
	long []byte // a line longer than the reader's buffer, assembled
	msg  sseMessage
	data []byte
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, 32<<10)}
}

// line returns the next line without its line ending.
func (s *sseReader) line() ([]byte, error) {
	l, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], l...)
		for errors.Is(err, bufio.ErrBufferFull) {
			l, err = s.br.ReadSlice('\n')
			s.long = append(s.long, l...)
		}
		l = s.long
	}
	if err != nil {
		return nil, err
	}
	l = bytes.TrimSuffix(l, []byte{'\n'})
	return bytes.TrimSuffix(l, []byte{'\r'}), nil
}

// next returns the next message: one with an id, event or data, or a comment.
func (s *sseReader) next() (*sseMessage, error) {
	s.msg = sseMessage{}
	s.data = s.data[:0]
	var hasData, seen bool
	for {
		l, err := s.line()
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			if seen {
				if hasData {
					s.msg.Data = s.data
				}
				return &s.msg, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(l, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		seen = true
		switch string(field) {
		case "":
			s.msg.Comment = string(value)
		case "id":
			s.msg.ID, _ = strconv.ParseUint(string(value), 10, 64)
		case "event":
			s.msg.Event = string(value)
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			hasData = true
		}
	}
}
