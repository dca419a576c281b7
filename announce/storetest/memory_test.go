package storetest_test

import (
	"testing"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(_ *testing.T, history int) announce.Store {
		return announce.NewMemoryStore(history)
	})
}

func BenchmarkAppend(b *testing.B) {
	s := announce.NewMemoryStore(announce.DefaultHistory)
	defer s.Close()
	storetest.BenchAppend(b, s)
}

func TestMemoryStoreAdmin(t *testing.T) {
	storetest.RunAdmin(t, func(_ *testing.T, history int) announce.Store {
		return announce.NewMemoryStore(history)
	})
}
