package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/announce/announce/announce"
)

// Defaults of a Dispatcher.
const (
	DefaultQueue    = 10000
	DefaultWorkers  = 4
	DefaultAttempts = 5
	// DefaultBackoff is the wait before the first retry; each next wait
	// doubles it: 2, 4, 8 and 16 s, so five tries span about 30 s.
	DefaultBackoff = 2 * time.Second
	DefaultTimeout = 5 * time.Second
)

// Config configures a Dispatcher. Zero fields take the defaults.
type Config struct {
	// URLs receive every event (each its own delivery). Required.
	URLs []string
	// Secret keys the X-Announce-Signature HMAC; without it requests are unsigned.
	Secret string
	// Node names this node in the events.
	Node string
	// Queue bounds the deliveries waiting to be sent or retried, per
	// receiver (DefaultQueue); beyond it new events are dropped and counted.
	Queue int
	// Workers is how many POSTs may be in flight at once, per receiver
	// (DefaultWorkers): a slow or dead receiver never delays the others.
	Workers int
	// Attempts is how often a delivery is tried before it counts as failed (DefaultAttempts).
	Attempts int
	// Backoff is the first retry's wait, doubling each time (DefaultBackoff).
	Backoff time.Duration
	// Timeout bounds each POST (DefaultTimeout).
	Timeout time.Duration
	// Client sends the POSTs; one that does not follow redirects when nil.
	Client *http.Client
	Logger *slog.Logger
}

// Dispatcher queues events and POSTs them to the receivers. It implements
// announce.Events; its methods never wait. Each receiver has a lane of its
// own (queue and workers), so one that hangs or fails holds up only itself.
type Dispatcher struct {
	lanes    []*lane
	secret   string
	node     string
	limit    int64
	attempts int
	backoff  time.Duration
	timeout  time.Duration
	client   *http.Client
	log      *slog.Logger

	seq atomic.Uint64

	ok, failed, dropped, retries atomic.Uint64

	mu       sync.Mutex
	closing  bool                // guarded by mu
	waiting  map[*time.Timer]job // retries waiting for their backoff; guarded by mu
	failing  map[string]bool     // receivers whose last delivery failed (for quieter logs); guarded by mu
	base     context.Context     // cancelled at the hard stop
	hardStop context.CancelFunc
	stop     chan struct{} // closed at the hard stop: workers exit
	workers  sync.WaitGroup
}

// lane is one receiver's queue; its workers send only its deliveries.
type lane struct {
	url     string
	jobs    chan job
	pending atomic.Int64 // deliveries queued, in flight or waiting to retry
}

type job struct {
	ev      Event
	lane    *lane
	attempt int // tries made so far
}

var _ announce.Events = (*Dispatcher)(nil)

// New validates cfg and starts the workers.
func New(cfg Config) (*Dispatcher, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("webhook: no URL")
	}
	for _, u := range cfg.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("webhook: %q is not an http(s) URL", u)
		}
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: cfg.Workers,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: cfg.Timeout,
			},
			// A redirect is an answer, not an invitation to POST elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		secret:   cfg.Secret,
		node:     cfg.Node,
		limit:    int64(cfg.Queue),
		attempts: cfg.Attempts,
		backoff:  cfg.Backoff,
		timeout:  cfg.Timeout,
		client:   cfg.Client,
		log:      cfg.Logger,
		waiting:  make(map[*time.Timer]job),
		failing:  make(map[string]bool),
		stop:     make(chan struct{}),
	}
	d.base, d.hardStop = context.WithCancel(context.Background())
	for _, u := range cfg.URLs {
		l := &lane{url: u, jobs: make(chan job, cfg.Queue)}
		d.lanes = append(d.lanes, l)
		for range cfg.Workers {
			d.workers.Add(1)
			go d.work(l)
		}
	}
	return d, nil
}

// Connected implements announce.Events.
func (d *Dispatcher) Connected(s announce.Session) { d.session(Connected, s) }

// Disconnected implements announce.Events.
func (d *Dispatcher) Disconnected(s announce.Session) { d.session(Disconnected, s) }

func (d *Dispatcher) session(typ string, s announce.Session) {
	d.Enqueue(Event{Type: typ, Channel: s.Channel, Transport: s.Transport.String(), Name: s.Name, Session: s.ID, Time: s.Time})
}

// Published implements announce.Events.
func (d *Dispatcher) Published(p announce.Publication) {
	d.Enqueue(Event{Type: Published, Channel: p.Channel, Transport: p.Via, Name: p.Name, ID: p.ID, Time: p.Time})
}

// Enqueue queues ev for every receiver, filling in Node, EventID and a
// missing Time. It never waits: a delivery that does not fit in the queue
// is dropped and counted.
func (d *Dispatcher) Enqueue(ev Event) {
	ev.Node = d.node
	ev.EventID = d.node + "-" + strconv.FormatUint(d.seq.Add(1), 10)
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	d.mu.Lock()
	closing := d.closing
	d.mu.Unlock()
	for _, l := range d.lanes {
		if closing || l.pending.Add(1) > d.limit {
			if !closing {
				l.pending.Add(-1)
			}
			d.dropped.Add(1)
			continue
		}
		l.jobs <- job{ev: ev, lane: l} // never blocks: the channel holds limit jobs
	}
}

func (d *Dispatcher) work(l *lane) {
	defer d.workers.Done()
	for {
		select {
		case <-d.stop:
			return
		case j := <-l.jobs:
			d.deliver(j)
		}
	}
}

// pending is the deliveries queued, in flight or waiting to retry, over all receivers.
func (d *Dispatcher) pending() int64 {
	var n int64
	for _, l := range d.lanes {
		n += l.pending.Load()
	}
	return n
}

// deliver makes one attempt and settles the job: done, failed, or a retry.
func (d *Dispatcher) deliver(j job) {
	j.attempt++
	status, err := d.post(j)
	switch {
	case err == nil && status < 300:
		d.ok.Add(1)
		j.lane.pending.Add(-1)
		d.recovered(j.lane.url)
		return
	case d.base.Err() != nil: // the hard stop cut it off
		d.dropped.Add(1)
		j.lane.pending.Add(-1)
		return
	case (err != nil || retryable(status)) && j.attempt < d.attempts:
		d.retries.Add(1)
		d.retryLater(j)
		return
	}
	d.failed.Add(1)
	j.lane.pending.Add(-1)
	d.failedFinal(j, status, err)
}

// retryable reports whether an answer is worth another try: the receiver
// is overloaded or broken for now, not refusing this event.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// post sends one attempt and returns the status.
func (d *Dispatcher) post(j job) (int, error) {
	ev := j.ev
	ev.Timestamp = time.Now().Unix()
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(d.base, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.lane.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "announce-webhook/1")
	h.Set(HeaderEvent, ev.Type)
	h.Set(HeaderEventID, ev.EventID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ev.Timestamp, 10))
	if d.secret != "" {
		h.Set(HeaderSignature, Sign(d.secret, body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	resp.Body.Close()
	return resp.StatusCode, nil
}

// retryLater requeues j after its backoff, or at once while closing (what
// can still be delivered is, within the shutdown deadline).
func (d *Dispatcher) retryLater(j job) {
	wait := d.backoff << (j.attempt - 1)
	wait = wait - wait/5 + rand.N(wait/5*2+1) // ±20 %, so retries of a burst spread out
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		j.lane.jobs <- j
		return
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		d.mu.Lock()
		_, ok := d.waiting[t]
		delete(d.waiting, t)
		d.mu.Unlock()
		if ok {
			j.lane.jobs <- j // its slot is still counted in pending: it fits
		}
	})
	d.waiting[t] = j
}

func (d *Dispatcher) failedFinal(j job, status int, err error) {
	d.mu.Lock()
	first := !d.failing[j.lane.url]
	d.failing[j.lane.url] = true
	d.mu.Unlock()
	if !first {
		return
	}
	reason := "status " + strconv.Itoa(status)
	if err != nil {
		reason = err.Error()
	}
	d.log.Warn("webhook delivery failed; later failures of this receiver are not logged until it recovers",
		"url", j.lane.url, "type", j.ev.Type, "tries", j.attempt, "reason", reason)
}

func (d *Dispatcher) recovered(u string) {
	d.mu.Lock()
	was := d.failing[u]
	delete(d.failing, u)
	d.mu.Unlock()
	if was {
		d.log.Info("webhook receiver accepts deliveries again", "url", u)
	}
}

// Stats are a dispatcher's counters, each counting deliveries (an event
// times a receiver).
type Stats struct {
	OK      uint64 // accepted by the receiver (2xx)
	Failed  uint64 // refused (4xx) or still failing after every try
	Dropped uint64 // never sent: the queue was full, or the server shut down first
	Retries uint64 // attempts that failed and were tried again
	Pending int64  // queued, in flight or waiting to retry
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{OK: d.ok.Load(), Failed: d.failed.Load(), Dropped: d.dropped.Load(),
		Retries: d.retries.Load(), Pending: d.pending()}
}

// Close stops taking events and delivers what is queued: retries waiting
// for their backoff go at once. Whatever is still undelivered when ctx ends
// is abandoned and counted as dropped; Close then returns ctx's error.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return nil
	}
	d.closing = true
	for t, j := range d.waiting {
		if t.Stop() { // else it fired and is about to requeue j itself
			delete(d.waiting, t)
			j.lane.jobs <- j
		}
	}
	d.mu.Unlock()

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
	for d.pending() > 0 && err == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	d.hardStop()
	close(d.stop)
	d.workers.Wait()
	var n int64
	for _, l := range d.lanes {
		n += l.pending.Swap(0)
	}
	if n > 0 {
		d.dropped.Add(uint64(n))
		d.log.Warn("webhook deliveries abandoned at shutdown", "count", n)
	}
	return err
}
