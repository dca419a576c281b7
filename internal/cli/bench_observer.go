package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/announce/announce/client"
	"github.com/gorilla/websocket"
)

// An observer is one bench connection, as lean as the protocol allows: one
// goroutine, small buffers, and the client package's resume rule (reconnect
// with the id of the last message seen as the cursor). It speaks the same
// protocol as client.Subscribe, but a Subscription's goroutines, channels and
// net/http connection (two more goroutines and 8 KiB of buffers per SSE or
// poll connection) would make the bench measure itself as much as the server.
type observer struct {
	b     *benchRun
	srv   *benchServer // the server it connects to (round-robin over --server)
	index int
	base  uint64 // the channel's id before the bench: message k of the run has id base+k

	mu   sync.Mutex // guards conn, which closeConn may close from another goroutine
	conn net.Conn

	// Read by the bench only after the observer's goroutine ended.
	ok         bool    // it connected
	since      uint64  // cursor: the highest id seen
	counts     []uint8 // deliveries of message base+1+i, saturating
	latency    []int64 // ns from publish to arrival, first deliveries only
	lastAt     int64   // unix ns of the last first delivery
	reordered  int64
	foreign    int64 // messages outside the run's ids
	reconnects int64
	err        error // the last connection error
	pollBuf    bytes.Buffer
}

func newObserver(b *benchRun, index int, since uint64, messages int) *observer {
	return &observer{b: b, srv: b.serverFor(index), index: index, base: since, since: since,
		counts: make([]uint8, messages), latency: make([]int64, 0, messages)}
}

// run connects (reporting the outcome through ready), then reads until the
// bench stops, reconnecting after failures with the cursor.
func (o *observer) run(ctx context.Context, ready func(error)) {
	defer o.b.wg.Done()
	var read func() error
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if read, err = o.connect(ctx); err == nil || o.stopped(ctx) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil {
		o.err = err
		ready(err)
		return
	}
	o.ok = true
	ready(nil)
	for {
		err := read()
		if o.stopped(ctx) {
			return
		}
		o.err = err
		o.reconnects++
		for attempt := 0; ; attempt++ {
			time.Sleep(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second))
			if o.stopped(ctx) {
				return
			}
			if read, err = o.connect(ctx); err == nil {
				break
			}
			o.err = err
		}
	}
}

func (o *observer) stopped(ctx context.Context) bool {
	return o.b.stopping.Load() || ctx.Err() != nil
}

// connect opens a connection with the cursor and returns its read loop.
func (o *observer) connect(ctx context.Context) (func() error, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if o.b.cfg.target == targetNchan && o.b.transport == client.Poll {
		return o.connectNchanPoll(ctx)
	}
	switch o.b.transport {
	case client.SSE:
		return o.connectSSE(ctx)
	case client.Poll:
		return o.connectPoll(ctx)
	}
	return o.connectWebSocket(ctx)
}

func (o *observer) setConn(c net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.b.stopping.Load() {
		c.Close()
		return false
	}
	o.conn = c
	return true
}

func (o *observer) closeConn() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conn != nil {
		o.conn.Close()
	}
}

var errStopping = errors.New("bench stopping")

// path is the server's path for the channel's endpoint rest, with query.
func (o *observer) path(rest string, q url.Values) string {
	p := o.srv.base.Path + "/channels/" + url.PathEscape(o.b.cfg.channel) + rest
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// benchWriteBuffers lends bench WebSockets a write buffer only while they write (pongs).
var benchWriteBuffers sync.Pool

func (o *observer) connectWebSocket(ctx context.Context) (func() error, error) {
	d := websocket.Dialer{
		NetDialContext:   func(ctx context.Context, _, _ string) (net.Conn, error) { return o.b.dial(ctx, o.index) },
		ReadBufferSize:   1024,
		WriteBufferPool:  &benchWriteBuffers,
		HandshakeTimeout: 10 * time.Second,
	}
	if o.srv.tls != nil {
		d.NetDialTLSContext = d.NetDialContext
	}
	u := *o.srv.base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path = o.path("/ws", nil)
	u.RawQuery = url.Values{"since": {strconv.FormatUint(o.since, 10)}}.Encode()
	nchan := o.b.cfg.target == targetNchan
	if nchan {
		u.Path, u.RawQuery = o.nchanPath("sub"), ""
	}
	c, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w: %s", err, resp.Status)
		}
		return nil, err
	}
	if !o.setConn(c.UnderlyingConn()) {
		return nil, errStopping
	}
	idle := o.b.cfg.idleTimeout
	c.SetPingHandler(func(data string) error {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		_ = c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		return nil
	})
	return func() error {
		defer c.Close()
		// One buffer per connection, and the read deadline re-armed only
		// now and then: per message, both cost the bench as much CPU as
		// parsing does, and the bench's CPU is taken from the server's.
		var frame bytes.Buffer
		var deadline idleDeadline
		for {
			deadline.arm(c.UnderlyingConn(), idle)
			kind, r, err := c.NextReader()
			if err != nil {
				return err
			}
			frame.Reset()
			if _, err := frame.ReadFrom(r); err != nil {
				return err
			}
			switch {
			case kind != websocket.TextMessage:
			case nchan:
				o.deliverRaw(frame.Bytes())
			default:
				o.deliverJSON(frame.Bytes())
			}
			if frame.Cap() > 16<<10 {
				frame = bytes.Buffer{} // a large message: do not keep its buffer
			}
		}
	}, nil
}

// idleDeadline keeps a connection's read deadline between idle*3/4 and
// idle away, re-arming it when a quarter of idle has passed rather than
// for every message.
type idleDeadline struct{ armed time.Time }

func (d *idleDeadline) arm(c net.Conn, idle time.Duration) {
	if now := time.Now(); now.Sub(d.armed) >= idle/4 {
		_ = c.SetReadDeadline(now.Add(idle))
		d.armed = now
	}
}

// request writes a GET for path on c and reads the answer's head, within timeout.
func (o *observer) request(c net.Conn, br *bufio.Reader, path, header string, timeout time.Duration) (*http.Response, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: announce-bench\r\n%s\r\n", path, o.srv.base.Host, header); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("%s answered %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return resp, nil
}

// dialHTTP opens the observer's connection for plain HTTP requests and
// registers it (errStopping, closed, once the bench is stopping).
func (o *observer) dialHTTP(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	c, err := o.b.dial(ctx, o.index)
	if err != nil {
		return nil, nil, err
	}
	if !o.setConn(c) {
		return nil, nil, errStopping
	}
	return c, bufio.NewReaderSize(c, 1024), nil
}

func (o *observer) connectSSE(ctx context.Context) (func() error, error) {
	c, br, err := o.dialHTTP(ctx)
	if err != nil {
		return nil, err
	}
	path, header := o.path("/events", nil), "Accept: text/event-stream\r\nLast-Event-ID: "+strconv.FormatUint(o.since, 10)+"\r\n"
	nchan := o.b.cfg.target == targetNchan
	if nchan { // nchan's event ids are its own: no resume by the bench's cursor
		path, header = o.nchanPath("sub"), "Accept: text/event-stream\r\n"
	}
	resp, err := o.request(c, br, path, header, 15*time.Second)
	if err != nil {
		c.Close()
		return nil, err
	}
	events := client.NewSSEReaderSize(resp.Body, 512, 1<<20)
	idle := o.b.cfg.idleTimeout
	return func() error {
		defer c.Close()
		var deadline idleDeadline
		for {
			deadline.arm(c, idle)
			ev, err := events.Next()
			if err != nil {
				return err
			}
			switch ev.Type {
			case "message":
				if nchan {
					o.deliverRaw([]byte(ev.Data))
				} else {
					o.deliverJSON([]byte(ev.Data))
				}
			case "error":
				return fmt.Errorf("server: %s", ev.Data)
			}
		}
	}, nil
}

func (o *observer) deliverJSON(data []byte) {
	now := time.Now().UnixNano()
	id, ok := idOf(data)
	sent, okStamp := stampOf(data, true)
	if !ok || !okStamp {
		var m struct {
			ID      uint64 `json:"id"`
			Content string `json:"content"`
		}
		if json.Unmarshal(data, &m) != nil || m.ID == 0 {
			return // a notice such as {"event":"truncated",...}
		}
		id = m.ID
		sent, _ = stampOf([]byte(m.Content), false)
	}
	o.deliver(id, sent, now)
}

// deliver counts message id arriving at now (unix ns), sent at sent (0: unknown).
func (o *observer) deliver(id uint64, sent, now int64) {
	if id < o.since && (o.b.cfg.target != targetNchan || o.b.cfg.publishers == 1) {
		o.reordered++ // (concurrent publishes reach nchan in any order: its ids are not the bench's)
	}
	o.since = max(o.since, id)
	if id <= o.base || id > o.base+uint64(len(o.counts)) {
		o.foreign++
		return
	}
	k := id - o.base - 1
	if o.counts[k] < 255 {
		o.counts[k]++
	}
	if o.counts[k] == 1 {
		if sent > 0 {
			o.latency = append(o.latency, now-sent)
		}
		o.lastAt = now
		o.b.delivered.Add(1)
	}
}

// idOf finds a message JSON's top-level id: the server writes {"id":N,... and
// an "id" inside the content is escaped (\"id\"), so it cannot match.
func idOf(data []byte) (uint64, bool) {
	i := bytes.Index(data, []byte(`"id":`))
	if i < 0 {
		return 0, false
	}
	return leadingUint(data[i+5:])
}

// stampOf finds the send time the bench put in a message's content,
// {"t":UNIXNANO,...}: escaped inside a message JSON, plain in a content.
func stampOf(data []byte, escaped bool) (int64, bool) {
	key := []byte(`"t":`)
	if escaped {
		key = []byte(`\"t\":`)
	}
	i := bytes.Index(data, key)
	if i < 0 {
		return 0, false
	}
	v, ok := leadingUint(data[i+len(key):])
	return int64(v), ok && v < 1<<63
}

func leadingUint(b []byte) (uint64, bool) {
	var v uint64
	n := 0
	for n < len(b) && n < 19 && '0' <= b[n] && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n > 0
}
