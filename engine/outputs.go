package engine

import (
	"errors"

	"github.com/connlimit/connlimit/report"
)

// outputs are the report files, created before the run and committed after.
type outputs struct {
	csv, timeline, json, plot, shard, junit, prom *report.Output
}

// outputFlags are the report paths by flag, in the order they are written.
func (c *Config) outputFlags() []struct{ flag, path string } {
	shard := c.ShardOut
	if shard == "-" {
		shard = "" // stdout
	}
	return []struct{ flag, path string }{{"csv", c.CSV}, {"timeline", c.Timeline}, {"json", c.JSON}, {"plot", c.Plot}, {"shard-out", shard}, {"junit", c.JUnit}, {"prom", c.Prom}}
}

// checkDistinct refuses two report flags that name one file, however spelt
// (./a.json, an absolute path, a symlink, a hard link): one would be lost.
func checkDistinct(outs []struct{ flag, path string }) error {
	for i, a := range outs {
		for _, b := range outs[i+1:] {
			if a.path != "" && b.path != "" && report.SameFile(a.path, b.path) {
				return usageErr("--%s %s and --%s %s name the same file: want distinct paths", a.flag, a.path, b.flag, b.path)
			}
		}
	}
	return nil
}

// openOutputs creates every report file at once, so a path that cannot be
// written fails before the run.
func openOutputs(c *Config, temps *report.Temps) (*outputs, error) {
	if err := checkDistinct(c.outputFlags()); err != nil {
		return nil, err
	}
	o := &outputs{}
	dsts := []**report.Output{&o.csv, &o.timeline, &o.json, &o.plot, &o.shard, &o.junit, &o.prom}
	for i, f := range c.outputFlags() {
		if f.path == "" {
			continue
		}
		out, err := report.CreateOutput(f.path, temps)
		if err != nil {
			o.abort()
			switch {
			case errors.Is(err, report.ErrIsDirectory), errors.Is(err, report.ErrNotAFile):
				return nil, usageErr("--%s: %v; want a file path", f.flag, err)
			case errors.Is(err, report.ErrReadOnly):
				return nil, usageErr("--%s: %v; want a file you may write (chmod u+w) or a new path", f.flag, err)
			case errors.Is(err, report.ErrNotFollowed):
				return nil, usageErr("--%s: %v; want a path that is not through another user's link, such as the file it names", f.flag, err)
			}
			return nil, usageErr("--%s: %v; want a path in a writable directory", f.flag, err)
		}
		*dsts[i] = out
	}
	return o, nil
}

func (o *outputs) all() []*report.Output {
	var all []*report.Output
	for _, out := range []*report.Output{o.csv, o.timeline, o.json, o.plot, o.shard, o.junit, o.prom} {
		if out != nil {
			all = append(all, out)
		}
	}
	return all
}

func (o *outputs) abort() {
	for _, out := range o.all() {
		out.Abort()
	}
}
