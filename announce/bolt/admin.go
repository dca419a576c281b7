package bolt

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/announce/announce/announce"
)

// Channel administration (announce.ChannelAdmin): counting walks the
// channel buckets' names, Idle reads each channel's last message, and
// Delete drops the channel's bucket and its schedules in one transaction.

var _ announce.ChannelAdmin = (*Store)(nil)

// Channels implements announce.ChannelAdmin.
func (s *Store) Channels(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketChannels).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, unavailable("channels", err)
	}
	return n, nil
}

// Delete implements announce.ChannelAdmin.
func (s *Store) Delete(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketChannels).DeleteBucket([]byte(channel))
		if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		due, chans, err := schedBuckets(tx, false)
		if err != nil || due == nil || chans == nil {
			return err
		}
		cb := chans.Bucket([]byte(channel))
		if cb == nil {
			return nil
		}
		c := cb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := due.Delete(v); err != nil {
				return err
			}
		}
		return chans.DeleteBucket([]byte(channel))
	})
	if err != nil {
		return unavailable("delete", err)
	}
	return nil
}

// Idle implements announce.ChannelAdmin.
func (s *Store) Idle(ctx context.Context, before time.Time, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		root := tx.Bucket(bucketChannels)
		c := root.Cursor()
		for name, _ := c.First(); name != nil && len(out) < limit; name, _ = c.Next() {
			b := root.Bucket(name)
			if b == nil {
				continue
			}
			k, v := b.Cursor().Last()
			if k == nil {
				out = append(out, string(name))
				continue
			}
			m, err := decode(string(name), k, v)
			if err != nil {
				return err
			}
			if m.Time.Before(before) {
				out = append(out, string(name))
			}
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("idle", err)
	}
	return out, nil
}

// ScheduledTotal implements announce.ChannelAdmin.
func (s *Store) ScheduledTotal(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		due, _, err := schedBuckets(tx, false)
		if err != nil || due == nil {
			return err
		}
		n = due.Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, unavailable("scheduled total", err)
	}
	return n, nil
}
