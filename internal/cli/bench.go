package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/announce/announce/client"
)

// Bench is the load generator: `announce bench fanout` and `announce bench idle`.
func Bench(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench(ctx, args, stdout, stderr)
}

const benchUsage = `Usage: announce bench fanout|idle [flags]

  fanout  opens N observers of one transport on a channel, then publishes M
          messages at R per second, each carrying its send time; reports the
          connect rate, deliveries per second, the latency from publish to
          arrival (p50, p90, p99, max), missed and duplicated deliveries.
  idle    holds N idle observers and reports the server's memory (resident
          set, from its /metrics) and goroutines per observer.

--target nchan points the same scenarios at nginx + nchan (docs/nchan.conf):
observers on /sub/CH, publishes to /pub/CH, messages counted by the sequence
number in their content; --pid PID reads a server's memory and CPU from /proc.

The target must be on this machine (loopback) unless --allow-remote is given.
Connections are spread over the loopback source addresses 127.0.0.1..127.0.0.S
so that more than 64K of them fit, and the open-files limit is raised to its
hard limit. Output: a table, then one JSON line (--json-only: the line alone).

Run "announce bench fanout --help" for the flags.
`

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, benchUsage)
			return 0
		}
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	scenario, args := args[0], args[1:]
	if scenario != "fanout" && scenario != "idle" {
		fmt.Fprintf(stderr, "announce bench: unknown scenario %q (fanout or idle)\n", scenario)
		return 2
	}
	fs := flag.NewFlagSet("announce bench "+scenario, flag.ContinueOnError)
	var cfg benchConfig
	cfg.register(fs, scenario)
	if code, ok := parseArgs(fs, args, stdout, stderr, "announce bench"); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "announce bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "announce bench:", err)
			return 2
		}
		defer stop()
	}
	b, err := newBenchRun(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "announce bench:", err)
		return 2
	}
	if err := b.waitReady(ctx); err != nil {
		fmt.Fprintln(stderr, "announce bench:", err)
		return 1
	}
	var rep benchReport
	switch scenario {
	case "fanout":
		rep, err = b.fanout(ctx)
	case "idle":
		rep, err = b.idle(ctx)
	}
	if err != nil {
		fmt.Fprintln(stderr, "announce bench:", err)
		return 1
	}
	if !cfg.jsonOnly {
		rep.printTable(stdout)
	}
	fmt.Fprintf(stdout, "%s\n", jsonLine(rep))
	if rep.failed() {
		return 1
	}
	return 0
}

// benchConfig are the flags of both scenarios.
type benchConfig struct {
	server      string
	channel     string
	transport   string
	n           int
	key         string
	allowRemote bool
	jsonOnly    bool
	sources     int
	concurrency int
	wait        time.Duration
	idleTimeout time.Duration
	target      string // announce or nchan
	pid         int    // read the server's memory and CPU from /proc/PID (nchan: the worker)
	caFile      string // https: trust these certificates too (bench_tls.go)
	insecure    bool   // https: verify nothing
	cpuProfile  string // the load generator's own CPU profile
	// several processes, one run (bench_servers.go)
	awaitObservers int  // wait until the servers count this many observers in all
	observeOnly    bool // fanout: count another process's messages, publish none

	// fanout
	publishers int
	messages   int
	rate       float64
	size       int
	drain      time.Duration
	// idle
	hold time.Duration
}

func (c *benchConfig) register(fs *flag.FlagSet, scenario string) {
	fs.StringVar(&c.server, "server", defaultServer, "the server's base URL; several nodes: a comma-separated list, observers assigned round-robin, publishing and the channel's id on the first, /metrics summed")
	fs.StringVar(&c.channel, "channel", "", "the channel (default: a fresh bench-<time> channel)")
	fs.StringVar(&c.transport, "transport", string(client.WebSocket), "ws, sse or poll")
	fs.IntVar(&c.n, "n", 1000, "number of observers")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow a target that is not on this machine")
	fs.BoolVar(&c.jsonOnly, "json-only", false, "print only the JSON line")
	fs.IntVar(&c.sources, "sources", 16, "loopback source addresses to spread connections over (127.0.0.1..127.0.0.S)")
	fs.IntVar(&c.concurrency, "connect-concurrency", 64, "connections being opened at once")
	fs.DurationVar(&c.wait, "wait", 10*time.Second, "how long to wait for the servers to be ready, for --await-observers, and (--observe-only) for the first message")
	fs.IntVar(&c.awaitObservers, "await-observers", 0, "after connecting, wait until the servers count this many observers of the transport in all (other bench processes' included) before publishing or holding")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 75*time.Second, "a connection silent this long is taken for dead")
	fs.StringVar(&c.target, "target", targetAnnounce, "the server's kind: announce, or nchan (nginx + nchan as in docs/nchan.conf: /sub/CH, /pub/CH)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile (pprof) to this file: what the bench costs besides the server")
	fs.IntVar(&c.pid, "pid", 0, "read the server's memory and CPU from /proc/PID instead of /metrics (needed for nchan: its worker's pid)")
	fs.StringVar(&c.caFile, "ca", "", "https/wss: a PEM file of certificates to trust besides the system's (a private CA, a self-signed certificate)")
	fs.BoolVar(&c.insecure, "insecure", false, "https/wss: do not verify the server's certificate (a throwaway one on this machine)")
	if scenario == "fanout" {
		fs.StringVar(&c.key, "publish-key", "", "the server's publish key (ANNOUNCE_PUBLISH_KEY)")
		fs.IntVar(&c.messages, "messages", 100, "messages to publish")
		fs.IntVar(&c.publishers, "publishers", 1, "concurrent publishers, each on a keep-alive connection of its own (requests written by hand, as wrk's): a message's publish starts at its time even when earlier ones wait for their acknowledgement, up to this many at once")
		fs.Float64Var(&c.rate, "rate", 20, "messages published per second")
		fs.IntVar(&c.size, "size", 0, "bytes of padding added to each message")
		fs.DurationVar(&c.drain, "drain", 15*time.Second, "how long to wait for deliveries after the last publish")
		fs.BoolVar(&c.observeOnly, "observe-only", false, "publish nothing: count the --messages another bench process publishes on --channel (at --rate), from the first one's arrival")
	} else {
		fs.DurationVar(&c.hold, "hold", 5*time.Second, "how long to hold the idle observers before measuring")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: announce bench %s [flags]\n\nEvery flag also reads ANNOUNCE_<FLAG>.\n\nFlags:\n", scenario)
		fs.PrintDefaults()
	}
}

// benchRun is one scenario's shared state: the target, how to reach it, and the observers.
type benchRun struct {
	cfg       benchConfig
	transport client.Transport
	base      *url.URL      // the first server, with any path prefix: publishing, the channel's id
	servers   []benchServer // --server: observer i connects to servers[i mod len]
	dialers   []net.Dialer  // one per source address
	client    *client.Client
	http      *http.Client // /readyz and /metrics (with --ca or --insecure for https)
	stderr    io.Writer
	tty       bool

	stopping  atomic.Bool
	stop      context.CancelFunc // ends the observers' dials
	observers []*observer
	wg        sync.WaitGroup
	connected atomic.Int64
	failed    atomic.Int64
	delivered atomic.Int64 // first deliveries of the run's messages, over all observers
}

func newBenchRun(ctx context.Context, cfg benchConfig, stderr io.Writer) (*benchRun, error) {
	tr, err := client.ParseTransport(cfg.transport)
	if err != nil {
		return nil, fmt.Errorf("--transport: %w", err)
	}
	switch {
	case cfg.n < 1:
		return nil, errors.New("-n must be at least 1")
	case cfg.sources < 1 || cfg.sources > 254:
		return nil, errors.New("--sources must be 1 to 254")
	case cfg.concurrency < 1:
		return nil, errors.New("--connect-concurrency must be at least 1")
	case cfg.messages < 0 || (cfg.messages > 0 && cfg.rate <= 0) || math.IsInf(cfg.rate, 0) || math.IsNaN(cfg.rate):
		return nil, errors.New("--messages must be >= 0 and --rate > 0")
	case cfg.target != targetAnnounce && cfg.target != targetNchan:
		return nil, fmt.Errorf("--target %q: announce or nchan", cfg.target)
	case cfg.observeOnly && (cfg.channel == "" || cfg.messages < 1):
		return nil, errors.New("--observe-only needs the publishing process's --channel and --messages")
	case cfg.awaitObservers < 0:
		return nil, errors.New("--await-observers must be >= 0")
	}
	if cfg.publishers < 1 {
		cfg.publishers = 1
	}
	servers, err := parseServers(cfg.server)
	if err != nil {
		return nil, err
	}
	tc, err := benchTLSConfig(cfg.caFile, cfg.insecure)
	if err != nil {
		return nil, err
	}
	httpc := applyTLS(servers, tc)
	u := servers[0].base
	if cfg.channel == "" {
		cfg.channel = "bench-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	b := &benchRun{cfg: cfg, transport: tr, base: u, servers: servers, stderr: stderr, http: httpc}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	loopback := true
	for _, s := range servers {
		l, err := isLoopback(ctx, s.base.Hostname())
		if err != nil {
			return nil, err
		}
		if !l && !cfg.allowRemote {
			return nil, fmt.Errorf("%s is not on this machine: a load generator aimed elsewhere is an attack; pass --allow-remote if it is yours", s.base.Hostname())
		}
		loopback = loopback && l
	}
	b.dialers = sourceDialers(u.Hostname(), loopback, cfg.sources)
	if err := raiseFileLimit(cfg.n+256, stderr); err != nil {
		return nil, err
	}
	b.client, err = client.New(client.Config{Server: u.String(), Key: cfg.key, TLSConfig: tc})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// connected or gave up, showing progress; it returns how long that took.
func (b *benchRun) openObservers(ctx context.Context, since uint64, messages int) time.Duration {
	n := b.cfg.n
	b.observers = make([]*observer, n)
	ctx, b.stop = context.WithCancel(ctx)
	sem := make(chan struct{}, b.cfg.concurrency)
	var opened sync.WaitGroup
	start := time.Now()
	stopProgress := b.progress("connecting", func() (int64, int64) { return b.connected.Load() + b.failed.Load(), int64(n) }, true)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break // interrupted: the caller closes what is open
		}
		o := newObserver(b, i, since, messages)
		b.observers[i] = o
		opened.Add(1)
		b.wg.Add(1)
		go o.run(ctx, func(err error) {
			if err != nil {
				b.failed.Add(1)
			} else {
				b.connected.Add(1)
			}
			<-sem
			opened.Done()
		})
	}
	opened.Wait()
	took := time.Since(start)
	stopProgress()
	return took
}

// closeObservers stops every observer and waits for them.
func (b *benchRun) closeObservers() {
	b.stopping.Store(true)
	if b.stop != nil {
		b.stop()
	}
	for _, o := range b.observers {
		if o != nil {
			o.closeConn()
		}
	}
	b.wg.Wait()
}

// progress draws a bar on a terminal (a line every few seconds otherwise)
// of what count returns, until the returned stop is called.
func (b *benchRun) progress(what string, count func() (done, total int64), rate bool) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	draw := func(final bool) {
		done, total := count()
		secs := time.Since(start).Seconds()
		perSec := ""
		if rate && secs > 0 {
			perSec = fmt.Sprintf("  %.0f/s", float64(done)/secs)
		}
		if b.tty {
			const width = 30
			fill := 0
			if total > 0 {
				fill = int(float64(width) * float64(done) / float64(total))
			}
			fmt.Fprintf(b.stderr, "\r%-12s [%s%s] %d/%d%s  ", what,
				strings.Repeat("#", min(fill, width)), strings.Repeat(".", width-min(fill, width)), done, total, perSec)
			if final {
				fmt.Fprintln(b.stderr)
			}
			return
		}
		fmt.Fprintf(b.stderr, "%s: %d/%d%s\n", what, done, total, perSec)
	}
	go func() {
		defer close(finished)
		every := 200 * time.Millisecond
		if !b.tty {
			every = 2 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw(false)
			case <-quit:
				if b.tty {
					draw(true)
				}
				return
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// percentile returns the p-th percentile (0..100) of sorted values.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
