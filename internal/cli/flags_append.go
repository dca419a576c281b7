package cli

import "strings"

// appendListFlag is a list that each use of the flag extends, with
// comma-separated values: --webhook A --webhook B,C is [A B C]. An
// ANNOUNCE_* variable counts as one use.
type appendListFlag []string

func (l *appendListFlag) String() string { return strings.Join(*l, ",") }

func (l *appendListFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
