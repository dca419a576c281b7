package serve_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/announce/announce/announce"
)

// httpClient is for short requests; every test request has a deadline.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// publishText publishes content on channel and returns the stored message.
func publishText(t *testing.T, base, channel, content string) announce.Message {
	t.Helper()
	m, err := tryPublish(httpClient, base, channel, content)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryPublish publishes content and returns the message the server answered with 201.
func tryPublish(c *http.Client, base, channel, content string) (announce.Message, error) {
	resp, err := c.Post(base+"/channels/"+channel+"/messages", "text/plain; charset=utf-8", strings.NewReader(content))
	if err != nil {
		return announce.Message{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return announce.Message{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return announce.Message{}, fmt.Errorf("publish on %s: %s: %s", channel, resp.Status, body)
	}
	var m announce.Message
	if err := json.Unmarshal(body, &m); err != nil {
		return announce.Message{}, fmt.Errorf("publish answer %q: %w", body, err)
	}
	return m, nil
}

// jsonDecode decodes one JSON value from r into v.
func jsonDecode(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%q: %w", body, err)
	}
	return nil
}

// getJSON GETs url and decodes its 200 JSON answer into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %q: %v", url, body, err)
	}
}

// channelInfo is GET /channels/{ch}.
type channelInfo struct {
	Channel   string           `json:"channel"`
	Current   announce.Message `json:"current"`
	Observers map[string]int   `json:"observers"`
}

func getChannel(t *testing.T, base, channel string) channelInfo {
	t.Helper()
	var info channelInfo
	getJSON(t, base+"/channels/"+channel, &info)
	return info
}

// history reads a channel's whole log, a page at a time.
func history(t *testing.T, base, channel string) []announce.Message {
	t.Helper()
	var all []announce.Message
	for {
		var page []announce.Message
		var since uint64
		if len(all) > 0 {
			since = all[len(all)-1].ID
		}
		getJSON(t, fmt.Sprintf("%s/channels/%s/messages?since=%d&limit=1000", base, channel, since), &page)
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}
