// Package netpoll lets a connection wait for work without a goroutine.
//
// An idle streaming observer is a socket that nobody reads and nobody
// writes. Parking a goroutine on it costs a stack (8 KiB once grown) per
// connection; here a Poller watches every such socket with one epoll
// instance and calls back when one becomes readable, and a Serial runs a
// connection's work in a goroutine that exists only while there is work.
package conn
