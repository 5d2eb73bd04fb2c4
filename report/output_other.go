//go:build !unix

package report

import (
	"errors"
	"io/fs"
)

const nonBlock = 0

func mayFollow(string, fs.FileInfo) error { return nil }

func writable(string) error { return nil }

func ownerOf(fs.FileInfo) (uid, gid int) { return -1, -1 }

func dupFD(int) (int, error) { return -1, errors.ErrUnsupported }
