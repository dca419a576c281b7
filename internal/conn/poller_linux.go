package conn

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// Poller watches many sockets for readability with one epoll instance and
// one goroutine. Registrations are one-shot (EPOLLONESHOT): a callback
// runs once per Rearm, so a handler never races a second callback for the
// same connection. Events carry a registration key, not the descriptor, so
// an event for a closed and reused descriptor finds nothing.
type Poller struct {
	epfd int
	wake int // an eventfd: written by Close to end the wait

	mu      sync.Mutex
	watches map[uint64]*Watch // guarded by mu
	next    uint64            // the last key given; guarded by mu
	closed  bool              // guarded by mu
	done    chan struct{}     // closed when loop returns
}

const watchEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// New starts a Poller.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	// Key 0 is the wake-up; watches count from 1.
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	p := &Poller{epfd: epfd, wake: wake, watches: make(map[uint64]*Watch), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// Watch calls onReadable once conn has bytes to read, has been closed by
// its peer or has failed. onReadable runs on the poller's goroutine with
// the poller locked: it must not block nor call Rearm or Stop (hand the
// work to a Serial). Read from w.Conn() afterwards.
func (p *Poller) Watch(conn net.Conn, onReadable func()) (*Watch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	fd, err := fdOf(conn)
	if err != nil {
		return p.watchBlockingLocked(conn, onReadable), nil
	}
	p.next++
	w := &Watch{p: p, conn: conn, fd: fd, key: p.next, onReadable: onReadable}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, p.event(w)); err != nil {
		return nil, err
	}
	p.watches[w.key] = w
	return w, nil
}

func (p *Poller) event(w *Watch) *unix.EpollEvent {
	ev := &unix.EpollEvent{Events: watchEvents}
	// The 64-bit user data is split by x/sys/unix into Fd and Pad.
	ev.Fd = int32(uint32(w.key))
	ev.Pad = int32(uint32(w.key >> 32))
	return ev
}

func (p *Poller) rearm(w *Watch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.stopped || p.closed {
		return ErrClosed
	}
	if w.peek != nil {
		w.reading.Add(1)
		go w.waitBlocking()
		return nil
	}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, w.fd, p.event(w))
}

func (p *Poller) stop(w *Watch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	delete(p.watches, w.key)
	if !p.closed && w.peek == nil {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
	}
}

// Close stops the poller; callbacks already running finish.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	_, err := unix.Write(p.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wake)
	return err
}

func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		// Callbacks run under the lock, so none starts after Stop returns.
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if w := p.watches[key]; w != nil {
				w.onReadable()
			}
		}
		p.mu.Unlock()
	}
}
