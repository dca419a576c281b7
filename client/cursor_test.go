package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// A subscription from the current message whose first connection falls
// before that message arrives resumes from the current message, not from
// the channel's first: the history is not news.
func TestSubscribeFromCurrentSurvivesEarlyDrop(t *testing.T) {
	const current = 20
	var connections atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /channels/x", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"channel":"x","current":{"id":%d,"channel":"x","content":"c%d"},"observers":{}}`, current, current)
	})
	mux.HandleFunc("GET /channels/x/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 3000\n\n")
		w.(http.Flusher).Flush()
		if connections.Add(1) == 1 {
			return // the first connection falls before the current message
		}
		since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		if r.Header.Get("Last-Event-ID") != "" {
			since, _ = strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64)
		}
		for id := since + 1; id <= current+1; id++ { // current+1: a later message, after the one expected
			fmt.Fprintf(w, "id: %d\nevent: message\ndata: {\"id\":%d,\"channel\":\"x\",\"content\":\"c%d\"}\n\n", id, id, id)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sub := newClient(t, srv.URL).Subscribe(context.Background(), "x", client.SubscribeOptions{Transport: client.SSE})
	defer sub.Close()
	if got := receive(t, sub, 2, 10*time.Second); got[0].ID != current || got[1].ID != current+1 {
		t.Fatalf("first messages %+v, want the current one, %d, then the next", got, current)
	}
}

// The message that ends another's TTL names it in Expired, on every transport.
func TestSubscribeKeepsExpired(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	base := "http://" + node.Addr()
	resp, err := http.PostForm(base+"/channels/ttl/messages", map[string][]string{"content": {"brief"}, "ttl": {"0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := newClient(t, base)
	for _, tr := range []client.Transport{client.WebSocket, client.SSE, client.Poll} {
		since := uint64(0)
		sub := c.Subscribe(context.Background(), "ttl", client.SubscribeOptions{Transport: tr, Since: &since})
		got := receive(t, sub, 2, 10*time.Second)
		sub.Close()
		if got[1].Expired != got[0].ID || got[1].Content != "" {
			t.Errorf("%s: %+v, want the second to name the first expired", tr, got)
		}
	}
}

// Content that is not UTF-8 is refused before it is sent, as the server
// would refuse it; New refuses an HTTP client with a Timeout.
func TestPublishRefusesInvalidUTF8(t *testing.T) {
	node := startNode(t, serve.Config{Memory: true})
	defer testenv.Stop(5*time.Second, node.Shutdown)
	c := newClient(t, "http://"+node.Addr())
	if _, err := c.Publish(context.Background(), "u8", "bad \xff bytes"); !errors.Is(err, announce.ErrInvalidUTF8) {
		t.Fatalf("publishing invalid UTF-8: %v, want ErrInvalidUTF8", err)
	}
	info, err := c.Info(context.Background(), "u8")
	if err != nil || info.Current.ID != 0 {
		t.Fatalf("after the refusal the channel holds %+v (%v)", info.Current, err)
	}
	if _, err := client.New(client.Config{Server: "http://" + node.Addr(), HTTPClient: &http.Client{Timeout: time.Second}}); err == nil {
		t.Error("New accepted an HTTP client with a Timeout")
	}
}
