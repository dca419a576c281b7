package storetest_test

import (
	"testing"

	"github.com/announce/announce/announce"
	"github.com/announce/announce/announce/storetest"
)

func TestMemoryStoreSchedule(t *testing.T) {
	storetest.RunSchedule(t, func(_ *testing.T, history int) announce.Store {
		return announce.NewMemoryStore(history)
	})
}
