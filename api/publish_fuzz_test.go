package api_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/announce/announce/announce"
)

// fuzzMaxMessage is small so the fuzzer reaches the size limits.
const fuzzMaxMessage = 256

// FuzzPublishBody throws arbitrary bodies and content types at the publish
// handler. Whatever arrives, the answer is never a 5xx, always JSON (the
// message or {"error": "..."}), and a 201 carries content that round-trips:
// it is what the body said, valid, within the limit, and the log returns it.
func FuzzPublishBody(f *testing.F) {
	mpType, mpBody := multipartBody(f, "content", "from multipart", "other", "x")
	for _, seed := range []struct{ ctype, body string }{
		{"application/json", `{"content":"hello"}`},
		{"application/json; charset=utf-8", `{"content":"h\u00e9 \"q\" \ud83c\udf89\n"}`},
		{"application/json", `{"content":"a","content":"b"}`},
		{"application/json", `{"content":""}`},
		{"application/json", `{"content":5}`},
		{"application/json", `{"content":null}`},
		{"application/json", `{}`},
		{"application/json", `null`},
		{"application/json", `[`},
		{"application/json", "{\"content\":\"\xff\"}"},
		{"application/json", `{"content":"\ud800"}`},
		{"application/json", `{"content":"` + strings.Repeat("x", fuzzMaxMessage+1) + `"}`},
		{"application/x-www-form-urlencoded", "content=hello+world"},
		{"application/x-www-form-urlencoded; charset=UTF-8", "content=%E2%9C%93&x=1&content=second"},
		{"application/x-www-form-urlencoded", "content=%zz"},
		{"application/x-www-form-urlencoded", "content=%FF"},
		{"application/x-www-form-urlencoded", "a=1;content=2"},
		{"text/plain", "plain text"},
		{"text/plain; charset=utf-8", "é"},
		{"text/plain", "\xff"},
		{"text/plain", ""},
		{"text/plain", strings.Repeat("a", fuzzMaxMessage+1)},
		{"", "no type at all"},
		{"application/xml", "<content>x</content>"},
		{"text/plain; charset", "x"},
		{"multipart/form-data", "content=x"},
		{mpType, string(mpBody)},
		{"multipart/form-data; boundary=XYZ", "--XYZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nhi\r\n--XYZ--\r\n"},
		{"multipart/form-data; boundary=XYZ", "--XYZ\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a.txt\"\r\n\r\nfile\r\n--XYZ--\r\n"},
		{"multipart/form-data; boundary=XYZ", "--XYZ\r\n"},
	} {
		f.Add(seed.ctype, []byte(seed.body))
	}

	ts := newTestServerHub(f, func(c *announce.Config) { c.MaxMessage = fuzzMaxMessage })
	h := ts.API.Handler()
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/channels/fuzz/messages", bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("status %d for %q %q: %s", rec.Code, ctype, body, rec.Body.Bytes())
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("status %d: Content-Type %q", rec.Code, ct)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("status %d: Cache-Control %q", rec.Code, rec.Header().Get("Cache-Control"))
		}
		if timedBody(ctype, body) {
			return // at or ttl: scheduled (202) or expiring; schedule_test.go checks those
		}
		want, wantOK := expectedContent(ctype, body)
		valid := wantOK && want != "" && len(want) <= fuzzMaxMessage && utf8.ValidString(want)

		if rec.Code != http.StatusCreated {
			var e map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("status %d: body %q is not JSON", rec.Code, rec.Body.Bytes())
			}
			if reason, _ := e["error"].(string); len(e) != 1 || reason == "" {
				t.Fatalf("status %d: body %s is not {\"error\": reason}", rec.Code, rec.Body.Bytes())
			}
			if valid && len(body) <= fuzzMaxMessage { // well under any body limit
				t.Fatalf("status %d for acceptable content %q (%q %q): %s", rec.Code, want, ctype, body, rec.Body.Bytes())
			}
			return
		}

		var m announce.Message
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("201 body %q: %v", rec.Body.Bytes(), err)
		}
		if !wantOK {
			t.Fatalf("201 %+v for a body that holds no content: %q %q", m, ctype, body)
		}
		if m.Content != want {
			t.Fatalf("stored %q, the body said %q (%q %q)", m.Content, want, ctype, body)
		}
		if !valid {
			t.Fatalf("stored invalid content %q", m.Content)
		}
		if m.ID == 0 || m.Channel != "fuzz" || m.Time.IsZero() {
			t.Fatalf("stored %+v", m)
		}
		// The log gives back exactly what was stored.
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/channels/fuzz/messages?limit=1&since="+strconv.FormatUint(m.ID-1, 10), nil))
		var log []announce.Message
		if err := json.Unmarshal(rec.Body.Bytes(), &log); err != nil || len(log) != 1 || log[0] != m {
			t.Fatalf("log answered %q (%v), want [%+v]", rec.Body.Bytes(), err, m)
		}
	})
}

// expectedContent is what a body of the content type says the content is,
// decoded independently of the server; ok is false when it says nothing.
func expectedContent(ctype string, body []byte) (content string, ok bool) {
	media, params := "text/plain", map[string]string(nil)
	if ctype != "" {
		var err error
		if media, params, err = mime.ParseMediaType(ctype); err != nil {
			return "", false
		}
	}
	switch media {
	case "text/plain":
		return string(body), true
	case "application/json":
		var req struct {
			Content *string `json:"content"`
		}
		if !utf8.Valid(body) || json.Unmarshal(body, &req) != nil || req.Content == nil {
			return "", false
		}
		return *req.Content, true
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "", false
		}
		return form.Get("content"), true
	case "multipart/form-data":
		if params["boundary"] == "" {
			return "", false
		}
		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(1 << 20)
		if err != nil {
			return "", false
		}
		defer form.RemoveAll()
		if v := form.Value["content"]; len(v) > 0 {
			return v[0], true
		}
		return "", true
	}
	return "", false
}
