package serve_test

import (
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/bolt"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// start starts a node on a free loopback port and shuts it down at the end
// of the test unless the test did.
func start(t *testing.T, cfg serve.Config) *serve.Node {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	n, err := serve.Start(cfg)
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	t.Cleanup(func() { _ = testenv.Stop(5*time.Second, n.Shutdown) })
	return n
}

// shutdown stops n and checks that it stopped cleanly.
func shutdown(t *testing.T, n *serve.Node) {
	t.Helper()
	if err := testenv.Stop(5*time.Second, n.Shutdown); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-n.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Done after Shutdown = %v, want http.ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not report the end of serving after Shutdown")
	}
	if c, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Shutdown", n.Addr())
	}
}

func TestStartShutdownMemory(t *testing.T) {
	n := start(t, serve.Config{Memory: true, Welcome: "hello"})
	if cur := getChannel(t, n.URL(), "default").Current; cur.ID != 1 || cur.Content != "hello" {
		t.Fatalf("default channel with Welcome holds %+v, want id 1 hello", cur)
	}
	m := publishText(t, n.URL(), "mem", "in memory")
	// A long-poll waiting at Shutdown is answered with the current message.
	polled := make(chan announce.Message, 1)
	go func() {
		var m announce.Message
		resp, err := http.Get(n.URL() + "/channels/mem/status")
		if err == nil {
			_ = jsonDecode(resp.Body, &m)
			resp.Body.Close()
		}
		polled <- m
	}()
	testenv.WaitFor(t, 10*time.Second, "the long-poll to wait", func() bool {
		return getChannel(t, n.URL(), "mem").Observers["poll"] == 1
	})
	shutdown(t, n)
	if got := <-polled; got.ID != m.ID || got.Content != m.Content {
		t.Errorf("long-poll waiting at Shutdown got %+v, want %+v", got, m)
	}
	if _, err := n.Hub().Publish(t.Context(), "mem", "after"); !errors.Is(err, announce.ErrClosed) {
		t.Errorf("Publish after Shutdown = %v, want ErrClosed", err)
	}

	// Memory keeps nothing: a new node starts empty (and welcomes again).
	n = start(t, serve.Config{Memory: true})
	if cur := getChannel(t, n.URL(), "mem").Current; cur.ID != 0 {
		t.Errorf("a new memory node has %+v on mem, want nothing", cur)
	}
	shutdown(t, n)
}

func TestStartShutdownBolt(t *testing.T) {
	dir := t.TempDir()
	n := start(t, serve.Config{DataDir: dir})
	for i := 1; i <= 3; i++ {
		publishText(t, n.URL(), "disk", strings.Repeat("x", i))
	}
	shutdown(t, n)

	n = start(t, serve.Config{DataDir: dir})
	if cur := getChannel(t, n.URL(), "disk").Current; cur.ID != 3 || cur.Content != "xxx" {
		t.Errorf("after restart disk's current message is %+v, want id 3", cur)
	}
	if m := publishText(t, n.URL(), "disk", "next"); m.ID != 4 {
		t.Errorf("first publish after restart got id %d, want 4", m.ID)
	}
	shutdown(t, n)
}

// A second node on a data directory in use fails at once with an error that
// says why, and the first keeps serving.
func TestSecondNodeOnDataDirFailsFast(t *testing.T) {
	dir := t.TempDir()
	first := start(t, serve.Config{DataDir: dir})
	publishText(t, first.URL(), "busy", "first")

	begin := time.Now()
	second, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err == nil {
		testenv.Stop(5*time.Second, second.Shutdown)
		t.Fatal("a second node started on a data directory in use")
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("the second node took %v to fail", took)
	}
	if msg := err.Error(); !strings.Contains(msg, "locked") || !strings.Contains(msg, filepath.Join(dir, bolt.FileName)) {
		t.Errorf("second node's error %q does not say that %s is locked", msg, filepath.Join(dir, bolt.FileName))
	}
	if m := publishText(t, first.URL(), "busy", "still here"); m.ID != 2 {
		t.Errorf("the first node after the second failed: publish got id %d, want 2", m.ID)
	}
	shutdown(t, first)
}

// Shutdown may be called more than once (a signal handler and a deferred
// cleanup both stopping the node); only the first one does anything.
func TestShutdownTwice(t *testing.T) {
	n := start(t, serve.Config{DataDir: t.TempDir()})
	shutdown(t, n)
	if err := testenv.Stop(5*time.Second, n.Shutdown); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// A connection that never sent a request (a browser's speculative
// preconnect, a port scanner) must not hold up a graceful stop: net/http
// waits 5s for such connections before it treats them as idle.
func TestShutdownWithFreshConnection(t *testing.T) {
	n := start(t, serve.Config{Memory: true})
	c, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	publishText(t, n.URL(), "x", "the server has seen the fresh connection by now")
	begin := time.Now()
	shutdown(t, n)
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Shutdown took %v with one fresh connection open", took)
	}
}
