//go:build unix

package testenv

import "syscall"

// Freeze stops the running server with SIGSTOP: it keeps its connections
// but answers nothing, as a server stalled by its machine would, until
// Thaw. It does nothing if the server is stopped.
func (s *RedisServer) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *RedisServer) Thaw() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		_ = s.proc.cmd.Process.Signal(sig)
	}
}
