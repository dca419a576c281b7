package api_test

// Resume under concurrency on both streaming transports: no gap, no duplicate.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
)

// resumeWS observes channel over WebSockets from the start: it reads a
// random number of messages, drops the connection without a close frame and
// reconnects with ?since= the last id it saw, until it has seen total. It
// returns the concatenated ids.
func resumeWS(ctx context.Context, url string, total uint64, quota func() int) ([]uint64, error) {
	var ids []uint64
	var last uint64
	for last < total {
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, url+"?since="+strconv.FormatUint(last, 10), nil)
		if err != nil {
			return ids, fmt.Errorf("reconnect after id %d: %w", last, err)
		}
		for n := quota(); n > 0 && last < total; n-- {
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			kind, data, err := conn.ReadMessage()
			if websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				break // cut as a slow consumer: resume, as a client should
			}
			if err != nil {
				conn.Close()
				return ids, fmt.Errorf("after id %d: %w", last, err)
			}
			f, err := decodeWS(kind, data)
			if err != nil || !f.isMessage() || f.ID != last+1 {
				conn.Close()
				return ids, fmt.Errorf("after id %d: frame %q (%v), want id %d", last, data, err, last+1)
			}
			ids = append(ids, f.ID)
			last = f.ID
		}
		conn.NetConn().Close() // abrupt: no close frame
	}
	return ids, nil
}

// resumeSSE is resumeWS over SSE: it resumes with Last-Event-ID (as
// EventSource does) or ?since=, in turn, sometimes with a stale ?since= that
// Last-Event-ID must override.
func resumeSSE(ctx context.Context, client *http.Client, url string, total uint64, quota func() int) ([]uint64, error) {
	var ids []uint64
	var last uint64
	for round := 0; last < total; round++ {
		cursor := strconv.FormatUint(last, 10)
		var s *sseStream
		var err error
		switch round % 3 {
		case 0:
			s, err = dialSSE(ctx, client, url+"?since="+cursor)
		case 1:
			s, err = dialSSE(ctx, client, url, "Last-Event-ID", cursor)
		default:
			s, err = dialSSE(ctx, client, url+"?since=0", "Last-Event-ID", cursor)
		}
		if err != nil {
			return ids, fmt.Errorf("reconnect after id %d: %w", last, err)
		}
		if s.Resp.StatusCode != http.StatusOK {
			s.Close()
			return ids, fmt.Errorf("reconnect after id %d: status %d", last, s.Resp.StatusCode)
		}
		for n := quota(); n > 0 && last < total; n-- {
			e, err := s.NextEvent()
			if err == nil && e.Event == "error" && strings.Contains(e.Data, "slow consumer") {
				break // cut as a slow consumer: resume
			}
			var m announce.Message
			if err == nil {
				m, err = e.message()
			}
			if err != nil || m.ID != last+1 {
				s.Close()
				return ids, fmt.Errorf("after id %d: event %+v (%v), want id %d", last, e, err, last+1)
			}
			ids = append(ids, m.ID)
			last = m.ID
		}
		s.Close() // abrupt: the request is cancelled mid-stream
	}
	return ids, nil
}

// TestReplayNoGapNoDuplicateUnderConcurrency: 4 publishers post 1,000
// messages on one channel while 30 WebSocket and 30 SSE observers keep
// dropping their connections at random points and resuming from the last id
// they saw. Every observer's concatenated stream is exactly 1..1000.
func TestReplayNoGapNoDuplicateUnderConcurrency(t *testing.T) {
	const (
		channel    = "resume"
		total      = 1000
		publishers = 4
		wsObs      = 30
		sseObs     = 30
	)
	ts := newTestServerHub(t, func(c *announce.Config) { c.History = 2 * total })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: sseObs}}
	defer client.CloseIdleConnections()

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	streams := make([][]uint64, wsObs+sseObs)
	errs := make(chan error, wsObs+sseObs+publishers)
	var wg sync.WaitGroup
	for i := range wsObs + sseObs {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		quota := func() int { return 1 + rng.IntN(80) }
		wg.Go(func() {
			var err error
			if i < wsObs {
				streams[i], err = resumeWS(ctx, wsURL(ts, "/channels/"+channel+"/ws"), total, quota)
			} else {
				streams[i], err = resumeSSE(ctx, client, ts.URL+"/channels/"+channel+"/events", total, quota)
			}
			if err != nil {
				errs <- fmt.Errorf("observer %d: %w", i, err)
				cancel()
			}
		})
	}
	for p := range publishers {
		wg.Go(func() {
			for n := range total / publishers {
				if _, err := ts.publish(channel, fmt.Sprintf("publisher %d message %d", p, n)); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for i, ids := range streams {
		if len(ids) != total {
			t.Errorf("observer %d saw %d messages, want %d", i, len(ids), total)
			continue
		}
		for j, id := range ids {
			if id != uint64(j+1) {
				t.Errorf("observer %d: message %d has id %d", i, j, id)
				break
			}
		}
	}
}
