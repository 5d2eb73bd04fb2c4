//go:build !linux

package target

import (
	"context"
	"net"
)

// connLoop is Linux's epoll loop; elsewhere every connection has a goroutine.
type connLoop struct{}

func newConnLoop(*server, string, int) (*connLoop, error) { return nil, nil }

func (*connLoop) Close() error    { return nil }
func (*connLoop) Addr() net.Addr  { return nil }
func (*connLoop) listenerFd() int { return -1 }

func (*connLoop) fd() int               { return -1 }
func (*connLoop) accept() (conn, error) { panic("unreachable") }
func (*connLoop) add(conn, uint64)      {}
func (*connLoop) discard(conn)          {}
func (*connLoop) run(context.Context)   {}
func (*connLoop) closeAll()             {}
