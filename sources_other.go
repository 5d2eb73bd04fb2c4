//go:build !linux

package main

import (
	"net/netip"

	"github.com/connlimit/connlimit/limits"
)

func checkSources([]netip.Addr) error { return limits.ErrUnsupported }
