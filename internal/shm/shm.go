// Package shm shares a block of counters between connlimit and a child
// process: both map one memfd, the child updates its counters in place and
// the parent reads them whenever it samples. A child then never wakes to
// report progress; in a million-connection ramp a hundred children sending
// stats every 100 ms cost the ramp several seconds.
package shm

import (
	"fmt"
	"unsafe"
)

// At views the start of mem as a T. T must hold no Go pointers (atomic
// integers only): the memory is outside the Go heap.
func At[T any](mem []byte) *T {
	var zero T
	if uintptr(len(mem)) < unsafe.Sizeof(zero) {
		panic(fmt.Sprintf("shm: %d bytes mapped, %T needs %d", len(mem), zero, unsafe.Sizeof(zero)))
	}
	return (*T)(unsafe.Pointer(unsafe.SliceData(mem)))
}
