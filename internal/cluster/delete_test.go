package cluster_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// keyed sends an HTTP request with the publish key "k" and returns the status and body.
func keyed(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
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

// openSSE opens an event stream and returns its lines as they come; the
// channel closes when the stream ends.
func openSSE(t *testing.T, url string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// awaitLine reads lines until one equals want, failing after timeout or
// when the stream ends first.
func awaitLine(t *testing.T, lines <-chan string, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended before %q", want)
			}
			if l == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %v", want, timeout)
		}
	}
}

// A channel deleted on one node is deleted for the observers of every node.
func TestDeleteReachesObserversOnEveryNode(t *testing.T) {
	nodes := startCluster(t, testenv.Redis(t), 2, func(c *serve.Config) { c.PublishKey = "k" })
	a, b := nodes[0], nodes[1]
	if code, body := keyed(t, "POST", a.URL()+"/channels/doomed/messages", "first"); code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
	lines := openSSE(t, b.URL()+"/channels/doomed/events")
	awaitLine(t, lines, "id: 1", 30*time.Second)

	if code, body := keyed(t, "DELETE", a.URL()+"/channels/doomed", ""); code != http.StatusOK {
		t.Fatalf("DELETE on node A: %d %s", code, body)
	}
	awaitLine(t, lines, "event: deleted", 30*time.Second)
	select {
	case _, ok := <-lines:
		for ok {
			_, ok = <-lines
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node B kept the deleted channel's stream open")
	}
	if cur := currentID(t, b.URL(), "doomed"); cur != 0 {
		t.Errorf("node B reads the deleted channel at id %d, want 0", cur)
	}
}

// --channel-ttl keeps a channel that another node's observers watch.
func TestChannelTTLKeepsChannelsObservedOnOtherNodes(t *testing.T) {
	nodes := startCluster(t, testenv.Redis(t), 2, func(c *serve.Config) {
		c.PublishKey = "k"
		c.Limits.ChannelTTL = time.Second
	})
	a, b := nodes[0], nodes[1]
	lines := openSSE(t, b.URL()+"/channels/watched/events")
	testenv.WaitFor(t, 30*time.Second, "node A to see node B's observer", func() bool {
		return strings.Contains(getBody(t, a.URL()+"/channels/watched/presence"), `"total":1`)
	})
	for _, ch := range []string{"watched", "unwatched"} {
		if code, body := keyed(t, "POST", a.URL()+"/channels/"+ch+"/messages", "x"); code != http.StatusCreated {
			t.Fatalf("publish on %s: %d %s", ch, code, body)
		}
	}
	// A pass that deleted unwatched, idle since after watched was last
	// published, looked at watched too.
	testenv.WaitFor(t, 60*time.Second, "the TTL to delete the unobserved channel", func() bool {
		return currentID(t, a.URL(), "unwatched") == 0
	})
	if cur := currentID(t, a.URL(), "watched"); cur != 1 {
		t.Errorf("the channel observed on node B reads id %d after the TTL passed, want 1 (kept)", cur)
	}
	select {
	case l, ok := <-lines:
		if !ok || l == "event: deleted" {
			t.Errorf("node B's observer of the kept channel was closed")
		}
	default:
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func currentID(t *testing.T, base, channel string) uint64 {
	t.Helper()
	var info struct {
		Current struct {
			ID uint64 `json:"id"`
		} `json:"current"`
	}
	if err := get(context.Background(), base+"/channels/"+channel, &info); err != nil {
		t.Fatal(err)
	}
	return info.Current.ID
}
