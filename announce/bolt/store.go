// Package bolt is the embedded on-disk announce.Store, on go.etcd.io/bbolt.
//
// On-disk layout of Dir/announce.db:
//
//	channels/            top-level bucket
//	  <channel name>/    one sub-bucket per channel
//	    sequence         the bucket's own sequence number: the channel's last id
//	    <id>             8-byte big-endian id -> the message's value (codec.go)
//
// The last id lives in the bucket sequence rather than under a key, so every
// key in a channel bucket is an id and cursors need no special cases. Big-endian
// keys sort in id order, so Since is one Seek and a forward scan. The history
// is ids (last-History, last]; commits delete older ids a few dozen at a time
// (trim in commit.go), and reads never return them.
//
// Appends are group-committed (commit.go): one goroutine writes every Append
// that queued while the previous commit was being fsynced in one transaction,
// with one fsync, then answers them all.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/announce/announce/announce"
)

// FileName is the database file created inside Config.Dir.
const FileName = "announce.db"

// lockTimeout bounds the wait for the file lock: bbolt waits forever by
// default, so a second process on the same Dir would hang instead of failing.
const lockTimeout = time.Second

// initialMmapSize is mapped up front so that the file growing under load
// rarely remaps: a remap waits for every read transaction to end.
const initialMmapSize = 64 << 20

var bucketChannels = []byte("channels")

// Config configures Open.
type Config struct {
	Dir     string       // directory holding announce.db; created if missing
	History int          // messages kept per channel; default announce.DefaultHistory
	Logger  *slog.Logger // default discards
	// MaxBatch caps the Appends committed in one transaction (default 1024);
	// the rest wait, in order, for the next commit.
	MaxBatch int
}

// Store is an announce.Store in a bbolt file. It is safe for concurrent use.
type Store struct {
	db       *bbolt.DB
	history  int
	maxBatch int
	log      *slog.Logger

	// mu guards closed and the send on queue: Append holds it shared while
	// queueing, Close exclusively while closing the queue.
	mu      sync.RWMutex
	closed  bool // guarded by mu
	queue   chan *appendReq
	stopped chan struct{} // closed when the committer has returned
	commits atomic.Uint64 // transactions the committer began, for tests and benchmarks
}

var (
	_ announce.Store  = (*Store)(nil)
	_ announce.Pinger = (*Store)(nil)
)

// errClosed is what Append returns after Close (wrapped in ErrUnavailable).
var errClosed = errors.New("store is closed")

// Open opens (creating if needed) the store in cfg.Dir. It fails after about
// a second if another process holds the database.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("bolt: Config.Dir is required")
	}
	if cfg.History <= 0 {
		cfg.History = announce.DefaultHistory
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	path := filepath.Join(cfg.Dir, FileName)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: lockTimeout,
		// The freelist is rebuilt by a scan at open instead of being
		// written by every commit: one page less per fsync, and the file
		// stays small (history is bounded), so the scan is quick.
		NoFreelistSync:  true,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: %s is locked by another process (waited %v): %w", path, lockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketChannels)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		history:  cfg.History,
		maxBatch: cfg.MaxBatch,
		log:      cfg.Logger,
		queue:    make(chan *appendReq, cfg.MaxBatch),
		stopped:  make(chan struct{}),
	}
	go s.commitLoop()
	cfg.Logger.Info("bolt store opened", "path", path, "history", cfg.History)
	return s, nil
}

// Append implements announce.Store. Concurrent Appends are committed
// together in one transaction and fsync; each returns after that commit.
//
// A ctx that ends while the Append still waits in the queue withdraws it
// (nothing is stored, ctx's error is returned); once its commit has begun,
// Append waits for the commit's outcome, so success is never reported as
// failure.
func (s *Store) Append(ctx context.Context, channel, content string, at time.Time) (announce.Message, error) {
	if err := ctx.Err(); err != nil {
		return announce.Message{}, err
	}
	if err := checkAppend(channel, content); err != nil {
		return announce.Message{}, err
	}
	at = at.UTC()
	r := newAppendReq(channel, content, at)
	if err := s.enqueue(ctx, r); err != nil {
		return announce.Message{}, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			// The committer skips it; it still holds r, so r is not reused.
			return announce.Message{}, ctx.Err()
		}
		<-r.done // taken into a commit: its outcome is the answer
	}
	id, err := r.id, r.err
	r.release()
	if err != nil {
		return announce.Message{}, unavailable("append", err)
	}
	return announce.Message{ID: id, Channel: channel, Content: content, Time: at}, nil
}

// enqueue hands r to the committer, or fails if the store is closed or ctx ends first.
func (s *Store) enqueue(ctx context.Context, r *appendReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return unavailable("append", errClosed)
	}
	select {
	case s.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkAppend refuses what bbolt would refuse, so that one bad Append can
// never fail the others committed with it.
func checkAppend(channel, content string) error {
	switch {
	case channel == "":
		return fmt.Errorf("bolt append: %w: empty", announce.ErrInvalidChannel)
	case len(channel) > bbolt.MaxKeySize:
		return fmt.Errorf("bolt append: %w: %d bytes, bolt keys hold at most %d", announce.ErrInvalidChannel, len(channel), bbolt.MaxKeySize)
	case len(content) > bbolt.MaxValueSize-valueHeader:
		return fmt.Errorf("bolt append: %w: %d bytes, bolt values hold at most %d", announce.ErrMessageTooLarge, len(content), bbolt.MaxValueSize-valueHeader)
	}
	return nil
}

// Current implements announce.Store.
func (s *Store) Current(ctx context.Context, channel string) (announce.Message, error) {
	m := announce.Message{Channel: channel}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketChannels).Bucket([]byte(channel))
		if b == nil {
			return nil
		}
		k, v := b.Cursor().Last()
		if k == nil {
			return nil
		}
		var err error
		m, err = decode(channel, k, v)
		return err
	})
	if err != nil {
		return announce.Message{Channel: channel}, unavailable("current", err)
	}
	return m, nil
}

// Since implements announce.Store. A limit of 0 or less means no limit.
func (s *Store) Since(ctx context.Context, channel string, since uint64, limit int) ([]announce.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []announce.Message
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketChannels).Bucket([]byte(channel))
		if b == nil || since >= b.Sequence() {
			return nil
		}
		last := b.Sequence()
		if last > uint64(s.history) {
			// Ids at or below last-history are out of history even
			// while trim has not deleted them yet.
			since = max(since, last-uint64(s.history))
		}
		n := int(last - since)
		if limit > 0 {
			n = min(n, limit)
		}
		out = make([]announce.Message, 0, n)
		c := b.Cursor()
		for k, v := c.Seek(key(since + 1)); k != nil && len(out) < n; k, v = c.Next() {
			m, err := decode(channel, k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("since", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Ping implements announce.Pinger: it fails once the database is closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return unavailable("ping", s.db.View(func(*bbolt.Tx) error { return nil }))
}

// Close implements announce.Store. Appends already queued are committed
// first; later ones fail with announce.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	<-s.stopped
	path := s.db.Path() // empty once closed
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	if path != "" {
		s.log.Info("bolt store closed", "path", path)
	}
	return nil
}

func key(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id) }

// unavailable wraps err with announce.ErrUnavailable: a failing local
// database (closed, disk error, corrupt value) means the store cannot serve.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: bolt %s: %w", announce.ErrUnavailable, op, err)
}
