package bolt

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Group commit.
//
// Every Append queues an appendReq and waits. One goroutine, the committer,
// takes the first waiting request and every other one already queued (up to
// MaxBatch), writes them all in one bbolt transaction, whose commit fsyncs,
// and then answers them all. There is no fixed delay: a batch is whatever
// queued while the previous commit was being written and synced (plus what
// the publishers already running add, see gather), so a lone publisher pays
// one fsync and a thousand concurrent ones share a few. The queue is FIFO,
// so the publishers that waited longest go first and none is passed over.
//
// bbolt's own db.Batch does the same with a timer (it waits MaxBatchDelay
// for a batch to fill) and runs each caller's function under the batch; here
// the values are encoded by the publishers before they queue, and the
// committer only assigns ids and puts.

// Request states: the committer moves queued to taken when it starts a
// commit; a publisher whose context ends moves queued to withdrawn. Whoever
// moves it first decides whether the message is stored.
const (
	reqQueued uint32 = iota
	reqTaken
	reqWithdrawn
)

// appendReq is one Append waiting for the committer.
type appendReq struct {
	channel string
	value   []byte // encodeValue's output; bbolt keeps it until the commit ends
	key     [8]byte
	state   atomic.Uint32
	done    chan struct{} // receives once, when id and err are set

	// Set by the committer before done is signalled.
	id  uint64
	err error
}

var reqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan struct{}, 1)} }}

func newAppendReq(channel, content string, at time.Time) *appendReq {
	r := reqPool.Get().(*appendReq)
	r.channel = channel
	r.value = encodeValue(r.value[:0], at, content)
	r.state.Store(reqQueued)
	return r
}

// release returns r to the pool; only after done was received, so neither
// the committer nor bbolt holds it any more.
func (r *appendReq) release() {
	r.channel, r.err = "", nil
	if cap(r.value) > 4<<10 {
		r.value = nil // do not pin a large message's buffer in the pool
	}
	reqPool.Put(r)
}

// commitLoop is the committer; it returns when the queue is closed and drained.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	batch := make([]*appendReq, 0, s.maxBatch)
	w := &batchWriter{history: s.history, buckets: make(map[string]*bbolt.Bucket)}
	for r := range s.queue {
		s.gather()
		batch = append(batch[:0], r)
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(w, batch)
		clear(batch)
	}
}

// maxYields bounds how often gather yields before one commit.
const maxYields = 8

// gather lets the goroutines that are ready to run go first, as long as
// that adds Appends to the queue: when the CPUs are busy (an HTTP node
// under load), publishers are runnable but have not queued yet, and a
// commit taken at once would be small, and each commit costs two fsyncs'
// worth of CPU. When nothing else is runnable Gosched returns at once, so a
// lone publisher waits for nothing; the wait is never a fixed delay, only
// the CPU backlog, and at most maxYields rounds of it.
func (s *Store) gather() {
	n := len(s.queue)
	for range maxYields {
		runtime.Gosched()
		m := len(s.queue)
		if m <= n || m+1 >= s.maxBatch {
			return
		}
		n = m
	}
}

// commit writes batch in one transaction and answers every request in it.
func (s *Store) commit(w *batchWriter, batch []*appendReq) {
	live := batch[:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	s.commits.Add(1)
	err := s.db.Update(func(tx *bbolt.Tx) error { return w.write(tx, live) })
	if err != nil && len(live) > 1 {
		// Appends are checked before they queue, so this is the disk or the
		// database failing; still, retry one by one so that only the
		// requests that fail themselves report it.
		s.log.Warn("bolt group commit failed; retrying its appends one by one", "appends", len(live), "err", err)
		for _, r := range live {
			one := []*appendReq{r}
			r.err = s.db.Update(func(tx *bbolt.Tx) error { return w.write(tx, one) })
			r.done <- struct{}{}
		}
		return
	}
	for _, r := range live {
		r.err = err
		r.done <- struct{}{}
	}
}

// batchWriter writes a batch inside a transaction; it is the committer's
// and reuses its bucket map across commits.
type batchWriter struct {
	history int
	buckets map[string]*bbolt.Bucket
}

// write assigns each request its channel's next id and puts it, then trims
// every touched channel to the history limit.
func (w *batchWriter) write(tx *bbolt.Tx, reqs []*appendReq) error {
	defer clear(w.buckets) // the buckets belong to tx
	root := tx.Bucket(bucketChannels)
	for _, r := range reqs {
		b := w.buckets[r.channel]
		if b == nil {
			var err error
			if b, err = root.CreateBucketIfNotExists([]byte(r.channel)); err != nil {
				return err
			}
			// Ids only grow, so a split page never receives another key:
			// fill it, and a commit rewrites fewer pages.
			b.FillPercent = appendFillPercent
			w.buckets[r.channel] = b
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.id = id
		binary.BigEndian.PutUint64(r.key[:], id)
		if err := b.Put(r.key[:], r.value); err != nil {
			return err
		}
	}
	for _, b := range w.buckets {
		if err := trim(b, b.Sequence(), w.history, trimSlack(w.history)); err != nil {
			return err
		}
	}
	return nil
}

// appendFillPercent is how full bbolt packs a channel's pages when it
// splits them (its default, 0.5, suits random inserts).
const appendFillPercent = 0.95

// trim deletes the ids of b at or below last-history, the ones out of
// history, once there are at least slack of them. Deleting the oldest ids
// rewrites the channel's first page, so doing it in every commit would add
// a page write per channel per commit; Since and Current never read past
// the history limit, so the few stale ids left meanwhile are invisible.
func trim(b *bbolt.Bucket, last uint64, history, slack int) error {
	if last <= uint64(history) {
		return nil
	}
	cutoff := last - uint64(history)
	k, _ := b.Cursor().First()
	if k == nil || binary.BigEndian.Uint64(k)+uint64(slack) > cutoff+1 {
		return nil // fewer than slack stale ids
	}
	for {
		if err := b.Delete(k); err != nil {
			return err
		}
		// A fresh cursor each time: deleting under a cursor invalidates its position.
		k, _ = b.Cursor().First()
		if k == nil || binary.BigEndian.Uint64(k) > cutoff {
			return nil
		}
	}
}

// trimSlack is how many stale ids a channel may hold before trim deletes
// them: a quarter of the history, at least 1 and at most 64 (about a page).
func trimSlack(history int) int { return min(max(history/4, 1), 64) }
