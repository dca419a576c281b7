package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/announce/announce/announce"
)

// Schedules (announce.ScheduleStore).
//
// On-disk layout, beside channels/:
//
//	schedules/
//	  due/               <at: 8-byte big-endian Unix nanoseconds><id> -> the schedule's JSON
//	  channels/
//	    <channel name>/  <id> -> its key in due/
//
// due/ sorts by time, so Due is a scan from the first key; the channel
// index serves Pending, Cancel and the per-channel cap. Both are created on
// first use.
//
// Fire runs in one bbolt transaction: take the schedule, append its message
// to the channel bucket (next id, history trimmed as the committer does),
// and put the message's expiry. A crash before the commit leaves the
// schedule in place; after it, the schedule is gone and the message stored.
// Fire's transactions are separate from the group commit's: bbolt runs one
// writer at a time, and both take ids with the bucket's NextSequence.
//
// An expiry message (empty content, Expired set) is stored as the JSON of
// its fields, the first value format, which decode still reads; the binary
// format has no room for Expired, and expiries are rare.

var (
	bucketSchedules = []byte("schedules")
	bucketDue       = []byte("due")
	// bucketChannels' name again, inside schedules/
	bucketSchedChannels = []byte("channels")
)

var _ announce.ScheduleStore = (*Store)(nil)

// schedBuckets returns schedules/due and schedules/channels, creating them
// when create (tx must then be writable); nil, nil when absent otherwise.
func schedBuckets(tx *bbolt.Tx, create bool) (due, chans *bbolt.Bucket, err error) {
	if !create {
		root := tx.Bucket(bucketSchedules)
		if root == nil {
			return nil, nil, nil
		}
		return root.Bucket(bucketDue), root.Bucket(bucketSchedChannels), nil
	}
	root, err := tx.CreateBucketIfNotExists(bucketSchedules)
	if err != nil {
		return nil, nil, err
	}
	if due, err = root.CreateBucketIfNotExists(bucketDue); err != nil {
		return nil, nil, err
	}
	chans, err = root.CreateBucketIfNotExists(bucketSchedChannels)
	return due, chans, err
}

// dueKey is sc's key in due/.
func dueKey(sc announce.Scheduled) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sc.ID)), uint64(sc.At.UnixNano()))
	return append(k, sc.ID...)
}

// putSchedule stores sc, replacing a schedule of the channel with its id.
func putSchedule(due, chans *bbolt.Bucket, sc announce.Scheduled) error {
	v, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	cb, err := chans.CreateBucketIfNotExists([]byte(sc.Channel))
	if err != nil {
		return err
	}
	if old := cb.Get([]byte(sc.ID)); old != nil {
		if err := due.Delete(old); err != nil {
			return err
		}
	}
	k := dueKey(sc)
	if err := due.Put(k, v); err != nil {
		return err
	}
	return cb.Put([]byte(sc.ID), k)
}

// takeSchedule removes the channel's schedule id (whose due key is k) from
// both buckets.
func takeSchedule(due, chans *bbolt.Bucket, channel, id string, k []byte) error {
	k = bytes.Clone(k) // it may point into a page the deletes below free
	if cb := chans.Bucket([]byte(channel)); cb != nil {
		if err := cb.Delete([]byte(id)); err != nil {
			return err
		}
		if first, _ := cb.Cursor().First(); first == nil {
			if err := chans.DeleteBucket([]byte(channel)); err != nil {
				return err
			}
		}
	}
	return due.Delete(k)
}

func decodeScheduled(k, v []byte) (announce.Scheduled, error) {
	var sc announce.Scheduled
	if err := json.Unmarshal(v, &sc); err != nil {
		return sc, fmt.Errorf("schedule %x: %w", k, err)
	}
	sc.At = sc.At.UTC()
	return sc, nil
}

// Schedule implements announce.ScheduleStore.
func (s *Store) Schedule(ctx context.Context, sc announce.Scheduled, max int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkAppend(sc.Channel, sc.Content); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		due, chans, err := schedBuckets(tx, true)
		if err != nil {
			return err
		}
		if max > 0 {
			if cb := chans.Bucket([]byte(sc.Channel)); cb != nil && countKeys(cb, max) >= max {
				return announce.ErrTooManyScheduled
			}
		}
		return putSchedule(due, chans, sc)
	})
	if errors.Is(err, announce.ErrTooManyScheduled) {
		return err
	}
	return unavailable("schedule", err)
}

// countKeys counts b's keys, stopping at max.
func countKeys(b *bbolt.Bucket, max int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < max; k, _ = c.Next() {
		n++
	}
	return n
}

// Cancel implements announce.ScheduleStore.
func (s *Store) Cancel(ctx context.Context, channel, id string) (announce.Scheduled, bool, error) {
	if err := ctx.Err(); err != nil {
		return announce.Scheduled{}, false, err
	}
	var sc announce.Scheduled
	var found bool
	err := s.db.Update(func(tx *bbolt.Tx) error {
		due, chans, _ := schedBuckets(tx, false)
		if due == nil || chans == nil {
			return nil
		}
		if channel == "" || id == "" {
			return nil
		}
		cb := chans.Bucket([]byte(channel))
		if cb == nil {
			return nil
		}
		k := cb.Get([]byte(id))
		if k == nil {
			return nil
		}
		var err error
		if v := due.Get(k); v != nil {
			if sc, err = decodeScheduled(k, v); err != nil {
				return err
			}
		}
		found = true
		return takeSchedule(due, chans, channel, id, k)
	})
	if err != nil {
		return announce.Scheduled{}, false, unavailable("cancel", err)
	}
	return sc, found, nil
}

// Pending implements announce.ScheduleStore.
func (s *Store) Pending(ctx context.Context, channel string, limit int) ([]announce.Scheduled, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []announce.Scheduled
	err := s.db.View(func(tx *bbolt.Tx) error {
		due, chans, _ := schedBuckets(tx, false)
		if due == nil || chans == nil || channel == "" {
			return nil
		}
		cb := chans.Bucket([]byte(channel))
		if cb == nil {
			return nil
		}
		return cb.ForEach(func(_, k []byte) error {
			v := due.Get(k)
			if v == nil {
				return nil
			}
			sc, err := decodeScheduled(k, v)
			if err == nil {
				out = append(out, sc)
			}
			return err
		})
	})
	if err != nil {
		return nil, unavailable("pending", err)
	}
	announce.SortScheduled(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Due implements announce.ScheduleStore.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]announce.Scheduled, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	var out []announce.Scheduled
	var next time.Time
	cutoff := uint64(now.UnixNano())
	err := s.db.View(func(tx *bbolt.Tx) error {
		due, _, _ := schedBuckets(tx, false)
		if due == nil {
			return nil
		}
		c := due.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("schedule key %x is too short", k)
			}
			if at := binary.BigEndian.Uint64(k); at > cutoff || (limit > 0 && len(out) >= limit) {
				next = time.Unix(0, int64(at)).UTC()
				return nil
			}
			sc, err := decodeScheduled(k, v)
			if err != nil {
				return err
			}
			out = append(out, sc)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, unavailable("due", err)
	}
	return out, next, nil
}

// Fire implements announce.ScheduleStore in one transaction.
func (s *Store) Fire(ctx context.Context, f announce.Firing) (announce.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return announce.Message{}, false, err
	}
	if err := checkAppend(f.Channel, f.Content); err != nil {
		return announce.Message{}, false, err
	}
	m := announce.Message{Channel: f.Channel, Content: f.Content, Time: f.Time.UTC(), Expired: f.Expire}
	fired := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if f.Claim {
			ok, err := claim(tx, f.Scheduled)
			if err != nil || !ok {
				return err
			}
		}
		root := tx.Bucket(bucketChannels)
		if f.Expire != 0 {
			if b := root.Bucket([]byte(f.Channel)); b == nil || b.Sequence() != f.Expire {
				return nil // superseded: the claim alone commits
			}
		}
		b, err := root.CreateBucketIfNotExists([]byte(f.Channel))
		if err != nil {
			return err
		}
		b.FillPercent = appendFillPercent
		if m.ID, err = b.NextSequence(); err != nil {
			return err
		}
		if err := b.Put(key(m.ID), encodeFired(m)); err != nil {
			return err
		}
		if err := trim(b, m.ID, s.history, trimSlack(s.history)); err != nil {
			return err
		}
		if f.TTL > 0 {
			due, chans, err := schedBuckets(tx, true)
			if err != nil {
				return err
			}
			if err := putSchedule(due, chans, f.Expiry(m)); err != nil {
				return err
			}
		}
		fired = true
		return nil
	})
	if err != nil {
		return announce.Message{}, false, unavailable("fire", err)
	}
	if !fired {
		return announce.Message{}, false, nil
	}
	return m, true, nil
}

// claim takes sc out of the schedules if it is still there, unchanged (the
// channel's expiry id may hold a newer expiry by now).
func claim(tx *bbolt.Tx, sc announce.Scheduled) (bool, error) {
	due, chans, _ := schedBuckets(tx, false)
	if due == nil || chans == nil {
		return false, nil
	}
	k := dueKey(sc)
	v := due.Get(k)
	if v == nil {
		return false, nil
	}
	if cur, err := decodeScheduled(k, v); err != nil || cur.Expire != sc.Expire {
		return false, err
	}
	return true, takeSchedule(due, chans, sc.Channel, sc.ID, k)
}

// encodeFired is m's value in its channel bucket: the binary format, or for
// an expiry the JSON one (see the top of this file).
func encodeFired(m announce.Message) []byte {
	if m.Expired == 0 {
		return encodeValue(nil, m.Time, m.Content)
	}
	v, _ := json.Marshal(struct {
		Content string    `json:"content"`
		Time    time.Time `json:"time"`
		Expired uint64    `json:"expired"`
	}{m.Content, m.Time, m.Expired}) // starts with '{', as decode expects
	return v
}
