//go:build unix

package chaos_test

import (
	"testing"

	"github.com/announce/announce/internal/testenv"
)

// TestChaosSentinel is TestChaos on Redis Sentinel (a master and a replica,
// both appendonly yes, three sentinels): the faults are kill -9 of a node,
// a forced failover (SENTINEL FAILOVER) and kill -9 of the master, which
// the sentinels replace by its replica and which comes back as the new
// master's replica. The ledger check is the same: a publish is
// acknowledged, and published, only once the replica has it, so no
// failover takes back what anybody was told or shown.
func TestChaosSentinel(t *testing.T) {
	duration := testenv.Duration(t, "ANNOUNCE_CHAOS_DURATION", ciDuration) // `make chaos` sets it
	s := testenv.StartSentinel(t)
	runChaos(t, duration, func(int) string { return s.URL },
		fault{"sentinel failover", func(*dice) { s.Failover() }},
		fault{"redis master kill -9", func(*dice) { s.KillMaster() }},
	)
}
