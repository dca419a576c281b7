// Package chaos holds the chaos test of the Redis mode (TestChaos, `make
// chaos`): real announce processes, a real redis-server, faults at random,
// and a ledger of what every observer received.
package chaos
