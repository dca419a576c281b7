package api

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"unicode/utf8"

	"github.com/announce/announce/announce"
)

// FuzzHandleFrame feeds arbitrary client frames to the WebSocket publish
// handling, without a socket (the session reads the frame and sends the
// reply; websocket_frames_test.go covers that part). The reply is always
// {"event":"ack","id":N} or {"event":"error","error":"<reason>"}, and an
// ack exactly when the frame is a publish of valid content with the publish
// key (or over a connection whose token grants publishing): then the
// channel's current message is what the frame said.
func FuzzHandleFrame(f *testing.F) {
	for _, frame := range []string{
		`{"type":"publish","content":"hi","key":"key"}`, `{"type":"publish","content":"hi"}`,
		`{"type":"publish","content":"hi","key":"wrong"}`, `{"type":"publish","content":"hi","key":"a.b.c"}`,
		`{"type":"publish","content":"","key":"key"}`, `{"type":"publish","content":null,"key":"key"}`,
		`{"type":"publish","content":5,"key":"key"}`, `{"type":"publish","key":"key"}`, `{"type":"ping"}`,
		`{"TYPE":"publish","Content":"case","KEY":"key"}`, `{"type":"publish","content":"a","content":"b","key":"key"}`,
		`{"type":"publish","content":"\ud800","key":"key"}`, `{"type":"publish","content":"\u0000","key":"key"}`,
		`{"type":"publish","content":"` + string(make([]byte, 300)) + `","key":"key"}`, `[]`, `null`, `"publish"`, `{`, ``,
		`{"type":"publish","content":"hi","key":"key"} trailing`,
	} {
		f.Add([]byte(frame), false)
	}
	f.Add([]byte(`{"type":"publish","content":"granted"}`), true)

	store := announce.NewMemoryStore(announce.DefaultHistory)
	hub, err := announce.NewHub(announce.Config{History: announce.DefaultHistory, Store: store, MaxMessage: 256})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Hub: hub, PublishKey: "key"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = s.Shutdown(context.Background())
		_ = hub.Shutdown(context.Background())
		_ = store.Close()
	})
	f.Fuzz(func(t *testing.T, data []byte, granted bool) {
		if !utf8.Valid(data) {
			return // the session closes the connection over a text frame that is not UTF-8
		}
		reply := s.handleFrame("ws", data, access{publish: granted}, netip.Addr{})

		var out map[string]any
		if err := json.Unmarshal(reply, &out); err != nil || len(out) != 2 {
			t.Fatalf("frame %q: reply %q is not a two-field JSON object (%v)", data, reply, err)
		}
		var in struct {
			Type    string  `json:"type"`
			Content *string `json:"content"`
			Key     string  `json:"key"`
		}
		valid := json.Unmarshal(data, &in) == nil && in.Type == "publish" && in.Content != nil &&
			(granted || in.Key == "key") && announce.ValidateContent(*in.Content, hub.MaxMessage()) == nil
		if !valid {
			if reason, _ := out["error"].(string); out["event"] != "error" || reason == "" {
				t.Fatalf("frame %q (granted %v): reply %s, want an error", data, granted, reply)
			}
			return
		}
		id, _ := out["id"].(float64)
		if out["event"] != "ack" || id < 1 {
			t.Fatalf("frame %q (granted %v): reply %s, want an ack", data, granted, reply)
		}
		ch, err := hub.Channel(context.Background(), "ws")
		if err != nil {
			t.Fatal(err)
		}
		if cur := ch.Current(); float64(cur.ID) != id || cur.Content != *in.Content {
			t.Fatalf("frame %q: acked %v, but the channel holds %+v", data, id, cur.Message)
		}
	})
}
