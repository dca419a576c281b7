package presence

import (
	"strconv"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// TestIssuedKeysBounded: a client that never keeps its cookie is issued a
// new one by every poll; its session keeps only the newest few.
func TestIssuedKeysBounded(t *testing.T) {
	tr, err := New(Config{Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(t.Context())
	for i := range 1000 {
		s := announce.Session{ID: "k" + strconv.Itoa(i), Channel: "news", Transport: announce.Poll, Fingerprint: "fp", Issued: true}
		tr.Connected(s)
		tr.Disconnected(s)
	}
	tr.mu.Lock()
	keys := len(tr.sessions)
	tr.mu.Unlock()
	if keys > maxIssuedKeys+1 {
		t.Fatalf("%d keys kept for one session, want at most %d", keys, maxIssuedKeys+1)
	}
	last := announce.Session{ID: "k999", Channel: "news", Transport: announce.Poll, Fingerprint: "elsewhere"}
	tr.Connected(last)
	if n := tr.Stats().Sessions; n != 1 {
		t.Fatalf("the newest cookie began a session of its own: %d sessions", n)
	}
}
