//go:build !linux

package testenv

import "os/exec"

// StartProcess starts cmd and records its exit: *werr is cmd.Wait's result
// once done is closed. Without Pdeathsig, a crashed test binary leaves the
// child running until it is killed.
func StartProcess(cmd *exec.Cmd, werr *error, done chan<- struct{}) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		*werr = cmd.Wait()
		close(done)
	}()
	return nil
}
