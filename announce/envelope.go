package announce

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// maxWireFormats bounds the formats transports may register.
const maxWireFormats = 8

// WireFormat is one transport's encoding of a message, cached in every
// Envelope. Formats are registered at package initialisation.
type WireFormat struct {
	index int
	build func(*Envelope) any
}

var wireFormats atomic.Int32

// NewWireFormat registers an encoding; call it from a package-level var.
func NewWireFormat(build func(*Envelope) any) *WireFormat {
	i := int(wireFormats.Add(1)) - 1
	if i >= maxWireFormats {
		panic("announce: too many wire formats")
	}
	return &WireFormat{index: i, build: build}
}

// Envelope is one message encoded once and shared, read-only, by every
// observer: a broadcast to ten thousand observers encodes once per format,
// and after the first build every writer reads the encoding without a lock.
type Envelope struct {
	Message
	// JSON is the message's JSON encoding.
	JSON []byte

	wire [maxWireFormats]wireSlot
}

type wireSlot struct {
	once sync.Once
	v    any
}

// NewEnvelope encodes m.
func NewEnvelope(m Message) *Envelope {
	b, _ := json.Marshal(m) // a Message always encodes
	return &Envelope{Message: m, JSON: b}
}

// Wire returns the envelope's encoding in format f, building it the first time.
func (e *Envelope) Wire(f *WireFormat) any {
	s := &e.wire[f.index]
	s.once.Do(func() { s.v = f.build(e) })
	return s.v
}
