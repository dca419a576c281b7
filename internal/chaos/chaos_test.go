//go:build unix

package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/testenv"
)

// raceEnabled reports whether the test was built with -race (race_test.go).
var raceEnabled bool

const (
	nodeCount  = 3
	publishers = 3
	chaosCh    = "chaos"
)

// ledger is what publishers were told: id → content of every acknowledged
// message, and every content ever attempted.
type ledger struct {
	mu        sync.Mutex
	acked     map[uint64]string
	attempted map[string]bool
}

// observer follows the channel over one transport with the Go client and
// moves to another node, with its cursor, when its node is killed.
type observer struct {
	name      string
	transport client.Transport

	mu     sync.Mutex
	node   int
	got    []client.Message
	events []string // Truncated and Reset: never expected here
	move   chan int // the node to move to
}

func (o *observer) last() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) == 0 {
		return 0
	}
	return o.got[len(o.got)-1].ID
}

func (o *observer) run(ctx context.Context, clients []*client.Client) {
	for ctx.Err() == nil {
		o.mu.Lock()
		n := o.node
		o.mu.Unlock()
		since := o.last()
		sub := clients[n].Subscribe(ctx, chaosCh, client.SubscribeOptions{
			Transport: o.transport, Since: &since, MaxBackoff: time.Second,
			PollWait: 5 * time.Second, IdleTimeout: 30 * time.Second,
		})
		o.follow(ctx, sub)
		sub.Close()
	}
}

// follow takes sub's messages until the context ends or a move.
func (o *observer) follow(ctx context.Context, sub *client.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case to := <-o.move:
			o.mu.Lock()
			o.node = to
			o.mu.Unlock()
			return
		case e := <-sub.Events():
			if e.Kind == client.Truncated || e.Kind == client.Reset {
				o.mu.Lock()
				o.events = append(o.events, e.String())
				o.mu.Unlock()
			}
		case m, ok := <-sub.Messages():
			if !ok {
				return
			}
			o.mu.Lock()
			o.got = append(o.got, m)
			o.mu.Unlock()
		}
	}
}

// figures are the chaos run's results.
type figures struct {
	faults                                 map[string]int
	acked, failed, unackedSeen             int
	lost, duplicated, reordered, badEvents int
}

// fault is one kind of fault a chaos run injects at random; inject
// returns once the system is whole again (a killed process restarted).
type fault struct {
	name   string
	inject func(d *dice)
}

// dice is a chaos run's randomness: which node, how long.
type dice struct{ rng *rand.Rand }

func (d *dice) node() int { return d.rng.IntN(nodeCount) }

// pause sleeps between lo and hi.
func (d *dice) pause(lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(d.rng.Int64N(int64(hi-lo))))
}

// ciDuration is how long each mode runs without ANNOUNCE_CHAOS_DURATION:
// the two modes together stay near three minutes in `make test`.
const ciDuration = 90 * time.Second

// TestChaos runs three announce nodes on one Redis (appendonly yes) with
// publishers and observers of every transport while faults strike at
// random: kill -9 of a node (restarted later, its observers moving to
// another node with their cursors), a Redis restart, and a node's Redis
// link paused or cut. At the end every observer must hold every
// acknowledged message exactly once, in order.
func TestChaos(t *testing.T) {
	duration := testenv.Duration(t, "ANNOUNCE_CHAOS_DURATION", ciDuration) // `make chaos` sets it
	r := testenv.StartRedisWith(t, testenv.RedisOptions{AppendOnly: true})
	proxies := make([]*linkProxy, nodeCount)
	for i := range proxies {
		proxies[i] = newLinkProxy(t, r.Addr)
	}
	runChaos(t, duration, func(i int) string { return "redis://" + proxies[i].Addr + "/0" },
		fault{"redis restart", func(d *dice) {
			r.Stop()
			d.pause(200*time.Millisecond, 2*time.Second)
			r.Start()
		}},
		fault{"redis link paused", func(d *dice) {
			i := d.node()
			proxies[i].pause()
			d.pause(500*time.Millisecond, 3*time.Second)
			proxies[i].resume()
		}},
		fault{"redis link cut", func(d *dice) { proxies[d.node()].cut() }},
	)
}

// runChaos runs the chaos test for duration on nodes whose --redis URL is
// redisURL(i): kill -9 of a node and the faults strike at random, then
// the ledger is checked.
func runChaos(t *testing.T, duration time.Duration, redisURL func(i int) string, faults ...fault) {
	bin := buildAnnounce(t)
	nodes := make([]*proc, nodeCount)
	clients := make([]*client.Client, nodeCount)
	for i := range nodes {
		nodes[i] = startProc(t, bin, "--redis", redisURL(i), "--history", "1000000",
			"--poll-timeout", "5s", "--shutdown-timeout", "2s")
		c, err := client.New(client.Config{Server: nodes[i].URL, Retries: 30})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var obs []*observer
	var obsWG sync.WaitGroup
	for i := range nodeCount {
		for _, tr := range []client.Transport{client.WebSocket, client.SSE, client.Poll} {
			o := &observer{name: fmt.Sprintf("%s observer starting on node %d", tr, i), transport: tr,
				node: i, move: make(chan int, 1)}
			obs = append(obs, o)
			obsWG.Go(func() { o.run(ctx, clients) })
		}
	}

	l := &ledger{acked: map[uint64]string{}, attempted: map[string]bool{}}
	var failed atomic.Int64
	pubCtx, stopPublishing := context.WithCancel(ctx)
	var pubWG sync.WaitGroup
	for p := range publishers {
		pubWG.Go(func() {
			for j := 0; pubCtx.Err() == nil; j++ {
				content := fmt.Sprintf("p%d-%07d", p, j)
				l.mu.Lock()
				l.attempted[content] = true
				l.mu.Unlock()
				m, err := clients[(p+j)%nodeCount].Publish(pubCtx, chaosCh, content)
				if err != nil {
					if pubCtx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				l.mu.Lock()
				if prev, dup := l.acked[m.ID]; dup {
					t.Errorf("id %d acknowledged twice: %q and %q", m.ID, prev, content)
				}
				l.acked[m.ID] = content
				l.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	f := figures{faults: map[string]int{}}
	d := &dice{rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))}
	faults = append(faults, fault{"node kill -9", func(d *dice) {
		i := d.node()
		nodes[i].kill()
		for _, o := range obs {
			o.mu.Lock()
			on := o.node == i
			o.mu.Unlock()
			if on {
				select { // a move still pending takes it away from i as well
				case o.move <- (i + 1 + d.rng.IntN(nodeCount-1)) % nodeCount:
				default:
				}
			}
		}
		d.pause(time.Second, 4*time.Second)
		nodes[i].start()
	}})
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		d.pause(2*time.Second, 5*time.Second)
		fl := faults[d.rng.IntN(len(faults))]
		fl.inject(d)
		f.faults[fl.name]++
	}
	stopPublishing()
	pubWG.Wait()

	l.mu.Lock()
	var top uint64
	for id := range l.acked {
		top = max(top, id)
	}
	f.acked, f.failed = len(l.acked), int(failed.Load())
	l.mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for _, o := range obs {
		for o.last() < top && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	obsWG.Wait()

	for _, o := range obs {
		check(t, o, l, &f)
	}
	t.Logf("%s for %v: faults injected %d %v; acknowledged %d (publishes given up after retries: %d); "+
		"per observer (%d): lost %d, duplicated %d, reordered %d, unacknowledged seen %d, truncated/reset events %d",
		t.Name(), duration, sum(f.faults), f.faults, f.acked, f.failed, len(obs), f.lost, f.duplicated, f.reordered, f.unackedSeen, f.badEvents)
	fmt.Printf("CHAOS %s faults=%d %v acknowledged=%d lost=%d duplicated=%d reordered=%d\n",
		t.Name(), sum(f.faults), f.faults, f.acked, f.lost, f.duplicated, f.reordered)
	if f.lost+f.duplicated+f.reordered+f.badEvents > 0 {
		t.Fatalf("the ledger does not balance")
	}
}

// check compares one observer's messages with the ledger.
func check(t *testing.T, o *observer, l *ledger, f *figures) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := make(map[string]uint64, len(o.got))
	byID := make(map[uint64]string, len(o.got))
	lastSeq := map[string]int{}
	var prev uint64
	for _, m := range o.got {
		if m.ID <= prev {
			f.reordered++
			t.Errorf("%s: id %d after %d", o.name, m.ID, prev)
		}
		prev = m.ID
		byID[m.ID] = m.Content
		if id, dup := seen[m.Content]; dup {
			f.duplicated++
			t.Errorf("%s: %q as id %d and id %d", o.name, m.Content, id, m.ID)
			continue // not a reordering too
		}
		seen[m.Content] = m.ID
		pub, seqText, _ := strings.Cut(m.Content, "-")
		seq, _ := strconv.Atoi(seqText)
		if last, ok := lastSeq[pub]; ok && seq <= last {
			f.reordered++
			t.Errorf("%s: %q after %s-%07d", o.name, m.Content, pub, last)
		}
		lastSeq[pub] = seq
		if c, ok := l.acked[m.ID]; ok && c != m.Content {
			t.Errorf("%s: id %d carries %q, acknowledged as %q", o.name, m.ID, m.Content, c)
			f.duplicated++
		} else if !ok {
			if !l.attempted[m.Content] {
				t.Errorf("%s: id %d carries %q, which nobody published", o.name, m.ID, m.Content)
			}
			f.unackedSeen++
		}
	}
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range l.acked {
			if !yield(id) {
				return
			}
		}
	})
	missing := 0
	for _, id := range ids {
		if _, ok := byID[id]; !ok {
			missing++
			if missing <= 5 {
				t.Errorf("%s: acknowledged id %d (%q) never arrived", o.name, id, l.acked[id])
			}
		}
	}
	f.lost += missing
	if len(o.events) > 0 {
		f.badEvents += len(o.events)
		t.Errorf("%s: %v", o.name, o.events)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
