package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/api"
)

// An event stream ends the same way whether it is hijacked (HTTP/1.1) or
// written through the ResponseWriter (HTTP/1.0, HTTP/2): one protocol
// writes all of them. Each case opens a stream over every protocol and
// asserts its last event.

// sseOver opens event streams over one protocol against a real server.
type sseOver struct {
	hub  *announce.Hub
	open func(t *testing.T, path string) io.ReadCloser // the stream's body
}

var sseProtocols = []string{"HTTP/1.1", "HTTP/1.0", "HTTP/2"}

func newSSEOver(t *testing.T, proto string, hubOpt func(*announce.Config), opts ...func(*api.Config)) sseOver {
	t.Helper()
	switch proto {
	case "HTTP/2":
		h := newH2Server(t, hubOpt, opts...)
		return sseOver{hub: h.Hub, open: func(t *testing.T, path string) io.ReadCloser {
			resp := h.get(t, context.Background(), path, "Accept", "text/event-stream")
			return checkStream(t, resp)
		}}
	case "HTTP/1.0":
		ts := newTestServerHub(t, hubOpt, opts...)
		return sseOver{hub: ts.Hub, open: func(t *testing.T, path string) io.ReadCloser {
			c, err := net.Dial("tcp", ts.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", path)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			return checkStream(t, resp)
		}}
	default:
		ts := newTestServerHub(t, hubOpt, opts...)
		return sseOver{hub: ts.Hub, open: func(t *testing.T, path string) io.ReadCloser {
			return openSSE(t, ts.URL+path).Resp.Body
		}}
	}
}

func checkStream(t *testing.T, resp *http.Response) io.ReadCloser {
	t.Helper()
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream answered %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp.Body
}

// readToEnd reads a stream until the server ends it, within 30s.
func readToEnd(t *testing.T, body io.ReadCloser) string {
	t.Helper()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(body); got <- string(b) }()
	select {
	case s := <-got:
		return s
	case <-time.After(30 * time.Second):
		body.Close()
		t.Fatal("the server did not end the stream within 30s")
		return ""
	}
}

func TestSSEEndsAlikeOverEveryProtocolWhenTheChannelIsDeleted(t *testing.T) {
	for _, proto := range sseProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			s := newSSEOver(t, proto, nil)
			body := s.open(t, "/channels/gone/events")
			waitObservers(t, s.hub, announce.SSE, 1)
			if err := s.hub.Delete(context.Background(), "gone", nil); err != nil {
				t.Fatal(err)
			}
			if end := readToEnd(t, body); !strings.HasSuffix(end, "event: deleted\ndata: {\"event\":\"deleted\"}\n\n") {
				t.Fatalf("the stream ended with %q, want the deleted event last", tail(end))
			}
		})
	}
}

func TestSSEEndsAlikeOverEveryProtocolWhenTheTokenExpires(t *testing.T) {
	for _, proto := range sseProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			s := newSSEOver(t, proto, nil, func(c *api.Config) { c.PublishKey = tkKey; c.TokenSecret = tkSecret })
			exp := tkSoon()
			body := s.open(t, "/channels/private-fb/events?token="+tkMint(t, tkSecret, "private-fb", exp, false))
			end := readToEnd(t, body)
			if !strings.HasSuffix(end, "event: error\ndata: {\"event\":\"error\",\"error\":\"token expired\"}\n\n") {
				t.Fatalf("the stream ended with %q, want the token-expired event last", tail(end))
			}
			if time.Now().Before(exp) {
				t.Errorf("the stream ended %v before its token expired", time.Until(exp))
			}
		})
	}
}

func TestSSEEndsAlikeOverEveryProtocolForASlowConsumer(t *testing.T) {
	for _, proto := range sseProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			s := newSSEOver(t, proto, func(c *announce.Config) { c.Queue = 4; c.MaxMessage = 1 << 20 },
				func(c *api.Config) { c.WriteTimeout = time.Minute })
			body := s.open(t, "/channels/slow/events") // and never read until cut
			waitObservers(t, s.hub, announce.SSE, 1)
			big := strings.Repeat("x", 256<<10)
			deadline := time.Now().Add(30 * time.Second)
			for s.hub.Stats().Observers(announce.SSE) > 0 {
				if time.Now().After(deadline) {
					t.Fatal("the observer that reads nothing was not cut within 30s")
				}
				if _, err := s.hub.Publish(context.Background(), "slow", big); err != nil {
					t.Fatal(err)
				}
			}
			end := readToEnd(t, body)
			if !strings.HasSuffix(end, "retry: 500\nevent: error\ndata: {\"event\":\"error\",\"error\":\""+announce.ErrSlowConsumer.Error()+"\"}\n\n") {
				t.Fatalf("the stream ended with %q, want the slow-consumer event last", tail(end))
			}
		})
	}
}

// tail is the end of a long stream, for a failure message.
func tail(s string) string { return s[max(0, len(s)-200):] }
