package conn

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
	pool    *Pool // nil: a goroutine of its own each time
	// detached is set by Detach while work runs on a pool worker; only
	// the goroutine running work touches it.
	detached bool
}

// NewSerial returns a Serial that runs work on pool (nil: on a goroutine
// of its own each time).
func NewSerial(pool *Pool, work func(reasons uint32)) *Serial {
	return &Serial{work: work, pool: pool}
}

// NewHeldSerial is NewSerial, running nothing until Release: kicks that
// come while its owner is still being set up wait for it.
func NewHeldSerial(pool *Pool, work func(reasons uint32)) *Serial {
	s := NewSerial(pool, work)
	s.running.Store(true)
	return s
}

// Release starts a held Serial's work with reasons, and whatever was kicked.
func (s *Serial) Release(reasons uint32) {
	s.pending.Or(reasons)
	s.start()
}

// Kick records reasons (nonzero bits) and makes sure work runs soon.
func (s *Serial) Kick(reasons uint32) {
	s.pending.Or(reasons)
	if s.running.CompareAndSwap(false, true) {
		s.start()
	}
}

func (s *Serial) start() {
	if s.pool == nil {
		go s.loop()
		return
	}
	s.pool.submit(s)
}

// Detach, called by work before it may block for long, gives the pool
// worker it runs on back (another takes its place) and lets work go on on
// this goroutine alone. It does nothing off the pool or when detached.
func (s *Serial) Detach() {
	if s.pool == nil || s.detached {
		return
	}
	s.detached = true
	s.pool.detach()
}

// loop runs work until none is pending; it reports whether work detached
// from its pool worker meanwhile.
func (s *Serial) loop() (detached bool) {
	for {
		if r := s.pending.Swap(0); r != 0 {
			s.work(r)
			continue
		}
		// Read detached before running is released: another goroutine may
		// run work, and use the field, as soon as it is.
		detached, s.detached = s.detached, false
		s.running.Store(false)
		// A Kick between the Swap and the Store found running set and
		// started nothing: take its work over unless another loop did.
		if s.pending.Load() == 0 || !s.running.CompareAndSwap(false, true) {
			return detached
		}
		s.detached = detached
	}
}
