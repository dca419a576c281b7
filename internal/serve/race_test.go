//go:build race && unix

package serve_test

func init() { raceEnabled = true }
