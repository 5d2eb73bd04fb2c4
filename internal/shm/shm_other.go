//go:build !linux

package shm

import (
	"errors"
	"os"
)

// New is Linux-only (memfd_create).
func New(int) ([]byte, *os.File, error) { return nil, nil, errors.ErrUnsupported }

// Map is Linux-only.
func Map(*os.File, int) ([]byte, error) { return nil, errors.ErrUnsupported }

// Inherit is Linux-only.
func Inherit(int, int) ([]byte, error) { return nil, errors.ErrUnsupported }

// Unmap is Linux-only.
func Unmap([]byte) error { return errors.ErrUnsupported }
