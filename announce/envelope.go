package announce

import (
	"encoding/json"
	"sync"
)

// Envelope is one message encoded once and shared, read-only, by every
// observer: transports cache their wire form in it so a broadcast to ten
// thousand observers encodes once per format, not once per observer.
type Envelope struct {
	Message
	// JSON is the message's JSON encoding.
	JSON []byte

	mu   sync.Mutex
	wire map[any]any
}

// NewEnvelope encodes m.
func NewEnvelope(m Message) *Envelope {
	b, _ := json.Marshal(m) // a Message always encodes
	return &Envelope{Message: m, JSON: b}
}

// Wire returns the envelope's encoding for a transport's format key, building
// it with build the first time it is asked for.
func (e *Envelope) Wire(format any, build func(*Envelope) any) any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.wire[format]; ok {
		return v
	}
	v := build(e)
	if e.wire == nil {
		e.wire = make(map[any]any, 2)
	}
	e.wire[format] = v
	return v
}
