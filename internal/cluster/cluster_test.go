package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// observeEverywhere attaches one observer of every kind to ch on each node,
// each resuming after since, and waits until they are connected.
func observeEverywhere(t *testing.T, ch string, nodes []*node, since *uint64) []*observer {
	t.Helper()
	var obs []*observer
	for _, n := range nodes {
		for _, k := range allKinds {
			obs = append(obs, newObserver(t, k, ch, []string{n.URL()}, since))
		}
	}
	waitConnected(t, obs)
	return obs
}

// checkAll runs the exact check on stream and log observers and the rising
// check on /status loops, all up to id to.
func checkAll(t *testing.T, obs []*observer, l *ledger, to uint64) (unacked int) {
	t.Helper()
	for _, o := range obs {
		checkClean(t, o)
		if o.kind == statusKind {
			checkRising(t, o, l, o.messages(), to)
			continue
		}
		unacked += checkExact(t, o, l, o.messages(), 1, to)
	}
	return unacked
}

// Three nodes on one Redis are one service: messages published alternately
// on every node, by three concurrent publishers, reach the observers of
// every transport on every node with one id sequence 1..N, in order, no gap,
// no duplicate.
func TestThreeNodesOneSequence(t *testing.T) {
	t.Parallel()
	const publishers, each = 3, 100
	r := testenv.StartRedis(t)
	// History covers the whole test, so an observer that falls behind under
	// -race still catches up rather than being truncated: this test is about
	// order and ids, not about history limits.
	nodes := startCluster(t, r.Addr, 3, func(c *serve.Config) { c.History = 1000 })
	const ch = "cluster"
	obs := observeEverywhere(t, ch, nodes, ptr(0))

	l := newLedger()
	var wg sync.WaitGroup
	errs := make(chan error, publishers*each)
	for p := range publishers {
		wg.Go(func() {
			for j := range each {
				base := nodes[(p+j)%len(nodes)].URL()
				content := fmt.Sprintf("p%d-%03d via %s", p, j, base)
				l.attempt(content)
				res := publish(context.Background(), base, ch, content)
				if res.fail != nil || res.status != http.StatusCreated {
					errs <- fmt.Errorf("publishing %q: status %d %q %v", content, res.status, res.err, res.fail)
					return
				}
				if err := l.ack(res.msg); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const n = publishers * each
	for id := uint64(1); id <= n; id++ {
		if l.content(id) == "" {
			t.Fatalf("no publish was acknowledged with id %d; the %d acknowledged ids must be exactly 1..%d", id, n, n)
		}
	}
	waitReached(t, obs, n, l.content(n))
	if unacked := checkAll(t, obs, l, n); unacked > 0 {
		t.Errorf("%d messages delivered that no publisher was told about", unacked)
	}
	for _, o := range obs {
		if o.kind == wsKind || o.kind == sseKind {
			checkStayed(t, o)
		}
	}
	for _, nd := range nodes {
		var info struct {
			Current struct {
				ID uint64 `json:"id"`
			} `json:"current"`
		}
		if err := get(context.Background(), nd.URL()+"/channels/"+ch, &info); err != nil || info.Current.ID != n {
			t.Errorf("GET %s/channels/%s: current id %d, %v; want %d", nd.URL(), ch, info.Current.ID, err, n)
		}
	}
}

// An observer carries its cursor from node to node: it reads some messages
// on node A, disconnects, misses some while away, reconnects to node B with
// its cursor (Last-Event-ID, ?since=) and gets exactly what it missed, then
// the live messages.
func TestCursorMovesAcrossNodes(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	nodes := startCluster(t, r.Addr, 3, nil)
	a, b, pub := nodes[0], nodes[1], nodes[2].URL()
	const ch = "roaming"
	var obs []*observer
	for _, k := range allKinds {
		obs = append(obs, newObserver(t, k, ch, urls(a, b), ptr(0)))
	}
	waitConnected(t, obs)
	l := newLedger()
	var last string
	publishRange := func(from, to int) {
		for i := from; i <= to; i++ {
			last = fmt.Sprintf("message %d", i)
			mustPublish(t, l, pub, ch, last)
		}
	}

	publishRange(1, 40)
	waitReached(t, obs, 40, last)
	for _, o := range obs {
		o.pause()
	}
	for _, o := range obs {
		testenv.WaitFor(t, settle, o.name+" to disconnect", func() bool { return !o.connected() })
	}
	publishRange(41, 70) // missed while away
	for _, o := range obs {
		o.resume()
	}
	publishRange(71, 100) // live, or replayed, as each observer reconnects
	waitReached(t, obs, 100, last)

	for _, o := range obs {
		checkClean(t, o)
		if o.kind == statusKind {
			checkRising(t, o, l, o.messages(), 100)
		} else {
			checkExact(t, o, l, o.messages(), 1, 100)
		}
		o.mu.Lock()
		visited := o.visited
		o.mu.Unlock()
		if len(visited) != 2 || visited[0] != a.URL() || visited[1] != b.URL() {
			t.Errorf("%s connected to %v; want %s, then %s", o.name, visited, a.URL(), b.URL())
		}
	}
}

// When a node shuts down, its observers reconnect to another node with their
// cursor and lose nothing of what was published meanwhile on the others.
func TestNodeShutdownObserversMove(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	nodes := startCluster(t, r.Addr, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const ch = "failover"
	var obs []*observer
	for _, k := range allKinds {
		obs = append(obs, newObserver(t, k, ch, urls(a, b), ptr(0)))
	}
	waitConnected(t, obs)

	l := newLedger()
	const total = 200
	lastContent := make(chan string, 1)
	published := make(chan struct{}, total)
	ctx, cancel := context.WithCancel(context.Background())
	publisher := make(chan struct{})
	t.Cleanup(func() { cancel(); <-publisher }) // before the nodes stop
	go func() {
		defer close(publisher)
		var content string
		for i := 1; i <= total; i++ {
			base := []string{b.URL(), c.URL()}[i%2]
			content = fmt.Sprintf("message %d via %s", i, base)
			l.attempt(content)
			res := publish(ctx, base, ch, content)
			if ctx.Err() != nil {
				return // the test is over
			}
			if res.fail != nil || res.status != http.StatusCreated {
				t.Errorf("publishing %q: status %d %q %v", content, res.status, res.err, res.fail)
				break
			}
			if err := l.ack(res.msg); err != nil {
				t.Error(err)
			}
			published <- struct{}{}
		}
		lastContent <- content
	}()

	// Shut node A down in the middle of the stream, once its observers
	// have had a share of it.
	testenv.WaitFor(t, settle, "60 publishes", func() bool { return len(published) >= 60 })
	waitAtLeast(t, obs, l.maxID())
	if err := a.stop(); err != nil {
		t.Errorf("shutting down node A: %v", err)
	}
	content := <-lastContent
	if t.Failed() {
		t.FailNow()
	}
	waitReached(t, obs, total, content)

	for _, o := range obs {
		checkClean(t, o)
		if o.kind == statusKind {
			checkRising(t, o, l, o.messages(), total)
		} else {
			checkExact(t, o, l, o.messages(), 1, total)
		}
		o.mu.Lock()
		visited, drops := o.visited, o.drops
		o.mu.Unlock()
		if len(visited) < 2 || visited[0] != a.URL() || visited[len(visited)-1] != b.URL() {
			t.Errorf("%s connected to %v; want %s first and %s last", o.name, visited, a.URL(), b.URL())
		}
		if o.kind == wsKind && (len(drops) == 0 || drops[0] != a.URL()+": closed with 1001") {
			t.Errorf("%s: drops %v; want the first to be a close 1001 (going away)", o.name, drops)
		}
	}
}

// A node whose pub/sub lags behind the store (a slow link, a reconnect)
// catches up from the store when a client arrives with a cursor it has not
// reached: the client gets what follows its cursor, not the node's older
// current message, which a client must take for a reset store. Each
// transport arrives alone, so that no other client's visit helps the node.
func TestLaggingNodeCatchesUpToCursor(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	proxy := newRedisProxy(t, r.Addr)
	a := startCluster(t, r.Addr, 1, nil)[0]
	b := startCluster(t, proxy.Addr, 1, nil)[0]
	for _, k := range allKinds {
		t.Run(string(k), func(t *testing.T) {
			ch := "lag-" + string(k)
			local := newObserver(t, wsKind, ch, urls(b), ptr(0)) // B watches the channel
			mover := newObserver(t, k, ch, urls(a, b), ptr(0), func(o *observer) { o.pollWait = "0.2" })
			all := []*observer{local, mover}
			waitConnected(t, all)

			l := newLedger()
			var last string
			publishRange := func(from, to int) {
				for i := from; i <= to; i++ {
					last = fmt.Sprintf("message %d", i)
					mustPublish(t, l, a.URL(), ch, last)
				}
			}
			publishRange(1, 5)
			waitReached(t, all, 5, last)

			proxy.hold() // B hears nothing from pub/sub now
			defer proxy.release()
			publishRange(6, 8)
			waitReached(t, []*observer{mover}, 8, last) // on A
			var info struct {
				Current struct {
					ID uint64 `json:"id"`
				} `json:"current"`
				Observers map[string]int `json:"observers"`
			}
			if err := get(context.Background(), b.URL()+"/channels/"+ch, &info); err != nil || info.Current.ID != 5 {
				t.Fatalf("node B: current id %d, %v; want 5 (lagging behind the held pub/sub)", info.Current.ID, err)
			}

			mover.pause()
			testenv.WaitFor(t, settle, "the mover to disconnect", func() bool { return !mover.connected() })
			rounds := mover.polls()
			mover.resume() // to B, with cursor 8
			switch k {
			case wsKind, sseKind:
				testenv.WaitFor(t, settle, "the mover to attach to node B", func() bool {
					err := get(context.Background(), b.URL()+"/channels/"+ch, &info)
					return err == nil && info.Observers["ws"]+info.Observers["sse"] == 2
				})
			default:
				// Two answered polls: an empty log answer on a lagging node,
				// checked against the channel's current id, must not look
				// like a reset store either.
				testenv.WaitFor(t, settle, "two polls on node B", func() bool { return mover.polls() >= rounds+2 })
			}
			proxy.release()
			publishRange(9, 10)
			waitReached(t, all, 10, last)

			checkClean(t, local)
			checkExact(t, local, l, local.messages(), 1, 10)
			checkClean(t, mover)
			if k == statusKind {
				checkRising(t, mover, l, mover.messages(), 10)
			} else {
				checkExact(t, mover, l, mover.messages(), 1, 10)
			}
		})
	}
}
