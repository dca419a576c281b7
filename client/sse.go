package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

type sseConn struct {
	body   io.ReadCloser
	events *SSEReader
	cancel context.CancelFunc
	idle   *time.Timer
	idled  atomic.Bool
}

func (s *Subscription) dialSSE(ctx context.Context, cursor *uint64) (conn, string, error) {
	u := s.client.endpoint(channelPath(s.channel, "/events"), presenceQuery(s.opts.Name))
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, u, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	setToken(req.Header, s.opts.Token)
	if cursor != nil {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(*cursor, 10))
	}
	c := &sseConn{cancel: cancel}
	// Until the answer's headers, the handshake timeout; then the idle timeout per read.
	c.idle = time.AfterFunc(handshakeTimeout, func() { c.idled.Store(true); cancel() })
	resp, err := s.client.http.Do(req)
	if err != nil {
		c.idle.Stop()
		cancel()
		if c.idled.Load() {
			err = fmt.Errorf("no answer within %s: %w", handshakeTimeout, err)
		}
		return nil, u, err
	}
	if resp.StatusCode != http.StatusOK {
		c.idle.Stop()
		defer cancel()
		defer resp.Body.Close()
		return nil, u, errorFrom(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		c.idle.Stop()
		cancel()
		resp.Body.Close()
		return nil, u, fmt.Errorf("%s answered %q, not an event stream", u, resp.Header.Get("Content-Type"))
	}
	idle := s.opts.IdleTimeout
	c.idle.Reset(idle)
	c.body = resp.Body
	c.events = NewSSEReader(readFunc(func(b []byte) (int, error) {
		n, err := resp.Body.Read(b)
		if n > 0 {
			c.idle.Reset(idle) // anything, the keepalive comments included, shows the stream is alive
		}
		return n, err
	}))
	return c, u, nil
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

func (c *sseConn) next() (frame, error) {
	for {
		ev, err := c.events.Next()
		if err != nil {
			if c.idled.Load() {
				return frame{}, errIdle
			}
			if errors.Is(err, io.EOF) {
				return frame{}, errors.New("the server ended the event stream")
			}
			return frame{}, err
		}
		switch ev.Type {
		case "message":
			var in wireMessage
			if err := json.Unmarshal([]byte(ev.Data), &in); err != nil {
				return frame{}, fmt.Errorf("unreadable event from the server: %w", err)
			}
			return frame{msg: in.message()}, nil
		case "error":
			var in wireMessage
			_ = json.Unmarshal([]byte(ev.Data), &in)
			if in.Error == "" {
				in.Error = ev.Data
			}
			return frame{}, fmt.Errorf("the server ended the event stream: %s", in.Error)
		}
		// "truncated" and anything newer: the subscription sees gaps in the ids itself.
	}
}

func (c *sseConn) close() {
	c.idle.Stop()
	c.cancel()
	c.body.Close()
}
