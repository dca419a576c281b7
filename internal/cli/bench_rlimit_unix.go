//go:build unix

package cli

import (
	"fmt"
	"io"
	"syscall"
)

// raiseFileLimit raises this process's soft limit on open files to its hard
// limit, and fails when even that is below need.
func raiseFileLimit(need int, stderr io.Writer) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			fmt.Fprintf(stderr, "announce bench: cannot raise the open-files limit from %d to %d: %v\n", lim.Cur, lim.Max, err)
		} else {
			lim = raised
		}
	}
	if uint64(need) > uint64(lim.Cur) {
		return fmt.Errorf("%d connections need about %d open files, but the limit is %d (hard limit %d): lower -n or raise the limit (ulimit -Hn)", need-256, need, lim.Cur, lim.Max)
	}
	return nil
}
