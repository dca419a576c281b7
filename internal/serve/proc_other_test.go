//go:build unix && !linux

package serve_test

import "os/exec"

// startProcess starts cmd and records its exit: *werr is cmd.Wait's result
// once done is closed. Without Pdeathsig, a crashed test binary leaves the
// child running until it is killed.
func startProcess(cmd *exec.Cmd, werr *error, done chan<- struct{}) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		*werr = cmd.Wait()
		close(done)
	}()
	return nil
}
