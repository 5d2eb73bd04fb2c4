package limits

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetupNetNS readies a network namespace of the caller's own, before
// anything reads a limit: loopback up, then the net sysctls asked for (per
// namespace; zero values keep the namespace's defaults).
func SetupNetNS(procRoot string, ports PortRange, somaxconn int) error {
	if err := loopbackUp(); err != nil {
		return err
	}
	if ports.Low > 0 { // zero: keep the namespace default
		v := strconv.Itoa(ports.Low) + " " + strconv.Itoa(ports.High)
		if err := writeSysctl(procRoot, "net/ipv4/ip_local_port_range", v); err != nil {
			return err
		}
	}
	if somaxconn > 0 {
		if err := writeSysctl(procRoot, "net/core/somaxconn", strconv.Itoa(somaxconn)); err != nil {
			return err
		}
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl(SIOCGIFFLAGS, lo)", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl(SIOCSIFFLAGS, lo up)", err)
	}
	return nil
}

func writeSysctl(procRoot, name, value string) error {
	path := filepath.Join(procRoot, "sys", name)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("set %s = %s in the run's namespace: %w", name, value, err)
	}
	return nil
}
