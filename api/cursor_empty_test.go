package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/announce/announce/announce"
)

// jQuery sends {since: undefined} as "since=": that is no cursor, not a bad one.
func TestEmptySinceIsNoCursor(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/channels/e/status?since=&timeout=0.2", "/channels/e/messages?since=", "/status?since=&timeout=0.2"} {
		resp, body := ts.get(t, path)
		assertStatus(t, resp, body, http.StatusOK)
	}
	m := ts.Publish(t, "e", "one")
	resp, body := ts.get(t, "/channels/e/messages?since=")
	assertStatus(t, resp, body, http.StatusOK)
	var got []announce.Message
	if err := json.Unmarshal(body, &got); err != nil || len(got) != 1 || got[0] != m {
		t.Fatalf("log with since= answered %s, want [%+v]", body, m)
	}
}
