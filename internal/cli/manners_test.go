package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// run calls Main with args and returns its exit status, stdout and stderr.
func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, stdout, stderr := run(args...)
		if code != 0 || stderr != "" {
			t.Errorf("announce %v: exit %d, stderr %q", args, code, stderr)
		}
		for _, c := range commandSummaries {
			if !strings.Contains(stdout, "  "+c.name+" ") {
				t.Errorf("announce %v lists no command %s:\n%s", args, c.name, stdout)
			}
		}
	}
	if _, stdout, _ := run("--help"); !strings.Contains(stdout, "-listen") {
		t.Errorf("announce --help lists the commands but not the server's flags:\n%s", stdout)
	}
	for _, cmd := range []string{"pub", "sub", "serve", "token", "bench"} {
		code, stdout, stderr := run("help", cmd)
		if code != 0 || !strings.Contains(stdout, "Usage: announce ") || !strings.Contains(stdout, cmd) || stderr != "" {
			t.Errorf("announce help %s: exit %d, stdout %q, stderr %q", cmd, code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"nope"}, {"help", "nope"}} {
		code, stdout, stderr := run(args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, `unknown command "nope"`) || !strings.Contains(stderr, "Commands:") {
			t.Errorf("announce %v: exit %d, stdout %q, stderr %q; want 2 and the commands on stderr", args, code, stdout, stderr)
		}
	}
}

// Flags after the text are flags, not text; after -- everything is text.
func TestPubFlagsAfterText(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if code := pub(ctx, []string{"hello", "-c", "ops", "--server", node.URL()}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("pub hello -c ops: exit %d, stderr %q", code, stderr.String())
	}
	if h := history(t, node.URL(), "ops"); len(h) != 1 || h[0].Content != "hello" {
		t.Errorf("pub hello -c ops: channel ops holds %+v, want the one message \"hello\"", h)
	}
	if h := history(t, node.URL(), "default"); len(h) != 0 {
		t.Errorf("pub hello -c ops published to default: %+v", h)
	}
	if code := pub(ctx, []string{"-c", "ops", "--server", node.URL(), "--", "-5", "degrees", "-c", "x"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("pub -- -5 degrees: exit %d, stderr %q", code, stderr.String())
	}
	if h := history(t, node.URL(), "ops"); len(h) != 2 || h[1].Content != "-5 degrees -c x" {
		t.Errorf("pub -- -5 degrees -c x: channel ops holds %+v", h)
	}
	stderr.Reset()
	if code := pub(ctx, []string{"hi", "--no-such", "--server", node.URL()}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "no-such") {
		t.Errorf("pub hi --no-such: exit %d, stderr %q; want 2 naming the flag", code, stderr.String())
	}
	if h := history(t, node.URL(), "default"); len(h) != 0 {
		t.Errorf("a rejected command line published %+v", h)
	}
}

// sub against a server that is not there says so, instead of retrying silently.
func TestSubHintsWhenNoServer(t *testing.T) {
	url := "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- sub(ctx, []string{"--server", url, "--quiet"}, nil, &stdout, &stderr) }()
	waitForText(t, &stderr, "is announce running at "+url, 50*time.Second)
	cancel()
	<-done
	if n := strings.Count(stderr.String(), "is announce running"); n != 1 {
		t.Errorf("the hint was printed %d times before a connection, want once:\n%s", n, stderr.String())
	}
}

// sub --name shows in the channel's presence.
func TestSubName(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- sub(ctx, []string{"--server", node.URL(), "-c", "room", "--name", "alice"}, nil, &stdout, &stderr)
	}()
	waitForText(t, &stderr, "connected (ws)", 20*time.Second)
	testenv.WaitFor(t, 20*time.Second, "presence to name alice", func() bool {
		resp, err := http.Get(node.URL() + "/channels/room/presence")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), `"alice"`)
	})
	cancel()
	<-done
}

// bench against a keyed server without the key stops at the first refusal,
// naming the flag.
func TestBenchStopsOnRefusedPublish(t *testing.T) {
	node := startTestNode(t, serve.Config{PublishKey: "secret"})
	var stdout, stderr bytes.Buffer
	code := bench(context.Background(), []string{"fanout", "--server", node.URL(), "-n", "2", "--messages", "50", "--rate", "50", "--drain", "2m"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "--publish-key") || !strings.Contains(stderr.String(), "401") {
		t.Errorf("bench without the key: exit %d, stderr %q; want a failure naming 401 and --publish-key", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "delivering") {
		t.Errorf("bench waited for deliveries after the refusal:\n%s", stderr.String())
	}
}

func TestServeListenMistakes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Serve([]string{"--memory", "--listen", "8002"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--listen :8002") {
		t.Errorf("--listen 8002: exit %d, stderr %q; want 2 suggesting --listen :8002", code, stderr.String())
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	stderr.Reset()
	if code := Serve([]string{"--memory", "--listen", busy.Addr().String()}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "another process is listening on "+busy.Addr().String()) || !strings.Contains(stderr.String(), "--listen") {
		t.Errorf("a busy port: exit %d, stderr %q; want 1 naming the port and --listen", code, stderr.String())
	}
}

// waitForText waits until buf holds want, showing what it holds on failure.
func waitForText(t *testing.T, buf *syncBuffer, want string, timeout time.Duration) {
	t.Helper()
	found := false
	defer func() {
		if !found {
			t.Logf("the output so far: %q", buf.String())
		}
	}()
	testenv.WaitFor(t, timeout, fmt.Sprintf("%q in the output", want), func() bool { return strings.Contains(buf.String(), want) })
	found = true
}
