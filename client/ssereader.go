package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"
)

// SSEEvent is one event of a text/event-stream.
type SSEEvent struct {
	// Type is the event's type: "message" unless the stream named another.
	Type string
	// Data is the event's data; several data lines are joined by "\n".
	Data string
	// ID is the stream's last event id when the event was dispatched (ids
	// persist from event to event, as for an EventSource).
	ID string
}

// ErrSSETooLarge is returned by SSEReader.Next for a line or an event larger
// than the reader's limit.
var ErrSSETooLarge = errors.New("event stream: line or event too large")

// SSEReader parses a text/event-stream as the HTML standard's event stream
// interpretation describes: lines end with CRLF, LF or CR; a line starting
// with ":" is a comment; "field: value" (one optional space after the
// colon); a blank line dispatches the event; an event without data is not
// dispatched; an event cut off by the end of the stream is discarded. Fields
// other than event, data, id and retry are ignored.
type SSEReader struct {
	r       *bufio.Reader
	max     int
	line    []byte
	data    []byte
	typ     string
	lastTyp string // the last event type read, reused while it repeats
	lastID  string
	retry   time.Duration
	skipLF  bool // the previous line ended with CR: a LF right after it belongs to it
	bom     bool // the leading byte order mark was dealt with
}

// DefaultSSELimit is the largest line or event an SSEReader accepts by default.
const DefaultSSELimit = 16 << 20

// NewSSEReader reads events from r, with lines and events of at most
// DefaultSSELimit bytes.
func NewSSEReader(r io.Reader) *SSEReader { return NewSSEReaderSize(r, 4096, DefaultSSELimit) }

// NewSSEReaderSize reads events from r through a buffer of bufSize bytes,
// with lines and events of at most limit bytes.
func NewSSEReaderSize(r io.Reader, bufSize, limit int) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, bufSize), max: limit}
}

// LastEventID is the last id the stream set.
func (p *SSEReader) LastEventID() string { return p.lastID }

// Retry is the last reconnection time the stream asked for (0: none).
func (p *SSEReader) Retry() time.Duration { return p.retry }

// Next returns the next event. At the end of the stream it returns io.EOF
// (an unfinished event is dropped, as the standard says).
func (p *SSEReader) Next() (SSEEvent, error) {
	if !p.bom {
		p.bom = true
		if b, err := p.r.Peek(3); err == nil && string(b) == "\uFEFF" {
			p.r.Discard(3)
		}
	}
	for {
		line, err := p.readLine()
		if err != nil {
			return SSEEvent{}, err
		}
		if len(line) == 0 {
			if len(p.data) == 0 {
				p.typ = ""
				continue
			}
			ev := SSEEvent{Type: p.typ, Data: string(p.data[:len(p.data)-1]), ID: p.lastID}
			if ev.Type == "" {
				ev.Type = "message"
			}
			p.typ, p.data = "", p.data[:0]
			return ev, nil
		}
		if line[0] == ':' {
			continue // a comment: the keepalive
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			if string(value) != p.lastTyp { // the same type again costs no allocation
				p.lastTyp = string(value)
			}
			p.typ = p.lastTyp
		case "data":
			if len(p.data)+len(value)+1 > p.max {
				return SSEEvent{}, ErrSSETooLarge
			}
			p.data = append(append(p.data, value...), '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 && string(value) != p.lastID {
				p.lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 63); err == nil { // digits only
				p.retry = time.Duration(min(ms, uint64(1<<62)/uint64(time.Millisecond))) * time.Millisecond
			}
		}
	}
}

// readLine returns the next line without its end; the slice is valid until
// the next call. A line the stream ends before finishing is not returned.
func (p *SSEReader) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		if p.skipLF {
			// Checked only now, when the next line is asked for, so that a
			// stream ending its lines with CR alone dispatches at once.
			b, err := p.r.ReadByte()
			if err != nil {
				return nil, err
			}
			p.skipLF = false
			if b != '\n' {
				p.r.UnreadByte()
			}
		}
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		end := bytes.IndexByte(buf, '\n')
		scan := buf
		if end >= 0 {
			scan = buf[:end]
		}
		if cr := bytes.IndexByte(scan, '\r'); cr >= 0 {
			end = cr
		}
		if end < 0 {
			if len(p.line)+len(buf) > p.max {
				return nil, ErrSSETooLarge
			}
			p.line = append(p.line, buf...)
			p.r.Discard(len(buf))
			continue
		}
		if len(p.line)+end > p.max {
			return nil, ErrSSETooLarge
		}
		p.line = append(p.line, buf[:end]...)
		p.skipLF = buf[end] == '\r'
		p.r.Discard(end + 1)
		return p.line, nil
	}
}
