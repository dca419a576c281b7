package netpoll

import "sync/atomic"

// Serial runs a connection's work one batch at a time in a goroutine that
// is started on demand and ends when no work is left, so an idle
// connection holds no goroutine. Kick from any goroutine; the work
// function receives every reason kicked since it last ran, ORed together,
// and never runs twice at once.
type Serial struct {
	pending atomic.Uint32
	running atomic.Bool
	work    func(reasons uint32)
}

// NewSerial returns a Serial that runs work.
func NewSerial(work func(reasons uint32)) *Serial { return &Serial{work: work} }

// NewHeldSerial returns a Serial that runs nothing until Release: kicks
// that come while its owner is still being set up wait for it.
func NewHeldSerial(work func(reasons uint32)) *Serial {
	s := &Serial{work: work}
	s.running.Store(true)
	return s
}

// Release starts a held Serial's work with reasons, and whatever was kicked.
func (s *Serial) Release(reasons uint32) {
	s.pending.Or(reasons)
	go s.loop()
}

// Kick records reasons (nonzero bits) and makes sure work runs soon.
func (s *Serial) Kick(reasons uint32) {
	s.pending.Or(reasons)
	if s.running.CompareAndSwap(false, true) {
		go s.loop()
	}
}

func (s *Serial) loop() {
	for {
		if r := s.pending.Swap(0); r != 0 {
			s.work(r)
			continue
		}
		s.running.Store(false)
		// A Kick between the Swap and the Store found running set and
		// started nothing: take its work over unless another loop did.
		if s.pending.Load() == 0 || !s.running.CompareAndSwap(false, true) {
			return
		}
	}
}
