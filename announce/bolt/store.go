// Package bolt is the embedded on-disk announce.Store, on go.etcd.io/bbolt.
//
// On-disk layout of Dir/announce.db:
//
//	channels/            top-level bucket
//	  <channel name>/    one sub-bucket per channel
//	    sequence         the bucket's own sequence number: the channel's last id
//	    <id>             8-byte big-endian id -> JSON of announce.Message
//
// The last id lives in the bucket sequence rather than under a key, so every
// key in a channel bucket is an id and cursors need no special cases. Big-endian
// keys sort in id order, so Since is one Seek and a forward scan. Only ids in
// (last-History, last] are kept; Append deletes older ones in its transaction.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

var bucketChannels = []byte("channels")

// Config configures Open.
type Config struct {
	Dir     string       // directory holding announce.db; created if missing
	History int          // messages kept per channel; default announce.DefaultHistory
	Logger  *slog.Logger // default discards
}

// Store is an announce.Store in a bbolt file. It is safe for concurrent use.
type Store struct {
	db      *bbolt.DB
	history int
	log     *slog.Logger
}

var (
	_ announce.Store  = (*Store)(nil)
	_ announce.Pinger = (*Store)(nil)
)

// Open opens (creating if needed) the store in cfg.Dir. It fails after about
// a second if another process holds the database.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("bolt: Config.Dir is required")
	}
	if cfg.History <= 0 {
		cfg.History = announce.DefaultHistory
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	path := filepath.Join(cfg.Dir, FileName)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: %s is locked by another process (waited %v): %w", path, lockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	// Bolt's default waits 10ms for a batch to fill. Publishers arriving while a
	// commit is being fsynced already queue up for the next batch, so a short
	// wait keeps group commit while sparing a lone publisher most of the delay.
	db.MaxBatchDelay = time.Millisecond
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketChannels)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", path, err)
	}
	cfg.Logger.Info("bolt store opened", "path", path, "history", cfg.History)
	return &Store{db: db, history: cfg.History, log: cfg.Logger}, nil
}

// Append implements announce.Store. Concurrent Appends are committed
// together in one transaction and fsync; each returns after that commit.
func (s *Store) Append(ctx context.Context, channel, content string, at time.Time) (announce.Message, error) {
	if err := ctx.Err(); err != nil {
		return announce.Message{}, err
	}
	var m announce.Message
	// Batch may run this function more than once (it retries a batch without a
	// failed member), so it derives everything from the transaction and only
	// overwrites m: the run that commits is the one whose m is returned.
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		b, err := tx.Bucket(bucketChannels).CreateBucketIfNotExists([]byte(channel))
		if err != nil {
			return err
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		m = announce.Message{ID: id, Channel: channel, Content: content, Time: at.UTC()}
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := b.Put(key(id), v); err != nil {
			return err
		}
		return s.trim(b, id)
	})
	if err != nil {
		return announce.Message{}, unavailable("append", err)
	}
	return m, nil
}

// trim deletes the ids of b at or below last-history. Usually that is one
// key; more after the store is reopened with a smaller history.
func (s *Store) trim(b *bbolt.Bucket, last uint64) error {
	if last <= uint64(s.history) {
		return nil
	}
	cutoff := last - uint64(s.history)
	for {
		// A fresh cursor each time: deleting under a cursor invalidates its position.
		k, _ := b.Cursor().First()
		if k == nil || binary.BigEndian.Uint64(k) > cutoff {
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
	}
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
		_, v := b.Cursor().Last()
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &m)
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
		c := b.Cursor()
		for k, v := c.Seek(key(since + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var m announce.Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("since", err)
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

// Close implements announce.Store. It waits for running transactions.
func (s *Store) Close() error {
	path := s.db.Path() // empty once closed
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	s.log.Info("bolt store closed", "path", path)
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
