//go:build unix

package serve_test

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/internal/testenv"
)

// TestProcessAcceptRecoversFromEMFILE: a server out of file descriptors
// (more clients than its open-file limit) fails to accept, backs off, and
// serves again once the clients leave; /metrics counts the failures.
func TestProcessAcceptRecoversFromEMFILE(t *testing.T) {
	t.Parallel()
	s := startServerOpts(t, serverOpts{nofile: 100}, t.TempDir())

	var conns []net.Conn
	for range 150 {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	// Each accepted connection holds a descriptor until the client leaves
	// or its header timeout passes (10 s), so the server runs out of them
	// and a new client waits in the backlog, unanswered.
	client := &http.Client{Timeout: time.Second}
	testenv.WaitFor(t, 30*time.Second, "the server to run out of descriptors", func() bool {
		resp, err := client.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	for _, c := range conns {
		c.Close()
	}

	// Within the longest back-off (1 s) and a margin for a loaded machine.
	testenv.WaitFor(t, 30*time.Second, "/healthz answering after the clients left", func() bool {
		resp, err := client.Get(s.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if n := acceptErrors(t, s.URL); n < 1 {
		t.Errorf("announce_accept_errors_total = %v after running out of descriptors, want at least 1", n)
	}
	// Still serving, not a single lucky accept.
	for i := range 20 {
		publishText(t, s.URL, "after-emfile", "message "+strconv.Itoa(i))
	}
	if got := strings.Count(s.out.String(), "accepting connections failed"); got != 1 {
		t.Errorf("the accept error was logged %d times, want once a minute at most", got)
	}
}

// acceptErrors reads announce_accept_errors_total from /metrics.
func acceptErrors(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "announce_accept_errors_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("announce_accept_errors_total %q: %v", v, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no announce_accept_errors_total")
	return 0
}
