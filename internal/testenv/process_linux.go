package testenv

import (
	"os/exec"
	"runtime"
	"syscall"
)

// StartProcess starts cmd so that the kernel kills it if the test binary dies
// without running its cleanups (a -timeout panic, a crash), and records its
// exit: *werr is cmd.Wait's result once done is closed.
//
// Pdeathsig fires when the OS thread that forked the child exits, not the
// process (go.dev/issue/27505). So the child is started and waited for from
// one goroutine locked to its thread for the child's whole life.
func StartProcess(cmd *exec.Cmd, werr *error, done chan<- struct{}) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = new(syscall.SysProcAttr)
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		*werr = cmd.Wait()
		close(done)
	}()
	return <-started
}
