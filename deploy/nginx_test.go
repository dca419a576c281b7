// Package deploy_test runs the shipped deployment files for real: nginx
// with deploy/nginx.conf in front of announce, and systemd-analyze on
// deploy/announce.service.
package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// pollTimeout is announce's --poll-timeout behind nginx: short, so that a
// long-poll waiting its full timeout keeps the test short.
const pollTimeout = 3 * time.Second

// proxy is announce behind a real nginx running deploy/nginx.conf.
type proxy struct {
	URL  string // https://127.0.0.1:PORT, nginx's TLS server
	Addr string
	Node *serve.Node
	CA   *testenv.TestCA
	HTTP *http.Client // HTTP/2 to nginx, trusting the test CA
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx", "nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("nginx not found: run `make test` (scripts/test-deps.sh installs it) or apt-get install nginx-light")
	return ""
}

// renderNginxConf is deploy/nginx.conf with only its addresses and
// certificate paths replaced: the shipped file is the one tested.
func renderNginxConf(t *testing.T, upstream, httpsPort, httpPort, cert, key string) string {
	t.Helper()
	src, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(src)
	for _, r := range [][2]string{
		{"server 127.0.0.1:8000;", "server " + upstream + ";"},
		{"listen 443 ssl http2;", "listen 127.0.0.1:" + httpsPort + " ssl http2;"},
		{"listen 80;", "listen 127.0.0.1:" + httpPort + ";"},
		{"/etc/letsencrypt/live/announce.example.com/fullchain.pem", cert},
		{"/etc/letsencrypt/live/announce.example.com/privkey.pem", key},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("deploy/nginx.conf no longer has %q for the test to replace", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	// The test machine may have no IPv6: its listen lines go.
	conf = regexp.MustCompile(`(?m)^\s*listen \[::\].*$`).ReplaceAllString(conf, "")
	return conf
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	bin := nginxBinary(t)
	node, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", Memory: true, PollTimeout: pollTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = testenv.Stop(5*time.Second, node.Shutdown) })

	dir := t.TempDir()
	ca := testenv.NewTestCA(t)
	cert, key := ca.Issue(t, 1, 24*time.Hour).Write(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 { // a free port may be taken before nginx binds it
		httpsPort, httpPort := strconv.Itoa(testenv.FreePort(t)), strconv.Itoa(testenv.FreePort(t))
		site := filepath.Join(dir, "announce.conf")
		if err := os.WriteFile(site, []byte(renderNginxConf(t, node.Addr(), httpsPort, httpPort, cert, key)), 0o644); err != nil {
			t.Fatal(err)
		}
		main := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[2]s;
}
`, dir, site)
		mainFile := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(mainFile, []byte(main), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-t", "-p", dir, "-c", mainFile).CombinedOutput(); err != nil {
			t.Fatalf("nginx -t rejects deploy/nginx.conf: %v\n%s", err, out)
		}
		out := new(bytes.Buffer)
		cmd := exec.Command(bin, "-p", dir, "-c", mainFile)
		cmd.Stdout, cmd.Stderr = out, out
		var werr error
		done := make(chan struct{})
		if err := testenv.StartProcess(cmd, &werr, done); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		addr := "127.0.0.1:" + httpsPort
		if lastErr = waitListening(addr, done); lastErr == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
					t.Logf("nginx error.log:\n%s", log)
				}
			})
			tr := &http.Transport{TLSClientConfig: ca.ClientConfig("h2"), ForceAttemptHTTP2: true}
			return &proxy{URL: "https://" + addr, Addr: addr, Node: node, CA: ca, HTTP: &http.Client{Transport: tr}}
		}
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if !bytes.Contains(log, []byte("Address already in use")) {
			t.Fatalf("nginx did not start: %v\n%s\n%s", lastErr, out, log)
		}
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return nil
}

func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("nginx exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after 15s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proxy) publish(t *testing.T, channel, content string) announce.Message {
	t.Helper()
	c, err := client.New(client.Config{Server: p.URL, HTTPClient: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Publish(ctx, channel, content)
	if err != nil {
		t.Fatalf("publish through nginx: %v", err)
	}
	return m
}

func TestNginxWebSocket(t *testing.T) {
	p := startProxy(t)
	p.publish(t, "ngx-ws", "before")
	w := testenv.DialWSS(t, "wss://"+p.Addr+"/channels/ngx-ws/ws", p.CA.ClientConfig())
	w.Expect("before")
	testenv.WaitFor(t, 10*time.Second, "the WebSocket observer", func() bool { return p.Node.Hub().Stats().Observers(announce.WebSocket) == 1 })
	p.publish(t, "ngx-ws", "live")
	w.Expect("live")
}

func TestNginxSSEResumesWithLastEventID(t *testing.T) {
	p := startProxy(t)
	first := p.publish(t, "ngx-sse", "one")
	p.publish(t, "ngx-sse", "two")
	p.publish(t, "ngx-sse", "three")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/channels/ngx-sse/events", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(first.ID, 10))
	resp, err := p.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE through nginx: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	events := make(chan client.SSEEvent, 16)
	go func() {
		r := client.NewSSEReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				close(events)
				return
			}
			events <- ev
		}
	}()
	next := func(want string) {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok || !strings.Contains(ev.Data, `"`+want+`"`) {
				t.Fatalf("event %+v (open %v), want %q", ev, ok, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %q within 10s: nginx buffers the stream?", want)
		}
	}
	next("two") // the replay after Last-Event-ID
	next("three")
	testenv.WaitFor(t, 10*time.Second, "the SSE observer", func() bool { return p.Node.Hub().Stats().Observers(announce.SSE) == 1 })
	p.publish(t, "ngx-sse", "four") // one small event: only an unbuffered proxy passes it on now
	next("four")
}

func TestNginxLongPollWaitsItsFullTimeout(t *testing.T) {
	p := startProxy(t)
	m := p.publish(t, "ngx-lp", "current")
	for _, query := range []string{"/channels/ngx-lp/status?since=%d", "/channels/ngx-lp/messages?since=%d&wait=60"} {
		path := fmt.Sprintf(query, m.ID)
		start := time.Now()
		resp, err := p.HTTP.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK || took < pollTimeout {
			t.Fatalf("GET %s through nginx: %s after %v: %s; want 200 after the full %v", path, resp.Status, took, body, pollTimeout)
		}
	}
	// A message during the wait is answered at once, not when a buffer fills.
	got := make(chan string, 1)
	go func() {
		resp, err := p.HTTP.Get(fmt.Sprintf("%s/channels/ngx-lp/status?since=%d", p.URL, m.ID))
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	testenv.WaitFor(t, 10*time.Second, "the waiting poll", func() bool { return p.Node.Hub().Stats().Observers(announce.Poll) == 1 })
	p.publish(t, "ngx-lp", "news")
	select {
	case b := <-got:
		if !strings.Contains(b, "news") {
			t.Fatalf("the poll answered %q, want the new message", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the poll was not answered through nginx")
	}
}

// The shipped timeouts outlast the server's defaults: a 30s long-poll,
// the 15s SSE heartbeat and the 25s WebSocket ping.
func TestNginxTimeoutsAboveDefaults(t *testing.T) {
	src, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range regexp.MustCompile(`(?m)^\s*proxy_(read|send)_timeout\s+(\d+)s;`).FindAllStringSubmatch(string(src), -1) {
		found++
		if s, _ := strconv.Atoi(m[2]); time.Duration(s)*time.Second <= 30*time.Second {
			t.Errorf("proxy_%s_timeout %ss is not above the default --poll-timeout 30s", m[1], m[2])
		}
	}
	if found < 2 {
		t.Error("deploy/nginx.conf sets no proxy_read_timeout and proxy_send_timeout")
	}
	for _, want := range []string{"X-Forwarded-For", "proxy_buffering off", "Upgrade", "$connection_upgrade"} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("deploy/nginx.conf has no %s", want)
		}
	}
}
