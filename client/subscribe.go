package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/announce/announce/announce"
)

// Transport is how a subscription observes its channel.
type Transport string

// The transports.
const (
	// WebSocket: GET /channels/{ch}/ws?since=ID, one message per text frame.
	WebSocket Transport = "ws"
	// SSE: GET /channels/{ch}/events with Last-Event-ID, one event per message.
	SSE Transport = "sse"
	// Poll: GET /channels/{ch}/messages?since=ID&wait=S in a loop (see poll.go
	// for why the log and not /status).
	Poll Transport = "poll"
)

// ParseTransport reads "ws", "sse" or "poll".
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(s); t {
	case WebSocket, SSE, Poll:
		return t, nil
	}
	return "", fmt.Errorf("unknown transport %q: want ws, sse or poll", s)
}

// SubscribeOptions configure a Subscription. The zero value observes with a
// WebSocket from the channel's current message on.
type SubscribeOptions struct {
	// Transport is ws (the default), sse or poll.
	Transport Transport
	// Since is the cursor to start from: nil delivers the channel's current
	// message (if any) and then every new one; &N delivers every message
	// after id N that the server's history still holds, then the new ones
	// (&0: the whole history).
	Since *uint64
	// Token, when set, is sent as Authorization: Bearer TOKEN: a token the
	// server issued for a private channel (or its publish key).
	Token string
	// Name, when set, is the name this observer goes by in the channel's
	// presence (sent as ?name=).
	Name string
	// MaxBackoff caps the wait between reconnection attempts (default 5s).
	MaxBackoff time.Duration
	// IdleTimeout is how long a connection may stay silent before it is
	// taken for dead and replaced (default 75s; the server pings a
	// WebSocket every 25s, sends an SSE comment every 15s and answers a
	// poll within PollWait).
	IdleTimeout time.Duration
	// PollWait is how long one poll waits for news (default 30s; the server
	// caps it with its --poll-timeout).
	PollWait time.Duration
}

// Subscription observes one channel until its context ends or Close.
type Subscription struct {
	client  *Client
	channel string
	opts    SubscribeOptions
	cancel  context.CancelFunc
	msgs    chan Message
	events  chan Event
	done    chan struct{}
	err     error // set before done is closed
}

// Subscribe starts observing channel and returns at once; the subscription
// connects, reconnects and resumes by itself in one goroutine until ctx ends,
// Close is called, or the server refuses it for good (a 4xx answer such as
// an invalid channel name).
func (c *Client) Subscribe(ctx context.Context, channel string, opts SubscribeOptions) *Subscription {
	if opts.Transport == "" {
		opts.Transport = WebSocket
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 75 * time.Second
	}
	if opts.PollWait <= 0 {
		opts.PollWait = 30 * time.Second
	}
	if opts.Since != nil {
		since := *opts.Since // the caller's variable stays the caller's
		opts.Since = &since
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{
		client: c, channel: channel, opts: opts, cancel: cancel,
		msgs:   make(chan Message, 16),
		events: make(chan Event, 32),
		done:   make(chan struct{}),
	}
	go s.run(ctx)
	return s
}

// Messages delivers the channel's messages in id order, each once. It is
// closed when the subscription ends; Err then tells why. A consumer that
// stops reading stalls the connection, and the server eventually cuts it as a
// slow consumer; the subscription then resumes from its cursor.
func (s *Subscription) Messages() <-chan Message { return s.msgs }

// Events reports connects, reconnects, truncations and resets. It is buffered
// and never holds up delivery: events nobody reads in time are dropped. It is
// closed after Messages.
func (s *Subscription) Events() <-chan Event { return s.events }

// Done is closed when the subscription has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended (nil while it runs): the context's
// error after the context ended or Close, otherwise the error that made it
// give up, such as an *Error with a 4xx status.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription and waits until its connection is closed.
func (s *Subscription) Close() {
	s.cancel()
	<-s.done
}

// frame is one thing a connection read: a message, or news of a store reset.
type frame struct {
	msg Message
	// reset: the server's current id (msg.ID) is behind the cursor.
	reset bool
}

// conn is one connection of a transport, read by the subscription's goroutine only.
type conn interface {
	// next blocks for the next frame.
	next() (frame, error)
	// close ends the connection; safe after next failed.
	close()
}

func (s *Subscription) run(ctx context.Context) {
	defer func() {
		close(s.msgs)
		close(s.events)
		s.cancel()
		close(s.done)
	}()
	if err := announce.ValidateChannel(s.channel); err != nil {
		s.err = err
		return
	}
	if _, err := ParseTransport(string(s.opts.Transport)); err != nil {
		s.err = err
		return
	}
	cursor := s.opts.Since
	for attempt := 0; ; {
		c, url, err := s.dial(ctx, cursor)
		if err == nil {
			attempt = 0
			s.emit(Event{Kind: Connected, Transport: s.opts.Transport, URL: url})
			err = s.consume(ctx, c, &cursor)
			c.close()
		}
		if ctx.Err() != nil {
			s.err = ctx.Err()
			return
		}
		if final(err) {
			s.err = err
			return
		}
		delay := backoff(attempt, s.opts.MaxBackoff)
		attempt++
		if errors.Is(err, errStoreReset) {
			delay, attempt = 0, 0
		}
		s.emit(Event{Kind: Reconnecting, Transport: s.opts.Transport, Err: err, Delay: delay, Attempt: attempt})
		if !sleep(ctx, delay) {
			s.err = ctx.Err()
			return
		}
	}
}

// final reports whether err means the server will never accept this
// subscription: a 4xx answer other than 408 and 429.
func final(err error) bool {
	status, ok := statusOf(err)
	return ok && status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

func (s *Subscription) dial(ctx context.Context, cursor *uint64) (conn, string, error) {
	switch s.opts.Transport {
	case SSE:
		return s.dialSSE(ctx, cursor)
	case Poll:
		return s.dialPoll(ctx, cursor)
	}
	return s.dialWebSocket(ctx, cursor)
}

// consume reads the connection until it fails, delivering each message once
// and in order. *cursor is the id of the last message delivered.
func (s *Subscription) consume(ctx context.Context, c conn, cursor **uint64) error {
	resumed := *cursor != nil // this connection asked for the messages after *cursor
	first := true
	for {
		f, err := c.next()
		if err != nil {
			if *cursor == nil {
				// Connected without a cursor and nothing came: the channel
				// was empty, or the connection fell before its current
				// message arrived. Resume from just before the current one:
				// it comes next, then what is new, never the history.
				*cursor = s.beforeCurrent(ctx)
			}
			return err
		}
		m := f.msg
		reset := f.reset
		if !reset && *cursor != nil && m.ID <= **cursor {
			if reset, err = s.storeWentBack(ctx, first && resumed, **cursor); err != nil {
				return err
			}
		}
		first = false
		if reset {
			// Every message the server's store holds now is news: start
			// over from id 0.
			var since uint64
			if *cursor != nil {
				since = **cursor
			}
			s.emit(Event{Kind: Reset, Transport: s.opts.Transport, Since: since, First: m.ID})
			zero := uint64(0)
			*cursor = &zero
			if f.reset {
				continue // the poll starts over by itself
			}
			if m.ID > 1 {
				return errStoreReset // reconnect from 0 for the messages before m
			}
		}
		if *cursor != nil {
			last := **cursor
			if m.ID <= last {
				continue // a duplicate: delivered already
			}
			if m.ID > last+1 {
				s.emit(Event{Kind: Truncated, Transport: s.opts.Transport, Since: last, First: m.ID})
			}
		}
		select {
		case s.msgs <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
		id := m.ID
		*cursor = &id
	}
}

// storeWentBack tells a message at or below the cursor from a duplicate: it
// reports whether the server's store was reset, so that its ids started
// again. Ids alone cannot tell, so:
//   - The first message of a connection opened with the cursor: the server
//     sends an id at or below the cursor it was given only when it no longer
//     has that id (it then sends its current message), so it was reset.
//   - Later on a connection: a node that finds its store went back delivers
//     the new sequence live; a duplicate would be a server bug. The channel's
//     current id settles it: behind the cursor means reset. (If the new
//     sequence overtook the cursor before its first message got here, its
//     messages up to the cursor are taken for duplicates: no client can tell
//     without an epoch from the server.)
func (s *Subscription) storeWentBack(ctx context.Context, firstOfResumed bool, cursor uint64) (bool, error) {
	if firstOfResumed {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	info, err := s.client.info(ctx, s.channel, s.opts.Token)
	if err != nil {
		// Reconnecting with the cursor settles it too (the first rule).
		return false, fmt.Errorf("checking whether the server's store was reset: %w", err)
	}
	return info.Current.ID < cursor, nil
}

// beforeCurrent is the cursor just before the channel's current message (0
// on an empty channel), or nil when the server cannot say: the next
// connection then starts from the current message again.
func (s *Subscription) beforeCurrent(ctx context.Context) *uint64 {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	info, err := s.client.info(ctx, s.channel, s.opts.Token)
	if err != nil {
		return nil
	}
	c := info.Current.ID
	if c > 0 {
		c--
	}
	return &c
}

// emit reports e unless the buffer is full.
func (s *Subscription) emit(e Event) {
	select {
	case s.events <- e:
	default:
	}
}

// errStoreReset ends a connection that must start over from id 0.
var errStoreReset = errors.New("the server's store was reset: starting over from its first message")

// errIdle is the error of a connection that stayed silent past IdleTimeout.
var errIdle = errors.New("no data from the server within the idle timeout")
