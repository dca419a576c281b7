package bolt

// Commits reports how many group commits the store has run.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Writes reports how many page writes bbolt has done (dirty pages and meta
// pages), so benchmarks can show what a commit costs the disk.
func (s *Store) Writes() int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}
