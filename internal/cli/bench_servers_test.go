package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

func TestBenchParseServers(t *testing.T) {
	got, err := parseServers(" http://127.0.0.1:8001/ , http://127.0.0.1:8002/prefix,https://localhost,")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ base, hostport string }{
		{"http://127.0.0.1:8001", "127.0.0.1:8001"},
		{"http://127.0.0.1:8002/prefix", "127.0.0.1:8002"},
		{"https://localhost", "localhost:443"},
	}
	if len(got) != len(want) {
		t.Fatalf("parseServers: %d servers, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].base.String() != w.base || got[i].hostport != w.hostport || (got[i].tls != nil) != (i == 2) {
			t.Errorf("server %d = %s %s tls %v, want %s %s", i, got[i].base, got[i].hostport, got[i].tls != nil, w.base, w.hostport)
		}
	}
	for _, bad := range []string{"", " , ", "ftp://x:1", "http://127.0.0.1:1,127.0.0.1:2"} {
		if _, err := parseServers(bad); err == nil {
			t.Errorf("parseServers(%q) accepted", bad)
		}
	}
	// One URL: as before, observers all on it.
	one, _ := parseServers("http://127.0.0.1:8000")
	b := &benchRun{servers: one, base: one[0].base}
	if b.serverFor(0) != b.serverFor(7) || b.serversText() != "http://127.0.0.1:8000" {
		t.Errorf("one server: %v %v %q", b.serverFor(0), b.serverFor(7), b.serversText())
	}
	// Several: round-robin.
	b = &benchRun{servers: got, base: got[0].base}
	for i := range 7 {
		if b.serverFor(i) != &got[i%3] {
			t.Errorf("observer %d on %s, want %s", i, b.serverFor(i).base, got[i%3].base)
		}
	}
	m := map[string]float64{"a": 1}
	sumMetrics(m, map[string]float64{"a": 2, "b": 3})
	if m["a"] != 3 || m["b"] != 3 {
		t.Errorf("sumMetrics = %v", m)
	}
}

func TestBenchRefusesServers(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"idle", "--server", "http://127.0.0.1:1,http://192.0.2.1:8000"}, "--allow-remote"},
		{[]string{"idle", "--server", "http://127.0.0.1:1,nonsense"}, "--server"},
		{[]string{"fanout", "--observe-only"}, "--channel"},
		{[]string{"fanout", "--observe-only", "--channel", "c", "--messages", "0"}, "--messages"},
		{[]string{"idle", "--await-observers", "-1"}, "--await-observers"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Commands["bench"](tc.args, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 mentioning %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// nodeObservers reads one node's count of WebSocket observers from its /metrics.
func nodeObservers(t *testing.T, server string) float64 {
	t.Helper()
	u, _ := url.Parse(server)
	m, err := readMetrics(context.Background(), http.DefaultClient, u)
	if err != nil {
		t.Fatal(err)
	}
	return m[`announce_observers{transport="ws"}`]
}

// Idle observers of one bench process spread round-robin over two nodes,
// and its memory figures are the nodes' sum.
func TestBenchIdleSpreadsOverServers(t *testing.T) {
	a, b := startTestNode(t, serve.Config{}), startTestNode(t, serve.Config{})
	type result struct {
		rep map[string]any
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := benchJSON("idle", "--server", a.URL()+","+b.URL(), "-n", "10", "--await-observers", "10", "--hold", "3s")
		done <- result{rep, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for nodeObservers(t, a.URL()) != 5 || nodeObservers(t, b.URL()) != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("observers on the nodes: %v and %v, want 5 and 5", nodeObservers(t, a.URL()), nodeObservers(t, b.URL()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	if rep["connected"] != 10.0 || rep["server_observers"] != 10.0 || rep["server"] != a.URL()+","+b.URL() {
		t.Errorf("report: %v", rep)
	}
	if rss := rep["server_rss_after_bytes"].(float64); rss <= 0 {
		t.Errorf("server_rss_after_bytes = %v", rss)
	}
}

// Two nodes on one Redis, two bench processes: one observes only, the
// other waits until the nodes count both processes' observers, then
// publishes; each counts every message on every observer of its own.
func TestBenchObserveOnlyAcrossNodes(t *testing.T) {
	addr := testenv.Redis(t)
	a := startTestNode(t, serve.Config{Redis: "redis://" + addr})
	b := startTestNode(t, serve.Config{Redis: "redis://" + addr})
	servers := a.URL() + "," + b.URL()
	const channel = "bench-nodes-test"
	var wg sync.WaitGroup
	var observeRep map[string]any
	var observeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		observeRep, observeErr = benchJSON("fanout", "--server", servers, "--channel", channel, "--observe-only",
			"-n", "30", "--messages", "15", "--rate", "50", "--wait", "30s", "--drain", "5s")
	}()
	pubRep := runBench(t, "fanout", "--server", b.URL()+","+a.URL(), "--channel", channel, "--await-observers", "50",
		"-n", "20", "--messages", "15", "--rate", "50", "--publishers", "4", "--wait", "30s")
	wg.Wait()
	if observeErr != nil {
		t.Fatal(observeErr)
	}
	for name, tc := range map[string]struct {
		rep  map[string]any
		want map[string]any
	}{
		"observe-only": {observeRep, map[string]any{"observe_only": true, "connected": 30.0, "expected_deliveries": 450.0, "deliveries": 450.0, "published": 0.0}},
		"publisher":    {pubRep, map[string]any{"connected": 20.0, "published": 15.0, "expected_deliveries": 300.0, "deliveries": 300.0}},
	} {
		for k, v := range tc.want {
			if tc.rep[k] != v {
				t.Errorf("%s: %s = %v, want %v", name, k, tc.rep[k], v)
			}
		}
		for _, k := range []string{"missed", "duplicated", "reordered", "foreign", "connect_errors"} {
			if tc.rep[k] != 0.0 {
				t.Errorf("%s: %s = %v, want 0", name, k, tc.rep[k])
			}
		}
		if p99 := tc.rep["latency_ms"].(map[string]any)["p99"].(float64); p99 <= 0 {
			t.Errorf("%s: p99 %v", name, p99)
		}
	}
	if b, _ := json.Marshal(pubRep); strings.Contains(string(b), "observe_only") {
		t.Errorf("the publisher's report says observe_only: %s", b)
	}
}
