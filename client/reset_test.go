package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/announce/announce/client"
)

// fakeStream serves one SSE stream of the given ids on channel x (and the
// channel's info with current id cur), then holds the stream open.
func fakeStream(ids []uint64, cur uint64) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /channels/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"channel":"x","current":{"id":%d,"channel":"x","content":"c%d"},"observers":{}}`, cur, cur)
	})
	mux.HandleFunc("GET /channels/x/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 3000\n\n")
		for _, id := range ids {
			fmt.Fprintf(w, "id: %d\nevent: message\ndata: {\"id\":%d,\"channel\":\"x\",\"content\":\"c%d\"}\n\n", id, id, id)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	return httptest.NewServer(mux)
}

// TestLiveResetAndDuplicates: an id at or below the cursor in the middle of a
// stream is a duplicate (dropped) unless the server's current id is behind
// the cursor: then the store was reset and the new sequence is delivered.
func TestLiveResetAndDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ids   []uint64
		cur   uint64
		want  []uint64
		reset bool
	}{
		{"duplicate", []uint64{1, 2, 3, 2, 4}, 4, []uint64{1, 2, 3, 4}, false},
		{"reset", []uint64{1, 2, 3, 1, 2}, 2, []uint64{1, 2, 3, 1, 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A last id after the case's own: receiving it next proves
			// nothing more came before it.
			last := tc.want[len(tc.want)-1] + 1
			tc.ids, tc.want = append(tc.ids, last), append(tc.want, last)
			srv := fakeStream(tc.ids, tc.cur)
			defer srv.Close()
			c := newClient(t, srv.URL)
			since := uint64(0)
			sub := c.Subscribe(context.Background(), "x", client.SubscribeOptions{Transport: client.SSE, Since: &since})
			defer sub.Close()
			got := receive(t, sub, len(tc.want), 5*time.Second)
			for i, m := range got {
				if m.ID != tc.want[i] {
					t.Fatalf("got %v, want ids %v", got, tc.want)
				}
			}
			sawReset := false
			for len(sub.Events()) > 0 {
				if ev := <-sub.Events(); ev.Kind == client.Reset {
					sawReset = true
				}
			}
			if sawReset != tc.reset {
				t.Errorf("Reset event: %v, want %v", sawReset, tc.reset)
			}
		})
	}
}
