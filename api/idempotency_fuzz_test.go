package api_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// FuzzIdempotencyKey publishes with arbitrary Idempotency-Key headers. A
// key that is not 1 to 128 printable ASCII characters, sent once, is a JSON
// 400; any other is honoured: the publish answers 201, its retry 201 with
// the same message and Idempotent-Replay, and the key reused for other
// content 422.
func FuzzIdempotencyKey(f *testing.F) {
	for _, key := range []string{
		"k", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "with space inside", " padded ", "", " ", "\t",
		"~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", strings.Repeat("k", 128), strings.Repeat("k", 129),
		"é", "\xff", "\x7f", "a\x00b", "a\tb", "\x1b[31m",
	} {
		f.Add(key, false)
	}
	f.Add("twice", true)

	ts := newTestServerHub(f, nil)
	h := ts.API.Handler()
	publish := func(key, content string, twice bool) (*http.Request, *http.Response, []byte, bool) {
		lines := []string{"POST /channels/idem/messages HTTP/1.1", "Host: fuzz", "Content-Type: text/plain",
			"Content-Length: " + strconv.Itoa(len(content)), "Idempotency-Key: " + key}
		if twice {
			lines = append(lines, "Idempotency-Key: "+key)
		}
		req, ok := wireRequest(lines...)
		if !ok {
			return nil, nil, nil, false
		}
		req.Body = io.NopCloser(strings.NewReader(content))
		resp, body := serve(h, req)
		return req, resp, body, true
	}
	f.Fuzz(func(t *testing.T, key string, twice bool) {
		req, resp, body, ok := publish(key, "first", twice)
		if !ok {
			return // net/http refuses it before any handler runs
		}
		if keys := req.Header.Values("Idempotency-Key"); len(keys) != 1 || !printableKey(keys[0]) {
			assertError(t, resp, body, http.StatusBadRequest)
			return
		}
		assertStatus(t, resp, body, http.StatusCreated)
		first := decodeMessage(t, body)
		if first.Content != "first" || first.ID == 0 {
			t.Fatalf("key %q: stored %+v", key, first)
		}

		_, resp, body, _ = publish(key, "first", false)
		assertStatus(t, resp, body, http.StatusCreated)
		if m := decodeMessage(t, body); m != first || resp.Header.Get("Idempotent-Replay") != "true" {
			t.Fatalf("key %q: retry answered %+v (Idempotent-Replay %q), want %+v replayed",
				key, m, resp.Header.Get("Idempotent-Replay"), first)
		}

		_, resp, body, _ = publish(key, "second", false)
		assertError(t, resp, body, http.StatusUnprocessableEntity)
	})
}

// printableKey reports whether k is a valid Idempotency-Key: 1 to 128
// printable ASCII characters.
func printableKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range []byte(k) {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}
