package cluster_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/announce/announce/internal/serve"
	"github.com/announce/announce/internal/testenv"
)

// TestWelcomeOnceWhenNodesStartTogether: nodes starting at the same time on
// a fresh Redis all find the default channel empty; the --welcome is still
// published once, and a node with other words adds none.
func TestWelcomeOnceWhenNodesStartTogether(t *testing.T) {
	t.Parallel()
	addr := testenv.Redis(t)
	for round := range 3 {
		db := "redis://" + addr + "/" + strconv.Itoa(round+1)
		var wg sync.WaitGroup
		nodes := make([]*node, 4)
		for i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				welcome := "Welcome!"
				if i == 3 {
					welcome = "Hello from the last node"
				}
				nodes[i] = startNode(t, serve.Config{Redis: db, Welcome: welcome})
			}()
		}
		wg.Wait()
		var log []struct {
			ID      uint64
			Content string
		}
		if err := get(t.Context(), "http://"+nodes[0].Addr()+"/channels/default/messages?since=0", &log); err != nil {
			t.Fatal(err)
		}
		if len(log) != 1 || log[0].ID != 1 {
			t.Fatalf("round %d: the default channel holds %+v, want one welcome", round, log)
		}
	}
}
