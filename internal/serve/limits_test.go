package serve_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// DELETE and --max-channels on the stores a deployment runs: bolt and Redis.
func TestDeleteAndMaxChannelsOnEveryStore(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]func(t *testing.T) serve.Config{
		"Bolt":  func(t *testing.T) serve.Config { return serve.Config{DataDir: t.TempDir()} },
		"Redis": func(t *testing.T) serve.Config { return serve.Config{Redis: "redis://" + testenv.Redis(t)} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := cfg(t)
			c.PublishKey = "k"
			c.Limits = serve.LimitsConfig{MaxChannels: 2, MaxScheduled: 10, MaxCachedChannels: 100}
			n := start(t, c)
			do := func(method, path, body string) (int, string) {
				t.Helper()
				req, _ := http.NewRequest(method, n.URL()+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer k")
				req.Header.Set("Content-Type", "text/plain")
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			for _, ch := range []string{"a", "b"} {
				if code, b := do("POST", "/channels/"+ch+"/messages", "x"); code != 201 {
					t.Fatalf("publish on %s: %d %s", ch, code, b)
				}
			}
			if code, b := do("POST", "/channels/c/messages", "x"); code != http.StatusInsufficientStorage {
				t.Fatalf("publish creating a 3rd channel: %d %s, want 507", code, b)
			}
			if code, b := do("POST", "/channels/a/messages?at=1h", "later"); code != 202 {
				t.Fatalf("schedule: %d %s", code, b)
			}
			if code, b := do("DELETE", "/channels/a", ""); code != 200 {
				t.Fatalf("DELETE: %d %s", code, b)
			}
			if _, b := do("GET", "/channels/a/scheduled", ""); strings.Contains(b, "later") {
				t.Fatalf("schedule survived DELETE: %s", b)
			}
			// The deleted channel's place is free: the count is re-read after a second.
			deadline := time.Now().Add(30 * time.Second)
			for {
				code, b := do("POST", "/channels/c/messages", "x")
				if code == 201 {
					if !strings.Contains(b, `"id":1`) {
						t.Fatalf("first message of c: %s", b)
					}
					break
				}
				if code != http.StatusInsufficientStorage || time.Now().After(deadline) {
					t.Fatalf("publish on c after deleting a: %d %s", code, b)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if cur := getChannel(t, n.URL(), "a").Current.ID; cur != 0 {
				t.Fatalf("a reads id %d after DELETE, want 0", cur)
			}
		})
	}
}
