package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/announce/announce/announce"
	"github.com/gorilla/websocket"
)

// Message is one announcement, as the server stores it.
type Message = announce.Message

// Config configures a Client. Only Server is required.
type Config struct {
	// Server is the server's base URL, such as http://127.0.0.1:8000.
	Server string
	// Key is the publish key, sent as Authorization: Bearer KEY; empty for
	// a server that lets anyone publish.
	Key string
	// Retries is how many times Publish retries after a network error or a
	// 502, 503 or 504 answer (default 3; negative: never).
	Retries int
	// HTTPClient makes the HTTP requests (nil: one of this client's own).
	// Its Timeout must be zero: Server-Sent Events responses last as long as
	// the subscription, so every request is bounded by its context instead.
	HTTPClient *http.Client
	// Dial, when set, opens every TCP connection (HTTP and WebSocket), for
	// example to choose the local address. Ignored for HTTP when HTTPClient is set.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig, when set, is the TLS configuration of https and wss
	// connections (for example RootCAs trusting a private CA). Ignored for
	// HTTP when HTTPClient is set.
	TLSConfig *tls.Config
}

// Client talks to one announce server. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	key     string
	retries int
	http    *http.Client
	ws      *websocket.Dialer
}

// DefaultRetries is Config.Retries when it is zero.
const DefaultRetries = 3

// wsWriteBuffers lends WebSocket connections a write buffer only while they
// write: a subscriber writes nothing but pongs and its close frame.
var wsWriteBuffers sync.Pool

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Server, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http://host:port or https://host", cfg.Server)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: server URL %q: no query or fragment, please", cfg.Server)
	}
	if cfg.HTTPClient != nil && cfg.HTTPClient.Timeout != 0 {
		return nil, errors.New("client: Config.HTTPClient.Timeout must be zero: it would cut every Server-Sent Events stream (requests are bounded by their contexts)")
	}
	c := &Client{base: u, key: cfg.Key, retries: cfg.Retries, http: cfg.HTTPClient}
	if c.retries == 0 {
		c.retries = DefaultRetries
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64 // long-polls and concurrent publishes to one server
		if cfg.Dial != nil {
			t.DialContext = cfg.Dial
		}
		if cfg.TLSConfig != nil {
			t.TLSClientConfig = cfg.TLSConfig.Clone()
		}
		c.http = &http.Client{Transport: t}
	}
	c.ws = &websocket.Dialer{
		NetDialContext:   cfg.Dial,
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   4096,
		WriteBufferPool:  &wsWriteBuffers,
	}
	if cfg.TLSConfig != nil {
		c.ws.TLSClientConfig = cfg.TLSConfig.Clone()
	}
	return c, nil
}

// CloseIdleConnections closes the keep-alive connections the client's
// requests left idle (its own transport's, or Config.HTTPClient's). Call it
// when done with the client; subscriptions close with their Close.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Server returns the server's base URL.
func (c *Client) Server() string { return c.base.String() }

// presenceQuery is a query naming the observer for presence (empty: none).
func presenceQuery(name string) url.Values {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	return q
}

// endpoint is the URL of path (which starts with "/") on the server, with query.
func (c *Client) endpoint(path string, query url.Values) string {
	u := *c.base
	u.Path += path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	return u.String()
}

// channelPath is /channels/{name} followed by rest.
func channelPath(name, rest string) string {
	return "/channels/" + url.PathEscape(name) + rest
}

// ChannelInfo is what GET /channels/{ch} answers.
type ChannelInfo struct {
	Channel string `json:"channel"`
	// Current is the channel's current message; ID 0 when nothing was published.
	Current Message `json:"current"`
	// Observers counts the observers per transport on the node that answered.
	Observers map[string]int `json:"observers"`
}

// Info returns the channel's current message and observer counts.
func (c *Client) Info(ctx context.Context, channel string) (ChannelInfo, error) {
	return c.info(ctx, channel, "")
}

func (c *Client) info(ctx context.Context, channel, token string) (ChannelInfo, error) {
	var info ChannelInfo
	if err := announce.ValidateChannel(channel); err != nil {
		return info, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(channelPath(channel, ""), nil), nil)
	if err != nil {
		return info, err
	}
	req.Header.Set("Accept", "application/json")
	setToken(req.Header, token)
	resp, err := c.http.Do(req)
	if err != nil {
		return info, err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return info, errorFrom(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return info, fmt.Errorf("reading channel info: %w", err)
	}
	return info, nil
}

// Error is an error answer of the server: its HTTP status and the reason it
// gave in its {"error": "..."} body.
type Error struct {
	StatusCode int
	Reason     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Reason)
}

// Temporary reports whether asking again later may succeed: 408, 429 and 5xx.
func (e *Error) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
}

// errorFrom reads an error answer into an *Error.
func errorFrom(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &Error{StatusCode: resp.StatusCode}
	var answer struct {
		Error string `json:"error"`
	}
	switch {
	case json.Unmarshal(body, &answer) == nil && answer.Error != "":
		e.Reason = answer.Error
	case len(strings.TrimSpace(string(body))) > 0:
		e.Reason = strings.TrimSpace(string(body)) // a proxy's page, most likely
	default:
		e.Reason = "(no reason given)"
	}
	return e
}

// statusOf returns the HTTP status of err when it is an *Error.
func statusOf(err error) (int, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode, true
	}
	return 0, false
}

// drainClose reads what is left of a small body so its connection can be reused.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// setToken puts an observer's token in h.
func setToken(h http.Header, token string) {
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
}
