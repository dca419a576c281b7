package client

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAllEvents parses every event of r and the error that ended the stream.
func readAllEvents(p *SSEReader) ([]SSEEvent, error) {
	var evs []SSEEvent
	for {
		ev, err := p.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEReader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []SSEEvent
	}{
		{"the server's frames", "retry: 3000\n\nid: 1\nevent: message\ndata: {\"id\":1}\n\n: keepalive\n\nid: 2\nevent: message\ndata: {\"id\":2}\n\n",
			[]SSEEvent{{"message", `{"id":1}`, "1"}, {"message", `{"id":2}`, "2"}}},
		{"default type", "data: x\n\n", []SSEEvent{{"message", "x", ""}}},
		{"data lines join with LF", "data: a\ndata:b\ndata:  c\n\n", []SSEEvent{{"message", "a\nb\n c", ""}}},
		{"CRLF", "event: e\r\ndata: x\r\n\r\n", []SSEEvent{{"e", "x", ""}}},
		{"CR", "data: x\rdata: y\r\rdata: z\r\r", []SSEEvent{{"message", "x\ny", ""}, {"message", "z", ""}}},
		{"type resets after each event", "event: a\ndata: 1\n\ndata: 2\n\n", []SSEEvent{{"a", "1", ""}, {"message", "2", ""}}},
		{"id persists", "id: 7\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\n", []SSEEvent{{"message", "1", "7"}, {"message", "2", "7"}, {"message", "3", ""}}},
		{"id with NUL is ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []SSEEvent{{"message", "a", "1"}, {"message", "b", "1"}}},
		{"no data, no event", "event: x\n\n: c\n\nid: 4\n\n", nil},
		{"empty data line is an event", "data\n\n", []SSEEvent{{"message", "", ""}}},
		{"unknown fields are ignored", "foo: bar\ndata: x\nbaz\n\n", []SSEEvent{{"message", "x", ""}}},
		{"a leading BOM is skipped", "\uFEFFdata: x\n\n", []SSEEvent{{"message", "x", ""}}},
		{"an unfinished event is dropped", "data: x\n\ndata: y\n", []SSEEvent{{"message", "x", ""}}},
		{"an unfinished line is dropped", "data: x\n\ndata: y", []SSEEvent{{"message", "x", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, small := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tc.in)
				p := NewSSEReader(r)
				if small {
					p = NewSSEReaderSize(iotest.OneByteReader(strings.NewReader(tc.in)), 16, 1<<10)
				}
				got, err := readAllEvents(p)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("stream ended with %v, want EOF", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("small=%v:\n got %q\nwant %q", small, got, tc.want)
				}
			}
		})
	}
}

func TestSSEReaderRetry(t *testing.T) {
	p := NewSSEReader(strings.NewReader("retry: 3000\n\nretry: x1\n\nretry: -5\n\ndata: x\n\n"))
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	if p.Retry() != 3*time.Second {
		t.Errorf("Retry() = %v, want 3s (invalid values ignored)", p.Retry())
	}
}

func TestSSEReaderLimit(t *testing.T) {
	p := NewSSEReaderSize(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 16, 64)
	if _, err := p.Next(); !errors.Is(err, ErrSSETooLarge) {
		t.Errorf("a 106-byte line with limit 64: err = %v, want ErrSSETooLarge", err)
	}
	p = NewSSEReaderSize(strings.NewReader(strings.Repeat("data: xxxxxxxxxx\n", 10)+"\n"), 16, 64)
	if _, err := p.Next(); !errors.Is(err, ErrSSETooLarge) {
		t.Errorf("110 bytes of data with limit 64: err = %v, want ErrSSETooLarge", err)
	}
}

// encodeSSE writes events in the canonical form the reader must read back as they were.
func encodeSSE(evs []SSEEvent) []byte {
	var b bytes.Buffer
	for _, ev := range evs {
		b.WriteString("event: " + ev.Type + "\n")
		b.WriteString("id: " + ev.ID + "\n")
		for line := range strings.SplitSeq(ev.Data, "\n") {
			b.WriteString("data: " + line + "\n")
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// FuzzSSEParser feeds untrusted bytes to the parser: it must not panic, must
// read the same events whatever the stream's chunking, must produce fields
// that hold no line ends, and its events written out again canonically must
// read back unchanged.
func FuzzSSEParser(f *testing.F) {
	for _, seed := range []string{
		"retry: 3000\n\nid: 1\nevent: message\ndata: {\"id\":1,\"content\":\"hi\"}\n\n",
		"data: a\r\ndata: b\r\n\r\n", "data: x\rid: 5\r\r", ": c\n\ndata\n\n", "\uFEFFevent:e\ndata:\n\n",
		"id: 1\x002\ndata: x\n\n", "event: truncated\ndata: {\"event\":\"truncated\"}\n\n", "data: x",
	} {
		f.Add([]byte(seed))
	}
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, errWhole := readAllEvents(NewSSEReaderSize(bytes.NewReader(in), 4096, limit))
		bytewise, errBytewise := readAllEvents(NewSSEReaderSize(iotest.OneByteReader(bytes.NewReader(in)), 16, limit))
		if !reflect.DeepEqual(whole, bytewise) || !errors.Is(errBytewise, errWhole) {
			t.Fatalf("chunking changed the result:\nwhole    %q %v\nbytewise %q %v", whole, errWhole, bytewise, errBytewise)
		}
		if !errors.Is(errWhole, io.EOF) && !errors.Is(errWhole, ErrSSETooLarge) {
			t.Fatalf("unexpected error %v", errWhole)
		}
		for _, ev := range whole {
			if ev.Type == "" || strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n\x00") || strings.Contains(ev.Data, "\r") {
				t.Fatalf("bad event %q", ev)
			}
		}
		again, err := readAllEvents(NewSSEReaderSize(bytes.NewReader(encodeSSE(whole)), 4096, 4*limit))
		if !errors.Is(err, io.EOF) || len(again) != len(whole) || (len(whole) > 0 && !reflect.DeepEqual(again, whole)) {
			t.Fatalf("round trip:\n got %q %v\nwant %q", again, err, whole)
		}
	})
}
