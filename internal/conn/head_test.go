package conn

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAppendHeadAsHeaderWrite checks the hand-written head against
// net/http's own: the header lines are those of http.Header.Write, the
// status line and Date parse back, and the head ends with the blank line.
func TestAppendHeadAsHeaderWrite(t *testing.T) {
	h := http.Header{
		"Content-Type":                {"application/json; charset=utf-8"},
		"Set-Cookie":                  {"announce_a=1; Path=/", "announce_b=2"},
		"Access-Control-Allow-Origin": {"https://example.test"},
		"X-Odd":                       {" spaced\r\nline \t"},
		"Vary":                        {"Origin"},
	}
	before := time.Now().Truncate(time.Second)
	head := AppendHead([]byte("prefix"), http.StatusGatewayTimeout, h)
	if !bytes.HasPrefix(head, []byte("prefixHTTP/1.1 504 Gateway Timeout\r\nDate: ")) {
		t.Fatalf("head starts %q", head)
	}
	head = head[len("prefix"):]
	var want bytes.Buffer
	_ = h.Write(&want)
	lines := strings.SplitN(string(head), "\r\n", 3)
	if lines[2] != want.String()+"\r\n" {
		t.Errorf("header lines %q, want %q then a blank line", lines[2], want.String())
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		t.Fatal(err)
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || date.Before(before) || date.After(time.Now()) {
		t.Errorf("Date %q (%v), want now", resp.Header.Get("Date"), err)
	}
	if got := resp.Header.Get("X-Odd"); got != "spaced  line" {
		t.Errorf("X-Odd %q", got)
	}
}
