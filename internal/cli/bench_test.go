package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/announce/announce/internal/serve"
)

func runBench(t *testing.T, args ...string) map[string]any {
	t.Helper()
	rep, err := benchJSON(args...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// benchJSON runs announce bench --json-only and reads its JSON line (safe
// from any goroutine: it reports failure as an error).
func benchJSON(args ...string) (map[string]any, error) {
	var stdout, stderr bytes.Buffer
	code := Commands["bench"](append(args, "--json-only"), nil, &stdout, &stderr)
	if code != 0 {
		return nil, fmt.Errorf("bench %q: exit %d\nstdout %s\nstderr %s", args, code, stdout.String(), stderr.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("bench %q printed %q, not one JSON line: %v", args, stdout.String(), err)
	}
	return rep, nil
}

func TestBenchFanout(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	for _, tr := range []string{"ws", "sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			rep := runBench(t, "fanout", "--server", node.URL(), "--transport", tr, "-n", "50", "--messages", "20", "--rate", "50")
			want := map[string]float64{
				"observers": 50, "connected": 50, "connect_errors": 0, "published": 20, "publish_errors": 0,
				"expected_deliveries": 1000, "deliveries": 1000, "missed": 0, "duplicated": 0, "reordered": 0,
				"server_slow_consumers": 0,
			}
			if tr != "poll" { // a poll observer may be between two requests when /metrics is read
				want["server_observers"] = 50
			}
			for k, v := range want {
				if rep[k] != v {
					t.Errorf("%s = %v, want %v", k, rep[k], v)
				}
			}
			lat := rep["latency_ms"].(map[string]any)
			p50, p99, mx := lat["p50"].(float64), lat["p99"].(float64), lat["max"].(float64)
			if !(p50 > 0 && p50 <= p99 && p99 <= mx && mx < 10_000) {
				t.Errorf("implausible latency %v", lat)
			}
			if rep["connects_per_second"].(float64) <= 0 || rep["deliveries_per_second"].(float64) <= 0 {
				t.Errorf("rates: %v connects/s, %v deliveries/s", rep["connects_per_second"], rep["deliveries_per_second"])
			}
			if rep["transport"] != tr || !strings.HasPrefix(rep["channel"].(string), "bench-") {
				t.Errorf("transport %v channel %v", rep["transport"], rep["channel"])
			}
		})
	}
}

func TestBenchIdle(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	for _, tr := range []string{"ws", "sse", "poll"} {
		rep := runBench(t, "idle", "--server", node.URL(), "--transport", tr, "-n", "40", "--hold", "100ms")
		if rep["connected"] != 40.0 || rep["server_observers"].(float64) < 36 || rep["server_rss_after_bytes"].(float64) <= 0 {
			t.Errorf("%s: %v", tr, rep)
		}
	}
}

func TestBenchTable(t *testing.T) {
	node := startTestNode(t, serve.Config{})
	var stdout, stderr bytes.Buffer
	code := Commands["bench"]([]string{"fanout", "--server", node.URL(), "-n", "5", "--messages", "3", "--rate", "100"}, nil, &stdout, &stderr)
	out := stdout.String()
	if code != 0 || !strings.Contains(out, "latency") || !regexp.MustCompile(`missed, duplicated\s+0, 0`).MatchString(out) {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !json.Valid([]byte(lines[len(lines)-1])) {
		t.Errorf("the last line is not JSON: %q", lines[len(lines)-1])
	}
}

func TestBenchRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "--server", "http://192.0.2.1:8000"}, "--allow-remote"},
		{[]string{"fanout", "--transport", "pigeon"}, "unknown transport"},
		{[]string{"fanout", "-n", "0"}, "-n must be"},
		{[]string{"stampede"}, "unknown scenario"},
		{nil, "Usage"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Commands["bench"](tc.args, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 mentioning %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestBenchParsers(t *testing.T) {
	frame := []byte(`{"id":42,"channel":"b","content":"{\"t\":1700000000123456789,\"seq\":3}","time":"2026-01-01T00:00:00Z"}`)
	if id, ok := idOf(frame); !ok || id != 42 {
		t.Errorf("idOf = %d, %v", id, ok)
	}
	if ts, ok := stampOf(frame, true); !ok || ts != 1700000000123456789 {
		t.Errorf("stampOf(escaped) = %d, %v", ts, ok)
	}
	if ts, ok := stampOf([]byte(`{"t":5,"seq":0}`), false); !ok || ts != 5 {
		t.Errorf("stampOf(plain) = %d, %v", ts, ok)
	}
	if _, ok := idOf([]byte(`{"event":"truncated","since":1,"first":5}`)); ok {
		t.Error("a notice has no id")
	}
	m, err := parseMetrics(strings.NewReader("# HELP x\nprocess_resident_memory_bytes 1.5e+07\nannounce_observers{transport=\"ws\"} 3\n"))
	if err != nil || m["process_resident_memory_bytes"] != 1.5e7 || m[`announce_observers{transport="ws"}`] != 3 {
		t.Errorf("parseMetrics = %v, %v", m, err)
	}
	if percentile([]int64{1, 2, 3, 4}, 50) != 2 || percentile([]int64{1, 2, 3, 4}, 100) != 4 || percentile(nil, 99) != 0 {
		t.Error("percentile")
	}
}
