// Package cluster tests scale-out on Redis: several announce nodes started
// with serve.Start on one real redis-server (internal/testenv), observed over
// every transport with small hand-written clients, while the tests publish
// on every node, move observers between nodes, shut nodes down and kill and
// restart Redis, with and without persistence.
//
// What every test asserts is the product promise: one id sequence for the
// whole service, and every acknowledged message delivered to every observer
// exactly once, in order, wherever it is attached.
//
// BenchmarkCrossNode measures publish-to-delivery latency and publishes per
// second through Redis between two nodes:
//
//	go test -run '^$' -bench CrossNode -benchtime 2000x ./internal/cluster/
package cluster
