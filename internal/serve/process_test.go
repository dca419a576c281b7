//go:build unix

package serve_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/testenv"
)

// Process tests: the real binary, real signals, real sockets.

// TestProcessRestartKeepsState: after a graceful stop (SIGTERM, exit 0), a
// server on the same data directory has every channel's current message,
// history and id sequence.
func TestProcessRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const shutdown = 5 * time.Second
	s := startServer(t, dir, "--shutdown-timeout", shutdown.String())
	channels := []string{"alpha", "beta"}
	for i := 1; i <= 20; i++ {
		for _, ch := range channels {
			if m := publishText(t, s.URL, ch, fmt.Sprintf("%s %d", ch, i)); m.ID != uint64(i) {
				t.Fatalf("publish %d on %s got id %d", i, ch, m.ID)
			}
		}
	}
	s.terminate(shutdown)

	s = startServer(t, dir, "--shutdown-timeout", shutdown.String())
	for _, ch := range channels {
		if cur := getChannel(t, s.URL, ch).Current; cur.ID != 20 || cur.Content != ch+" 20" {
			t.Errorf("after restart %s's current message is %+v, want id 20 %q", ch, cur, ch+" 20")
		}
		h := history(t, s.URL, ch)
		if len(h) != 20 {
			t.Fatalf("after restart %s has %d messages in history, want 20: %+v", ch, len(h), h)
		}
		for i, m := range h {
			if want := fmt.Sprintf("%s %d", ch, i+1); m.ID != uint64(i+1) || m.Content != want || m.Channel != ch || m.Time.IsZero() {
				t.Fatalf("after restart %s's history[%d] = %+v, want id %d %q with a time", ch, i, m, i+1, want)
			}
		}
		if m := publishText(t, s.URL, ch, "after restart"); m.ID != 21 {
			t.Errorf("first publish on %s after restart got id %d, want 21", ch, m.ID)
		}
	}
	s.terminate(shutdown)
}

// TestProcessKill9KeepsAcknowledged: every publish answered 201 before a
// kill -9 is there after a restart, and the ids have no gaps.
func TestProcessKill9KeepsAcknowledged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A history longer than anything published, so nothing is trimmed.
	s := startServer(t, dir, "--history", "100000")

	const publishers = 8
	var (
		mu    sync.Mutex
		acked = map[uint64]string{} // id -> content, for every 201
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: publishers}}
	defer client.CloseIdleConnections()
	for p := range publishers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				content := fmt.Sprintf("publisher %d message %d", p, i)
				m, err := tryPublish(client, s.URL, "kill", content)
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				if prev, dup := acked[m.ID]; dup {
					t.Errorf("id %d acknowledged twice: %q and %q", m.ID, prev, content)
				}
				acked[m.ID] = content
				mu.Unlock()
			}
		})
	}
	// Kill it while publishes are in flight, once a fair number went through.
	testenv.WaitFor(t, 30*time.Second, "300 acknowledged publishes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 300
	})
	s.signal(syscall.SIGKILL)
	if code, _ := s.waitExit(10 * time.Second); code == 0 {
		t.Fatalf("killed server exited with status 0")
	}
	close(stop)
	wg.Wait()

	s = startServer(t, dir, "--history", "100000")
	h := history(t, s.URL, "kill")
	for i, m := range h {
		if m.ID != uint64(i+1) {
			t.Fatalf("after kill -9 the ids have a gap: position %d holds id %d", i, m.ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var highest uint64
	for id, content := range acked {
		highest = max(highest, id)
		if id > uint64(len(h)) {
			t.Errorf("acknowledged id %d (%q) is lost; the store holds ids 1..%d", id, content, len(h))
		} else if got := h[id-1].Content; got != content {
			t.Errorf("acknowledged id %d was %q, after restart it is %q", id, content, got)
		}
	}
	t.Logf("%d publishes acknowledged before kill -9 (highest id %d); %d stored after restart", len(acked), highest, len(h))
	if cur := getChannel(t, s.URL, "kill").Current; cur.ID != uint64(len(h)) {
		t.Errorf("current id after restart is %d, the history ends at %d", cur.ID, len(h))
	}
	if m := publishText(t, s.URL, "kill", "after restart"); m.ID != uint64(len(h))+1 {
		t.Errorf("first publish after restart got id %d, want %d", m.ID, len(h)+1)
	}
}

// TestProcessSIGTERMEndsObservers: SIGTERM answers a waiting long-poll with
// the current message, ends an SSE stream, closes a WebSocket with 1001 and
// exits 0 within --shutdown-timeout, also with a connection open that never
// sent a request.
func TestProcessSIGTERMEndsObservers(t *testing.T) {
	t.Parallel()
	const shutdown = 5 * time.Second
	s := startServer(t, t.TempDir(), "--shutdown-timeout", shutdown.String())
	cur := publishText(t, s.URL, "bye", "last words")

	// Long-poll without a cursor: it waits for the next change.
	type pollResult struct {
		status int
		msg    announce.Message
		err    error
	}
	polled := make(chan pollResult, 1)
	go func() {
		resp, err := http.Get(s.URL + "/channels/bye/status")
		if err != nil {
			polled <- pollResult{err: err}
			return
		}
		defer resp.Body.Close()
		r := pollResult{status: resp.StatusCode}
		r.err = jsonDecode(resp.Body, &r.msg)
		polled <- r
	}()

	// SSE: read up to the current message, then to the end of the stream.
	resp, err := http.Get(s.URL + "/channels/bye/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := bufio.NewReader(resp.Body)
	readUntil(t, sse, fmt.Sprintf("id: %d", cur.ID))
	sseEnded := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, sse)
		sseEnded <- err
	}()

	// WebSocket: the first frame is the current message.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr+"/channels/bye/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var first announce.Message
	if err := ws.ReadJSON(&first); err != nil || first.ID != cur.ID {
		t.Fatalf("first WebSocket frame: %+v, %v; want id %d", first, err, cur.ID)
	}

	// And a connection that has not sent a request yet, as a browser's
	// preconnect: it must not hold up the stop.
	preconnect, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer preconnect.Close()

	testenv.WaitFor(t, 10*time.Second, "the long-poll, SSE and WebSocket observers to register", func() bool {
		o := getChannel(t, s.URL, "bye").Observers
		return o["poll"] == 1 && o["sse"] == 1 && o["ws"] == 1
	})
	s.terminate(shutdown)

	select {
	case r := <-polled:
		if r.err != nil || r.status != http.StatusOK || r.msg.ID != cur.ID || r.msg.Content != cur.Content {
			t.Errorf("waiting long-poll at SIGTERM got %d %+v (%v), want 200 with the current message %+v", r.status, r.msg, r.err, cur)
		}
	case <-time.After(10 * time.Second):
		t.Error("waiting long-poll got no answer after SIGTERM")
	}
	select {
	case err := <-sseEnded:
		if err != nil {
			t.Errorf("SSE stream ended with %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("SSE stream did not end after SIGTERM")
	}
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("WebSocket after SIGTERM: %v, want close code %d (going away)", err, websocket.CloseGoingAway)
	}
}

// TestProcessEnvironment: ANNOUNCE_* variables configure the server, and a
// flag on the command line wins over its variable.
func TestProcessEnvironment(t *testing.T) {
	t.Parallel()
	t.Run("PollTimeout", func(t *testing.T) {
		t.Parallel()
		s := startServerOpts(t, serverOpts{env: []string{"ANNOUNCE_POLL_TIMEOUT=1s"}, bare: true}, t.TempDir())
		// No cursor: the long-poll waits for a change that never comes, so
		// it ends at the 1s cap with the unchanged (empty) current message.
		start := time.Now()
		var m announce.Message
		getJSON(t, s.URL+"/channels/quiet/status", &m)
		if took := time.Since(start); took >= 10*time.Second {
			t.Errorf("long-poll with ANNOUNCE_POLL_TIMEOUT=1s took %v", took)
		}
		if m != (announce.Message{Channel: "quiet"}) {
			t.Errorf("timed-out long-poll answered %+v, want the unchanged empty message", m)
		}
	})
	t.Run("VariableApplies", func(t *testing.T) {
		t.Parallel()
		s := startServerOpts(t, serverOpts{env: []string{"ANNOUNCE_WELCOME=from the environment"}}, t.TempDir())
		if cur := getChannel(t, s.URL, "default").Current; cur.Content != "from the environment" {
			t.Errorf("with ANNOUNCE_WELCOME set the default channel holds %+v", cur)
		}
	})
	t.Run("FlagWins", func(t *testing.T) {
		t.Parallel()
		// Invalid values in the variables: had they been read, the server
		// would refuse to start.
		s := startServerOpts(t, serverOpts{env: []string{
			"ANNOUNCE_WELCOME=from the environment",
			"ANNOUNCE_POLL_TIMEOUT=0.5s",
			"ANNOUNCE_HISTORY=0",
		}}, t.TempDir(), "--welcome", "from the flag", "--history", "5") // and --poll-timeout 30s
		if cur := getChannel(t, s.URL, "default").Current; cur.Content != "from the flag" {
			t.Errorf("with --welcome and ANNOUNCE_WELCOME the default channel holds %+v, want the flag's", cur)
		}
	})
	t.Run("BadVariable", func(t *testing.T) {
		t.Parallel()
		out, code := runAnnounce(t, []string{"ANNOUNCE_POLL_TIMEOUT=soon"}, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
		if code == 0 || !strings.Contains(out, "ANNOUNCE_POLL_TIMEOUT") {
			t.Errorf("ANNOUNCE_POLL_TIMEOUT=soon: exit %d, output %q; want a failure naming the variable", code, out)
		}
	})
}

// specFlags are the flags of SPEC section 4.
var specFlags = []string{
	"listen", "data-dir", "memory", "redis", "history", "max-message", "poll-timeout", "publish-key",
	"cors-origins", "allowed-origins", "max-conns", "queue", "shutdown-timeout", "welcome",
}

// TestProcessHelp: --help succeeds and lists every flag with its variable.
func TestProcessHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}} {
		out, code := runAnnounce(t, nil, args...)
		if code != 0 {
			t.Errorf("announce %s exited %d, want 0:\n%s", strings.Join(args, " "), code, out)
		}
		var noEnv []string
		for _, f := range specFlags {
			if !strings.Contains(out, "-"+f+" ") && !strings.Contains(out, "-"+f+"\n") {
				t.Errorf("announce %s does not list --%s", strings.Join(args, " "), f)
			}
			if env := "ANNOUNCE_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_")); !strings.Contains(out, env) {
				noEnv = append(noEnv, env)
			}
		}
		if len(noEnv) > 0 {
			t.Errorf("announce %s does not name the variables %s next to their flags "+
				"(internal/cli could append \" [$\"+EnvName(f.Name)+\"]\" to each flag's usage)", strings.Join(args, " "), strings.Join(noEnv, ", "))
		}
		if t.Failed() {
			t.Logf("announce %s:\n%s", strings.Join(args, " "), out)
			return
		}
	}
}

// TestProcessBadFlags: invalid values stop the server before it starts, with
// a message naming the flag.
func TestProcessBadFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string // in the output
	}{
		{[]string{"--poll-timeout", "0.5s"}, "--poll-timeout"},
		{[]string{"--poll-timeout", "soon"}, "poll-timeout"},
		{[]string{"--history", "0"}, "--history"},
		{[]string{"--max-conns", "-1"}, "--max-conns"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, c.args...)
		out, code := runAnnounce(t, nil, args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("announce %s: exit %d, output %q; want a failure naming %s", strings.Join(c.args, " "), code, out, c.want)
		}
	}
}

// TestProcessWelcome: --welcome is the default channel's first message on a
// fresh store, and only there.
func TestProcessWelcome(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const shutdown = 5 * time.Second
	s := startServer(t, dir, "--welcome", "Welcome!", "--shutdown-timeout", shutdown.String())
	if cur := getChannel(t, s.URL, "default").Current; cur.ID != 1 || cur.Content != "Welcome!" {
		t.Fatalf("fresh store with --welcome: default channel holds %+v, want id 1 \"Welcome!\"", cur)
	}
	var polled announce.Message
	getJSON(t, s.URL+"/status?since=0", &polled) // the seed route sees it too
	if polled.ID != 1 || polled.Content != "Welcome!" {
		t.Errorf("GET /status?since=0 = %+v, want the welcome message", polled)
	}
	publishText(t, s.URL, "default", "business as usual")
	s.terminate(shutdown)

	s = startServer(t, dir, "--welcome", "Welcome again!", "--shutdown-timeout", shutdown.String())
	if cur := getChannel(t, s.URL, "default").Current; cur.ID != 2 || cur.Content != "business as usual" {
		t.Errorf("restart with --welcome on a used store: default channel holds %+v, want id 2 unchanged", cur)
	}
	if h := history(t, s.URL, "default"); len(h) != 2 {
		t.Errorf("restart with --welcome on a used store: %d messages in history, want 2: %+v", len(h), h)
	}
	s.terminate(shutdown)
}

// TestProcessSlowHeaders: a client that sends half a request line and stalls
// is disconnected (the header read timeout is 10s).
func TestProcessSlowHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HT"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, conn) // whatever the server says, until it hangs up
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a stalled request line was still connected after %v", time.Since(start))
	}
	t.Logf("stalled client disconnected after %v (%v)", time.Since(start).Round(time.Millisecond), err)
}

// TestProcessMaxConns: with --max-conns 5 and five connections held open, a
// sixth is refused with 503 JSON at once; once one of the five closes, a new
// connection is served.
func TestProcessMaxConns(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--max-conns", "5")
	// Four long-polls on raw connections, plus one keep-alive connection
	// for the client below: five connections.
	var polls []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /channels/held/status HTTP/1.1\r\nHost: "+s.Addr+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		polls = append(polls, c)
	}
	one := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer one.CloseIdleConnections()
	testenv.WaitFor(t, 20*time.Second, "four long-polls to wait", func() bool {
		resp, err := one.Get(s.URL + "/channels/held")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var info channelInfo
		if err := jsonDecode(resp.Body, &info); err != nil {
			t.Fatal(err)
		}
		return info.Observers["poll"] == 4
	})

	get := func(path string) (string, string) {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		all, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("reading the answer: %v (got %q)", err, all)
		}
		status, _, _ := strings.Cut(string(all), "\r\n")
		return status, string(all)
	}
	for _, path := range []string{"/channels/held", "/readyz"} {
		if status, all := get(path); !strings.HasPrefix(status, "HTTP/1.1 503") || !strings.Contains(all, `{"error":`) {
			t.Fatalf("GET %s on a sixth connection while five were open got %q; want 503 with a JSON error", path, all)
		}
	}
	// A full node is alive: its liveness probe must not get it restarted.
	if status, all := get("/healthz"); !strings.HasPrefix(status, "HTTP/1.1 200") || !strings.Contains(all, `"ok"`) {
		t.Fatalf("GET /healthz on a sixth connection got %q; want 200", all)
	}
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		_, _ = io.WriteString(c, "HEAD /healthz HTTP/1.1\r\nHost: "+s.Addr+"\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		all, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(all), "HTTP/1.1 200") || !strings.HasSuffix(string(all), "\r\n\r\n") {
			t.Fatalf("HEAD /healthz on a sixth connection got %q; want 200 with no body", all)
		}
	}

	polls[0].Close() // one of the five goes: a new connection is served
	testenv.WaitFor(t, 20*time.Second, "a place under the limit", func() bool {
		status, all := get("/channels/held")
		return strings.HasPrefix(status, "HTTP/1.1 200") && strings.Contains(all, `"channel"`)
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readUntil reads lines from r until one equals line.
func readUntil(t *testing.T, r *bufio.Reader, line string) {
	t.Helper()
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading until %q: %v", line, err)
		}
		if strings.TrimRight(l, "\r\n") == line {
			return
		}
	}
}

// TestProcessShutdownCutsBusyClientsAndExits0: a client still sending its
// request body at the shutdown deadline is cut there, and the stop is still
// graceful: exit 0 within --shutdown-timeout.
func TestProcessShutdownCutsBusyClientsAndExits0(t *testing.T) {
	t.Parallel()
	const shutdown = 2 * time.Second
	s := startServer(t, t.TempDir(), "--shutdown-timeout", shutdown.String())
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /channels/busy/messages HTTP/1.1\r\nHost: "+s.Addr+
		"\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nhello"); err != nil {
		t.Fatal(err)
	}
	publishText(t, s.URL, "busy", "the server is up and reading") // the request above has begun
	s.terminate(shutdown)
}
