package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

func startTestNode(t *testing.T, cfg serve.Config) *serve.Node {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Memory = true
	node, err := serve.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.Stop(5*time.Second, node.Shutdown) })
	return node
}

// history reads every message the channel holds.
func history(t *testing.T, server, channel string) []client.Message {
	t.Helper()
	c, err := client.New(client.Config{Server: server})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	since := uint64(0)
	info, err := c.Info(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	var got []client.Message
	if info.Current.ID == 0 {
		return nil
	}
	sub := c.Subscribe(ctx, channel, client.SubscribeOptions{Transport: client.Poll, Since: &since})
	defer sub.Close()
	for m := range sub.Messages() {
		got = append(got, m)
		if m.ID == info.Current.ID {
			break
		}
	}
	return got
}

// syncBuffer is a bytes.Buffer safe to write from a command's goroutine while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPubStdinLines(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	var stdout, stderr bytes.Buffer
	stdin := strings.NewReader("first line\n\nsecond line\r\nthird, no newline")
	code := Commands["pub"]([]string{"--server", node.URL(), "-c", "ops"}, stdin, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if stdout.String() != "1\n2\n3\n" {
		t.Errorf("stdout %q, want the three ids", stdout.String())
	}
	got := history(t, node.URL(), "ops")
	want := []string{"first line", "second line", "third, no newline"}
	if len(got) != len(want) {
		t.Fatalf("stored %+v, want %q", got, want)
	}
	for i, m := range got {
		if m.Content != want[i] || m.ID != uint64(i+1) {
			t.Errorf("message %d: %+v, want %q", i+1, m, want[i])
		}
	}
}

func TestPubArgs(t *testing.T) {
	node := startTestNode(t, serve.Config{PublishKey: "k3y"})
	t.Setenv("ANNOUNCE_PUBLISH_KEY", "k3y") // the server's variable works for pub too
	t.Setenv("ANNOUNCE_CHANNEL", "not-this-one")
	var stdout, stderr bytes.Buffer
	code := Commands["pub"]([]string{"--server", node.URL(), "-c", "news", "--json", "Server", "maintenance at 22:00"}, strings.NewReader("ignored\n"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"id":1`) || !strings.Contains(stdout.String(), `"content":"Server maintenance at 22:00"`) {
		t.Errorf("stdout %q, want the stored message as JSON", stdout.String())
	}
	if got := history(t, node.URL(), "news"); len(got) != 1 || got[0].Content != "Server maintenance at 22:00" {
		t.Errorf("stored %+v", got)
	}
}

func TestPubFailures(t *testing.T) {
	node := startTestNode(t, serve.Config{PublishKey: "k3y"})
	t.Setenv("ANNOUNCE_PUBLISH_KEY", "")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key", []string{"--server", node.URL(), "hi"}, 1, "401"},
		{"wrong key", []string{"--server", node.URL(), "--key", "nope", "hi"}, 1, "403"},
		{"bad channel", []string{"--server", node.URL(), "-c", "a/b", "hi"}, 1, "invalid channel name"},
		{"bad server URL", []string{"--server", "localhost:8000", "hi"}, 2, "want http://"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"server down", []string{"--server", "http://127.0.0.1:1", "--retries", "0", "hi"}, 1, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Commands["pub"](tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), tc.code, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
	// Lines stop at the first failure; the ids before it are printed.
	var stdout, stderr bytes.Buffer
	long := strings.Repeat("x", 70<<10) // over the server's 64 KiB limit
	code := Commands["pub"]([]string{"--server", node.URL(), "--key", "k3y", "-c", "lines"}, strings.NewReader("one\n"+long+"\nthree\n"), &stdout, &stderr)
	if code != 1 || stdout.String() != "1\n" || !strings.Contains(stderr.String(), "413") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 after id 1 with a 413", code, stdout.String(), stderr.String())
	}
}
