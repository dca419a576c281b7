package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The poll transport reads the channel's log, GET /channels/{ch}/messages
// ?since=ID&wait=S, not the long-poll GET /channels/{ch}/status that legacy
// pages use. /status answers one message, the current one: if two messages
// are published between two polls, a /status client only ever sees the
// second. The log answers every message after the cursor that the history
// still holds, and with wait it blocks while there is none, so a cursor
// client misses nothing and costs no more requests than /status would.

// pollPage is how many messages one poll asks for at most (the server's cap).
const pollPage = 1000

type pollConn struct {
	client  *Client
	channel string
	token   string
	name    string // presence name, sent with every poll
	wait    time.Duration
	ctx     context.Context
	since   uint64    // id of the last message handed out
	pending []Message // answered but not handed out yet
}

func (s *Subscription) dialPoll(ctx context.Context, cursor *uint64) (conn, string, error) {
	p := &pollConn{client: s.client, channel: s.channel, token: s.opts.Token, name: s.opts.Name, wait: s.opts.PollWait, ctx: ctx}
	if cursor == nil {
		// No cursor: start from the current message, like the other transports.
		u := s.client.endpoint(channelPath(s.channel, ""), nil)
		rctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
		info, err := s.client.info(rctx, s.channel, p.token)
		if err != nil {
			return nil, u, err
		}
		p.since = info.Current.ID
		if info.Current.ID > 0 {
			p.since--
			p.pending = []Message{info.Current}
		}
		return p, u, nil
	}
	// One poll that does not wait shows the server answers, and takes what is there.
	p.since = *cursor
	u, msgs, err := p.poll(0)
	if err != nil {
		return nil, u, err
	}
	p.pending = msgs
	return p, u, nil
}

func (p *pollConn) next() (frame, error) {
	for len(p.pending) == 0 {
		_, msgs, err := p.poll(p.wait)
		if err != nil {
			return frame{}, err
		}
		if len(msgs) == 0 {
			// Nothing new within the wait, which is normal; but a log that
			// stays empty may also mean the store was reset and its ids are
			// behind the cursor (the log then answers [] for ever).
			rctx, cancel := context.WithTimeout(p.ctx, handshakeTimeout)
			info, err := p.client.info(rctx, p.channel, p.token)
			cancel()
			if err != nil {
				return frame{}, err
			}
			if info.Current.ID < p.since {
				p.since = 0 // every message the store holds now is news
				return frame{msg: info.Current, reset: true}, nil
			}
		}
		p.pending = msgs
	}
	m := p.pending[0]
	p.pending = p.pending[1:]
	p.since = m.ID
	return frame{msg: m}, nil
}

// poll asks for the messages after p.since, waiting up to wait for one.
func (p *pollConn) poll(wait time.Duration) (string, []Message, error) {
	q := presenceQuery(p.name)
	q.Set("since", strconv.FormatUint(p.since, 10))
	q.Set("limit", strconv.Itoa(pollPage))
	if wait > 0 {
		q.Set("wait", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
	}
	u := p.client.endpoint(channelPath(p.channel, "/messages"), q)
	ctx, cancel := context.WithTimeout(p.ctx, wait+handshakeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return u, nil, err
	}
	req.Header.Set("Accept", "application/json")
	setToken(req.Header, p.token)
	resp, err := p.client.http.Do(req)
	if err != nil {
		if p.ctx.Err() == nil && ctx.Err() != nil {
			err = errIdle
		}
		return u, nil, err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return u, nil, errorFrom(resp)
	}
	var msgs []Message
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&msgs); err != nil {
		return u, nil, err
	}
	return u, msgs, nil
}

func (p *pollConn) close() {}
