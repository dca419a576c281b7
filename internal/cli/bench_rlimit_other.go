//go:build !unix

package cli

import "io"

// raiseFileLimit has nothing to raise here.
func raiseFileLimit(int, io.Writer) error { return nil }
