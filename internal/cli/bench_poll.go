// The long-poll observers: announce's log cursor and nchan's Last-Modified/Etag polls.

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

func (o *observer) connectPoll(ctx context.Context) (func() error, error) {
	c, br, err := o.dialHTTP(ctx)
	if err != nil {
		return nil, err
	}
	// A first poll that does not wait: the connection is proven and "connected".
	if err := o.poll(c, br, 0); err != nil {
		c.Close()
		return nil, err
	}
	return func() error {
		defer c.Close()
		for {
			if err := o.poll(c, br, 30*time.Second); err != nil {
				return err
			}
		}
	}, nil
}

// poll asks the log for the messages after the cursor (a cursor client, as
// client.Poll is), waiting up to wait for one.
func (o *observer) poll(c net.Conn, br *bufio.Reader, wait time.Duration) error {
	q := url.Values{"since": {strconv.FormatUint(o.since, 10)}, "limit": {"1000"}}
	if wait > 0 {
		q.Set("wait", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
	}
	resp, err := o.request(c, br, o.path("/messages", q), "Accept: application/json\r\n", wait+15*time.Second)
	if err != nil {
		return err
	}
	if err := o.readBody(resp); err != nil {
		return err
	}
	var msgs []struct {
		ID      uint64 `json:"id"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(o.pollBuf.Bytes(), &msgs); err != nil {
		return fmt.Errorf("reading the log: %w", err)
	}
	if o.pollBuf.Cap() > 16<<10 {
		o.pollBuf = bytes.Buffer{} // a catch-up page: do not keep it per observer
	}
	now := time.Now().UnixNano()
	for _, m := range msgs {
		sent, _ := stampOf([]byte(m.Content), false)
		o.deliver(m.ID, sent, now)
	}
	if resp.Close {
		return errors.New("the server closed the connection")
	}
	return nil
}

// deliverJSON records a message that arrived as JSON (a WebSocket frame or SSE data).
// connectNchanPoll long-polls nchan: each answer is one message, and the
// next poll carries its Last-Modified and Etag as nchan's cursor.
func (o *observer) connectNchanPoll(ctx context.Context) (func() error, error) {
	c, br, err := o.dialHTTP(ctx)
	if err != nil {
		return nil, err
	}
	path := o.nchanPath("sub")
	// The connection is proven by writing the first poll; nchan answers it
	// only when a message comes.
	var lastModified, etag string
	poll := func(timeout time.Duration) error {
		header := ""
		if lastModified != "" {
			header = "If-Modified-Since: " + lastModified + "\r\nIf-None-Match: " + etag + "\r\n"
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: announce-bench\r\n%s\r\n", path, o.srv.base.Host, header); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		if err := o.readBody(resp); err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			lastModified, etag = resp.Header.Get("Last-Modified"), resp.Header.Get("Etag")
			o.deliverRaw(o.pollBuf.Bytes())
		case http.StatusNotModified, http.StatusRequestTimeout: // timed out: poll again
		default:
			return fmt.Errorf("%s answered %s", path, resp.Status)
		}
		if resp.Close {
			return errors.New("the server closed the connection")
		}
		return nil
	}
	return func() error {
		defer c.Close()
		for {
			if err := poll(45 * time.Second); err != nil {
				return err
			}
		}
	}, nil
}

// readBody reads an answer's body into o.pollBuf and closes it.
func (o *observer) readBody(resp *http.Response) error {
	o.pollBuf.Reset()
	_, err := o.pollBuf.ReadFrom(resp.Body)
	resp.Body.Close()
	return err
}
