package api_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxClientGzip is the size budget for announce.js, gzipped.
const maxClientGzip = 6 << 10

// TestClientScriptServed: /announce.js, /announce.mjs and /announce.d.ts
// are served, gzipped under 6 KB, revalidated by ETag; the classic script
// defines the global announce and the module exports the same API (both
// run in node).
func TestClientScriptServed(t *testing.T) {
	ts := newTestServer(t)
	files := map[string][]byte{}
	for _, path := range []string{"/announce.js", "/announce.mjs", "/announce.d.ts"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		res, gz := do(t, nil, req)
		assertStatus(t, res, gz, http.StatusOK)
		if res.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: Content-Encoding %q, want gzip", path, res.Header.Get("Content-Encoding"))
		}
		if strings.HasSuffix(path, "js") {
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("%s: Content-Type %q", path, ct)
			}
			if len(gz) >= maxClientGzip {
				t.Errorf("%s is %d bytes gzipped; the budget is %d", path, len(gz), maxClientGzip)
			}
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		files[path] = plain

		etag := res.Header.Get("ETag")
		req, _ = http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("If-None-Match", etag)
		res, body := do(t, nil, req)
		if etag == "" || res.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match %s: %d %s, want 304", path, etag, res.StatusCode, body)
		}
	}
	if !bytes.Contains(files["/announce.d.ts"], []byte("export function subscribe(")) {
		t.Errorf("/announce.d.ts declares no subscribe:\n%s", files["/announce.d.ts"])
	}

	dir := t.TempDir()
	for name, body := range map[string][]byte{"announce.js": files["/announce.js"], "announce.mjs": files["/announce.mjs"]} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `
globalThis.self = globalThis;
require(process.argv[1] + "/announce.js");
if (typeof announce.subscribe != "function" || typeof announce.publish != "function") throw new Error("no global announce");
import(process.argv[1] + "/announce.mjs").then((m) => {
  if (m.default.subscribe !== m.subscribe || typeof m.publish != "function") throw new Error("the module's exports");
  console.log("ok");
});`
	out, err := exec.Command("node", "-e", script, dir).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("node running the served scripts: %v\n%s", err, out)
	}
}

// TestLogJSONP: the log answers ?callback= as JSONP (announce.js's
// long-poll on a cross-origin page without CORS) and refuses a bad name.
func TestLogJSONP(t *testing.T) {
	ts := newTestServer(t)
	ts.Publish(t, "ops", "one")
	res, body := ts.get(t, "/channels/ops/messages?since=0&callback=cb")
	assertStatus(t, res, body, http.StatusOK)
	if !strings.HasPrefix(string(body), `/**/cb([{"id":1,`) || !strings.HasSuffix(string(body), `]);`) {
		t.Errorf("JSONP log answer %s", body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/javascript") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("JSONP log headers: %v", res.Header)
	}
	res, body = ts.get(t, "/channels/ops/messages?since=1&callback=cb&wait=0.1")
	if string(body) != "/**/cb([]);" {
		t.Errorf("JSONP log answer after a wait: %d %s", res.StatusCode, body)
	}
	res, body = ts.get(t, "/channels/ops/messages?callback=alert(1)")
	assertError(t, res, body, http.StatusBadRequest)
}
