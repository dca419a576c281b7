package announce

import (
	"errors"
	"testing"
)

func TestObserverQueue(t *testing.T) {
	o := NewObserver(SSE, 3)
	if o.Transport() != SSE {
		t.Fatalf("Transport = %v, want sse", o.Transport())
	}
	select {
	case <-o.Ready():
		t.Fatal("Ready fired on an empty queue")
	default:
	}
	for id := uint64(1); id <= 3; id++ {
		if !o.push(NewEnvelope(Message{ID: id, Channel: "x"})) {
			t.Fatalf("push %d refused below the limit", id)
		}
	}
	stall(o)
	if o.push(NewEnvelope(Message{ID: 4, Channel: "x"})) {
		t.Fatal("push accepted past the limit")
	}
	select {
	case <-o.Ready():
	default:
		t.Fatal("Ready not signalled after push")
	}
	got := o.Take(nil)
	if len(got) != 3 || got[0].ID != 1 || got[2].ID != 3 {
		t.Fatalf("Take = %v, want ids 1..3 in order", envIDs(got))
	}
	if rest := o.Take(nil); len(rest) != 0 {
		t.Fatalf("second Take = %v, want empty", envIDs(rest))
	}
	if !o.push(NewEnvelope(Message{ID: 5, Channel: "x"})) {
		t.Fatal("push refused after Take emptied the queue")
	}
	if buf := o.Take(got[:0]); len(buf) != 1 || buf[0].ID != 5 {
		t.Fatalf("Take into a reused buffer = %v, want [5]", envIDs(buf))
	}
}

func TestObserverDefaultLimitAndBurstMemory(t *testing.T) {
	o := NewObserver(WebSocket, 0)
	if o.limit != DefaultQueue {
		t.Fatalf("limit = %d, want DefaultQueue %d", o.limit, DefaultQueue)
	}
	e := NewEnvelope(Message{ID: 1, Channel: "x"})
	for range 200 {
		if !o.push(e) {
			t.Fatal("push refused below the default limit")
		}
	}
	if got := o.Take(nil); len(got) != 200 {
		t.Fatalf("Take returned %d, want 200", len(got))
	}
	if o.queue != nil {
		t.Errorf("after a burst the queue keeps cap %d; want its memory released", cap(o.queue))
	}
}

func TestObserverClose(t *testing.T) {
	o := NewObserver(Poll, 4)
	if o.Err() != nil {
		t.Fatalf("Err of an open observer = %v", o.Err())
	}
	o.close(ErrSlowConsumer)
	o.close(ErrShutdown) // the first reason wins; a second close must not panic
	select {
	case <-o.Done():
	default:
		t.Fatal("Done not closed")
	}
	if !errors.Is(o.Err(), ErrSlowConsumer) {
		t.Fatalf("Err = %v, want ErrSlowConsumer", o.Err())
	}
	if o.push(NewEnvelope(Message{ID: 1, Channel: "x"})) {
		t.Fatal("push accepted on a closed observer")
	}
}

func TestTransportString(t *testing.T) {
	want := map[Transport]string{Poll: "poll", SSE: "sse", WebSocket: "ws", Transport(99): "unknown"}
	for tr, s := range want {
		if tr.String() != s {
			t.Errorf("Transport(%d).String() = %q, want %q", tr, tr.String(), s)
		}
	}
	if len(Transports) != 3 {
		t.Errorf("Transports has %d entries, want 3", len(Transports))
	}
}

func envIDs(es []*Envelope) []uint64 {
	ids := make([]uint64, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func TestNotifyingObserver(t *testing.T) {
	calls := 0
	o := NewNotifyingObserver(WebSocket, 2, func() { calls++ })
	if o.Ready() != nil || o.Done() != nil {
		t.Fatal("a notifying observer has Ready or Done channels")
	}
	o.push(NewEnvelope(Message{ID: 1, Channel: "x"}))
	o.push(NewEnvelope(Message{ID: 2, Channel: "x"}))
	if calls != 2 {
		t.Fatalf("notified %d times for 2 pushes", calls)
	}
	stall(o)
	if o.push(NewEnvelope(Message{ID: 3, Channel: "x"})) || calls != 2 {
		t.Fatal("a refused push was queued or notified")
	}
	o.close(ErrSlowConsumer)
	o.close(ErrClosed)
	if calls != 3 || !errors.Is(o.Err(), ErrSlowConsumer) {
		t.Fatalf("after close: %d notifications, Err %v; want 3, slow consumer", calls, o.Err())
	}
	if got := o.Take(nil); len(got) != 2 {
		t.Fatalf("Take after close = %v, want the 2 queued", envIDs(got))
	}
}

// stall ages o's queue as if its writer had been stuck for slowGrace.
func stall(o *Observer) {
	o.mu.Lock()
	o.since = o.since.Add(-slowGrace)
	o.mu.Unlock()
}

func TestObserverBurstPastTheLimitIsNotASlowConsumer(t *testing.T) {
	o := NewObserver(WebSocket, 5)
	e := NewEnvelope(Message{ID: 1, Channel: "x"})
	// A burst (hundreds of publishers woken by one group commit) may
	// outrun a writer that is about to run: up to burstFactor x the limit
	// while the oldest has waited less than slowGrace.
	for i := range burstFactor * 5 {
		if !o.push(e) {
			t.Fatalf("push %d refused within the burst allowance", i+1)
		}
	}
	if o.push(e) {
		t.Fatal("push accepted past burstFactor x the limit")
	}
	// A writer that keeps taking is never cut.
	o2 := NewObserver(WebSocket, 5)
	for i := range 100 * burstFactor * 5 {
		if !o2.push(e) {
			t.Fatalf("push %d refused although the writer keeps up", i+1)
		}
		if i%7 == 6 {
			o2.Take(nil)
		}
	}
	// One stuck for slowGrace is cut at the limit.
	o3 := NewObserver(WebSocket, 5)
	for range 5 {
		o3.push(e)
	}
	stall(o3)
	if o3.push(e) {
		t.Fatal("push accepted past the limit from a writer stuck for slowGrace")
	}
}
