package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/client"
)

// The bench publishes as a load generator (wrk, h2load) does: each of the
// --publishers owns one keep-alive HTTP/1.1 connection to the first server
// (spread over the source addresses as observers are), writes its POST by
// hand and reads the answer with http.ReadResponse from a bufio.Reader it
// keeps. Go's net/http client costs several times the CPU per request, and
// on a box shared with the server that CPU capped the publish rate measured.
// announce and nchan get the same publisher, so they compare fairly.

// publishTimeout bounds one message's publish, retries included.
const publishTimeout = 10 * time.Second

// benchPublisher is one publishing connection; one publish at a time.
type benchPublisher struct {
	b     *benchRun
	index int // source address: dialers[index mod len]
	conn  net.Conn
	br    *bufio.Reader
	req   []byte // the request being written, reused
}

// newPublishers returns the run's --publishers publishers; each dials on its first publish.
func (b *benchRun) newPublishers() ([]*benchPublisher, error) {
	if b.cfg.target != targetNchan {
		if err := announce.ValidateChannel(b.cfg.channel); err != nil {
			return nil, err
		}
	}
	pubs := make([]*benchPublisher, b.cfg.publishers)
	for i := range pubs {
		pubs[i] = &benchPublisher{b: b, index: i}
	}
	return pubs, nil
}

// publishHead is every publish request's head up to its per-message
// headers: the request line, Host, the content type and the publish key.
func (b *benchRun) publishHead() string {
	var h strings.Builder
	if b.cfg.target == targetNchan {
		// nchan's publisher location: the body is the message.
		fmt.Fprintf(&h, "POST %s/pub/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nAccept: text/plain\r\n",
			b.base.Path, url.PathEscape(b.cfg.channel), b.base.Host)
	} else {
		fmt.Fprintf(&h, "POST %s/channels/%s/messages HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\n",
			b.base.Path, url.PathEscape(b.cfg.channel), b.base.Host)
	}
	if b.cfg.key != "" {
		h.WriteString("Authorization: Bearer " + b.cfg.key + "\r\n")
	}
	h.WriteString("User-Agent: announce-bench\r\n")
	return h.String()
}

// publish publishes message seq (its content) and returns the id it counts
// as: announce's acknowledged id, or seq+1 on nchan.
//
// On announce, as client.Publish does, a network error or a 502, 503 or 504
// answer is retried (client.DefaultRetries times) with the same
// Idempotency-Key, on a fresh connection. On nchan, which knows no such key,
// only a keep-alive connection the server closed before answering a byte
// is retried.
func (p *benchPublisher) publish(ctx context.Context, head, content string, seq int) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	nchan := p.b.cfg.target == targetNchan
	var body []byte
	var key string
	if nchan {
		body = []byte(content)
	} else {
		body, _ = json.Marshal(struct {
			Content string `json:"content"`
		}{content})
		key = rand.Text()
	}
	for attempt := 0; ; attempt++ {
		id, status, stale, err := p.once(ctx, head, key, body)
		if err == nil {
			if nchan {
				return uint64(seq) + 1, nil
			}
			return id, nil
		}
		retry := ctx.Err() == nil && attempt < client.DefaultRetries
		if nchan {
			retry = retry && stale
		} else {
			retry = retry && (status == 0 || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout)
		}
		if !nchan && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
			return 0, &refusedError{err}
		}
		if !retry {
			if attempt > 0 {
				err = fmt.Errorf("after %d attempts: %w", attempt+1, err)
			}
			return 0, err
		}
		if !stale && !sleepCtx(ctx, time.Duration(attempt+1)*100*time.Millisecond) {
			return 0, fmt.Errorf("after %d attempts: %w (last error: %w)", attempt+1, ctx.Err(), err)
		}
	}
}

// once writes the request on the publisher's connection (dialing one when
// it has none) and reads the answer. status is the answer's status, 0 for a
// network error, after which the connection is closed; stale reports a
// reused connection that failed before any byte of an answer (closed idle
// by the server: the request was not seen).
func (p *benchPublisher) once(ctx context.Context, head, key string, body []byte) (id uint64, status int, stale bool, err error) {
	reused := p.conn != nil
	if !reused {
		c, err := p.b.dialPublisher(ctx, p.index)
		if err != nil {
			return 0, 0, false, err
		}
		p.conn, p.br = c, bufio.NewReaderSize(c, 4096)
	}
	deadline, _ := ctx.Deadline()
	_ = p.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = p.conn.SetDeadline(time.Unix(1, 0)) }) // interrupted
	defer stop()

	req := append(p.req[:0], head...)
	if key != "" {
		req = append(req, "Idempotency-Key: "...)
		req = append(req, key...)
		req = append(req, "\r\n"...)
	}
	req = append(req, "Content-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	p.req = req
	_, err = p.conn.Write(req)
	if err == nil {
		_, err = p.br.Peek(1)
	}
	if err != nil {
		// Nothing of an answer on a reused connection, and not for want
		// of time: the server closed it while idle.
		p.close()
		return 0, 0, reused && !isTimeout(err) && ctx.Err() == nil, err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.close()
		return 0, 0, false, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		p.close()
		return 0, 0, false, err
	}
	if resp.Close {
		p.close() // Connection: close; the next publish dials again
	}
	if p.b.cfg.target == targetNchan {
		// nchan answers 201 (subscribers present) or 202 with the channel's status.
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
			return 0, resp.StatusCode, false, fmt.Errorf("nchan publish answered %s", resp.Status)
		}
		return 0, resp.StatusCode, false, nil
	}
	if resp.StatusCode != http.StatusCreated {
		return 0, resp.StatusCode, false, fmt.Errorf("publish answered %s: %s", resp.Status, strings.TrimSpace(string(data[:min(len(data), 200)])))
	}
	id, ok := idOf(data)
	if !ok || id == 0 {
		// The server committed the message; publishing it again would duplicate it.
		return 0, resp.StatusCode, false, errors.New("message published, but the acknowledgement carries no id")
	}
	return id, resp.StatusCode, false, nil
}

// close drops the publisher's connection; the next publish dials again.
func (p *benchPublisher) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.br = nil, nil
	}
}

// refusedError is a publish the server refused for its credentials: every
// other would be refused too, so the run stops at once.
type refusedError struct{ err error }

func (e *refusedError) Error() string {
	return e.err.Error() + "; pass the server's publish key with --publish-key (or ANNOUNCE_PUBLISH_KEY)"
}

func (e *refusedError) Unwrap() error { return e.err }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
