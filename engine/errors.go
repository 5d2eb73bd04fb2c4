package engine

import (
	"fmt"
	"strings"

	"github.com/connlimit/connlimit/report"
)

// UsageError is a run that cannot be what was asked: the caller's input is
// wrong, and nothing ran. Every other error of Run is the environment's or
// the run's (a limit, a dead target), except GateError and the context's cause.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErr(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// GateError is a run that completed with a CI gate failed.
type GateError struct{ Gates []report.GateResult }

// Error is one line per failed gate.
func (e *GateError) Error() string {
	var lines []string
	for _, g := range e.Gates {
		if !g.Passed {
			lines = append(lines, fmt.Sprintf("gate %s failed: want %s, got %s", g.Gate, g.Bound, g.Got))
		}
	}
	return strings.Join(lines, "\nconnlimit: ")
}
