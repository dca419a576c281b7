//go:build !linux

package testenv

import "os/exec"

// startProcess starts cmd and records its exit in p.
func startProcess(cmd *exec.Cmd, p *redisProcess) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return nil
}
