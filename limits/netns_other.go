//go:build !linux

package limits

import "fmt"

// SetupNetNS is only implemented on Linux.
func SetupNetNS(string, PortRange, int) error {
	return fmt.Errorf("network namespaces: %w", ErrUnsupported)
}
