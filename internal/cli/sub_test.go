package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
)

func publishAll(t *testing.T, server, channel string, contents ...string) {
	t.Helper()
	c, err := client.New(client.Config{Server: server})
	if err != nil {
		t.Fatal(err)
	}
	for _, content := range contents {
		if _, err := c.Publish(context.Background(), channel, content); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSubPrints(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	for _, tr := range []string{"ws", "sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			channel := "sub-" + tr
			publishAll(t, node.URL(), channel, "one", "two")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- sub(ctx, []string{"--server", node.URL(), "-c", channel, "--transport", tr, "--since", "0"}, nil, &stdout, &stderr)
			}()
			waitForText(t, &stdout, "one\ntwo\n", 10*time.Second)
			waitForText(t, &stderr, "connected ("+tr+")", 10*time.Second)
			publishAll(t, node.URL(), channel, "three\nlines")
			waitForText(t, &stdout, "one\ntwo\nthree\nlines\n", 10*time.Second)
			cancel() // what SIGINT does
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit %d after the interrupt, stderr %q", code, stderr.String())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("sub did not stop")
			}
		})
	}
}

func TestSubJSONCount(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	publishAll(t, node.URL(), "j", "a", "b", "c")
	var stdout, stderr bytes.Buffer
	code := Commands["sub"]([]string{"--server", node.URL(), "-c", "j", "--since", "1", "--json", "--count", "2", "--quiet"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q, want two JSON lines", stdout.String())
	}
	for i, line := range lines {
		var m client.Message
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.ID != uint64(i+2) || m.Channel != "j" || m.Time.IsZero() {
			t.Errorf("line %q: %+v %v", line, m, err)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet, yet stderr %q", stderr.String())
	}
}

func TestSubFailures(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--server", node.URL(), "-c", "a/b"}, 1, "invalid channel name"},
		{[]string{"--server", node.URL(), "--transport", "smoke"}, 2, "unknown transport"},
		{[]string{"--server", node.URL(), "--since", "-1"}, 2, "--since"},
		{[]string{"--server", node.URL(), "extra"}, 2, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		code := sub(context.Background(), tc.args, nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}
