// Package epoll is an epoll set that waits the way a Go program should: a
// busy loop in epoll_wait for at most a few milliseconds at a time, an idle
// one parked in the netpoller.
//
// A goroutine blocked in a system call for over 10 ms makes the runtime's
// sysmon thread take its P back and then poll every 20 µs for a while; with
// a hundred connlimit processes each waiting in epoll_wait, sysmon alone
// took a tenth of the machine. Parked in the netpoller, an idle process lets
// sysmon sleep; a busy loop polls and never parks, because once the set is
// in the netpoller every event in it wakes the netpoller as well.
package epoll
