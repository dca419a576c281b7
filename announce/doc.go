// Package announce is the domain of the announcement server: channels are
// subjects in the observer pattern, holding a current message and a short
// history, and notifying their observers when a new message is published.
//
// Concurrency contract:
//   - A Channel's lock guards its observer registry, current message and
//     history only; no I/O happens under it.
//   - Publishing never waits on an observer: delivery puts a shared,
//     pre-encoded Envelope on each observer's bounded queue, and an observer
//     whose queue is full is closed with ErrSlowConsumer.
//   - Subscribe registers an observer and reads its replay under one lock,
//     so no message falls between replay and live delivery and none comes twice.
//   - The Store assigns ids; a Channel applies messages strictly in id order,
//     buffering early arrivals and filling gaps from the Store.
package announce
