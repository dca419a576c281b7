package e2e

import (
	"encoding/json"
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/chromedp/chromedp"
)

// current reads the channel's current message over HTTP.
func current(t *testing.T, base, channel string) (uint64, string) {
	t.Helper()
	var info struct {
		Current struct {
			ID      uint64 `json:"id"`
			Content string `json:"content"`
		} `json:"current"`
	}
	raw := get(t, base+"/channels/"+channel)
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		t.Fatalf("channel info %s: %v", raw, err)
	}
	return info.Current.ID, info.Current.Content
}

const chatContent = `document.querySelector("#chatContent").textContent === `

// TestExampleLongPoll runs the classic jQuery long-poll client: its
// $.getJSON("/status") loop shows what is published, and its
// $.post("chat", {content}) form publishes.
func TestExampleLongPoll(t *testing.T) {
	n := startNode(t, serve.Config{})
	publish(t, n.URL(), "default", "The first", "")
	b := newBrowser(t)
	b.open(n.URL() + "/examples/longpoll")
	if got := eval[string](b, `document.querySelector("#chatContent").textContent`); got != "The first" {
		t.Errorf("the page starts with %q, want the server-rendered %q", got, "The first")
	}

	// The classic loop sends no cursor, so it waits for the next change:
	// publish only once its request is waiting.
	waitObservers(t, n.URL(), "default", "poll", 1)
	publish(t, n.URL(), "default", "Over HTTP", "")
	b.waitJS("the long-poll example to show the message", arriveTimeout, chatContent+jsString("Over HTTP"))

	b.do(
		chromedp.SendKeys(chromedp.CSS("#message"), "From the classic form", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#mypp"), chromedp.NodeVisible),
	)
	b.waitJS("the long-poll example to show its own message", arriveTimeout, chatContent+jsString("From the classic form"))
	if id, content := current(t, n.URL(), "default"); id != 3 || content != "From the classic form" {
		t.Errorf("after the form, the channel holds #%d %q", id, content)
	}

	// The cursor cookie carries the loop past messages published between two
	// of its polls: several in a row end with the newest shown.
	for _, c := range []string{"One", "Two", "Three"} {
		publish(t, n.URL(), "default", c, "")
	}
	b.waitJS("the long-poll example to show the newest message", arriveTimeout, chatContent+jsString("Three"))
}

// TestExampleWebSocket runs the classic WebSocket client: new
// WebSocket("ws://host/status") and JSON.parse(evt.data).content.
func TestExampleWebSocket(t *testing.T) {
	n := startNode(t, serve.Config{})
	b := newBrowser(t)
	b.open(n.URL() + "/examples/websocket")
	waitObservers(t, n.URL(), "default", "ws", 1)

	publish(t, n.URL(), "default", "Over HTTP", "")
	b.waitJS("the WebSocket example to show the message", arriveTimeout, chatContent+jsString("Over HTTP"))

	b.do(
		chromedp.SendKeys(chromedp.CSS("#message"), "From the classic form", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS("#mypp"), chromedp.NodeVisible),
	)
	b.waitJS("the WebSocket example to show its own message", arriveTimeout, chatContent+jsString("From the classic form"))
}
