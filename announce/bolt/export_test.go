package bolt

import "go.etcd.io/bbolt"

// Commits reports how many group commits the store has begun.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Writes reports how many page writes bbolt has done (dirty pages and meta
// pages), so benchmarks can show what a commit costs the disk.
func (s *Store) Writes() int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}

// Queued reports how many Appends wait for the committer.
func (s *Store) Queued() int { return len(s.queue) }

// BlockWriter holds bbolt's writer lock until release is called, so that
// the committer stalls in its next commit and Appends pile up in the queue.
func (s *Store) BlockWriter() (release func()) {
	holding, done := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.db.Update(func(*bbolt.Tx) error {
			close(holding)
			<-done
			return nil
		})
	}()
	<-holding
	return func() { close(done) }
}

// Keys counts the keys (ids) stored for channel, trimmed or not.
func (s *Store) Keys(channel string) int {
	n := 0
	_ = s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketChannels).Bucket([]byte(channel)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}
