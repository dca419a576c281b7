package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/announce/announce/announce"
)

// Publish publishes content on channel and returns the stored message (with
// its id) once the server acknowledged it, which it does only after its
// store committed it.
//
// A network error or a 502, 503 or 504 answer is retried with backoff (see
// Config.Retries); a 4xx answer never is: it comes back as an *Error at once.
// Every attempt carries the same random Idempotency-Key header, so a server
// that honours it answers a retry whose original did reach it (only its
// answer was lost) with the original message instead of publishing it twice.
// A server that ignores the header may then publish twice: retried publishing
// is at-least-once there. Set Config.Retries < 0 for at-most-once.
func (c *Client) Publish(ctx context.Context, channel, content string) (Message, error) {
	if err := announce.ValidateChannel(channel); err != nil {
		return Message{}, err
	}
	if !utf8.ValidString(content) { // json.Marshal would publish U+FFFD in its place
		return Message{}, fmt.Errorf("client: %w", announce.ErrInvalidUTF8)
	}
	body, err := json.Marshal(struct {
		Content string `json:"content"`
	}{content})
	if err != nil {
		return Message{}, err
	}
	key := idempotencyKey()
	for attempt := 0; ; attempt++ {
		m, wait, err := c.publishOnce(ctx, channel, body, key)
		if err == nil {
			return m, nil
		}
		if wait < 0 || attempt >= max(c.retries, 0) || ctx.Err() != nil {
			if attempt > 0 {
				err = fmt.Errorf("after %d attempts: %w", attempt+1, err)
			}
			return Message{}, err
		}
		if !sleep(ctx, max(wait, backoff(attempt, defaultMaxBackoff))) {
			return Message{}, fmt.Errorf("after %d attempts: %w (last error: %w)", attempt+1, ctx.Err(), err)
		}
	}
}

// publishOnce makes one attempt. wait < 0 means the error is final; else it
// is the least time to wait before the next attempt (from Retry-After).
func (c *Client) publishOnce(ctx context.Context, channel string, body []byte, key string) (Message, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(channelPath(channel, "/messages"), nil), bytes.NewReader(body))
	if err != nil {
		return Message{}, -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Message{}, -1, err
		}
		return Message{}, 0, err // the network: worth another try
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		err := errorFrom(resp)
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return Message{}, retryAfter(resp.Header.Get("Retry-After")), err
		}
		return Message{}, -1, err
	}
	var m Message
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&m); err != nil {
		// The server committed the message; publishing it again would duplicate it.
		return Message{}, -1, fmt.Errorf("message published, but its acknowledgement is unreadable: %w", err)
	}
	if m.ID == 0 {
		return Message{}, -1, errors.New("message published, but the acknowledgement carries no id")
	}
	return m, 0, nil
}

// idempotencyKey is a fresh random key for one Publish and its retries.
func idempotencyKey() string {
	return rand.Text()
}

// retryAfter reads a Retry-After header in seconds, capped at the backoff cap.
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(v)
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, defaultMaxBackoff)
}
