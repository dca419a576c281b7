//go:build race && unix

package chaos_test

func init() { raceEnabled = true }
