package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/internal/testenv"
)

// idemAnswer is the answer to one publish with an Idempotency-Key.
type idemAnswer struct {
	status   int
	msg      announce.Message
	replayed bool
	body     string
}

// publishIdem POSTs content to base's channel ch with an Idempotency-Key.
func publishIdem(base, ch, key, content string) (idemAnswer, error) {
	body, _ := json.Marshal(map[string]string{"content": content})
	req, err := http.NewRequest(http.MethodPost, base+"/channels/"+ch+"/messages", strings.NewReader(string(body)))
	if err != nil {
		return idemAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := httpClient.Do(req)
	if err != nil {
		return idemAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return idemAnswer{}, err
	}
	a := idemAnswer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replay") == "true", body: string(raw)}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &a.msg); err != nil {
			return a, fmt.Errorf("201 with a body that is no message: %q", raw)
		}
	}
	return a, nil
}

// channelLog reads every message of ch from base.
func channelLog(t *testing.T, base, ch string) []announce.Message {
	t.Helper()
	var ms []announce.Message
	if err := get(context.Background(), base+"/channels/"+ch+"/messages?since=0&limit=1000", &ms); err != nil {
		t.Fatalf("reading the log of %s on %s: %v", ch, base, err)
	}
	return ms
}

// A retry with the same Idempotency-Key is recognised on another node of the
// cluster, sequentially and concurrently: one message, the other answers
// replay it; other content under the key answers 422.
func TestIdempotencyAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, testenv.Redis(t), 2, nil)
	a, b := nodes[0].URL(), nodes[1].URL()
	ch := fmt.Sprintf("idem-%p", t)

	first, err := publishIdem(a, ch, "retry-1", "deploy 42 done")
	if err != nil || first.status != http.StatusCreated || first.replayed {
		t.Fatalf("first publish on A: %+v, %v", first, err)
	}
	again, err := publishIdem(b, ch, "retry-1", "deploy 42 done")
	if err != nil || again.status != http.StatusCreated || !again.replayed || again.msg != first.msg {
		t.Fatalf("retry on B: %+v, %v; want a replay of %+v", again, err, first.msg)
	}
	reused, err := publishIdem(b, ch, "retry-1", "other content")
	if err != nil || reused.status != http.StatusUnprocessableEntity {
		t.Errorf("other content on B: %+v, %v; want 422", reused, err)
	}

	// Concurrently on both nodes, several requests each.
	const each = 4
	var wg sync.WaitGroup
	answers := make([]idemAnswer, 2*each)
	errs := make([]error, 2*each)
	for i := range answers {
		base := []string{a, b}[i%2]
		wg.Go(func() { answers[i], errs[i] = publishIdem(base, ch, "race-1", "concurrent") })
	}
	wg.Wait()
	fresh := 0
	var id uint64
	for i, ans := range answers {
		if errs[i] != nil || ans.status != http.StatusCreated {
			t.Fatalf("concurrent publish %d: %+v, %v", i, ans, errs[i])
		}
		if id == 0 {
			id = ans.msg.ID
		}
		if ans.msg.ID != id || ans.msg.Content != "concurrent" {
			t.Errorf("concurrent publish %d answered %+v, want id %d", i, ans.msg, id)
		}
		if !ans.replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d concurrent answers not replayed, want exactly 1", fresh)
	}

	// The channel holds exactly the two messages, on both nodes.
	for _, base := range []string{a, b} {
		log := channelLog(t, base, ch)
		if len(log) != 2 || log[0].ID != first.msg.ID || log[1].ID != id {
			t.Errorf("log on %s: %+v; want ids %d and %d", base, log, first.msg.ID, id)
		}
	}
}
