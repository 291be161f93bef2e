package main

import (
	"github.com/patchbay/patchbay/plan"
)

// Output formats of plan.
const (
	formatText     = "text"
	formatJSON     = "json"
	formatMarkdown = "markdown"
)

// outputFormat is --format, with --json as its older spelling.
func (f planFlags) outputFormat() (string, error) {
	switch {
	case f.asJSON && f.format != formatText && f.format != formatJSON:
		return "", usageErrorf("--json and --format %s disagree: give one of them", f.format)
	case f.asJSON:
		return formatJSON, nil
	}
	switch f.format {
	case formatText, formatJSON, formatMarkdown:
		return f.format, nil
	}
	return "", usageErrorf("--format %q: want text, json or markdown", f.format)
}

// showPlanMarkdown prints p as a pull-request comment; something to
// change exits 3, as the other formats do.
func (a *app) showPlanMarkdown(p *plan.Plan) error {
	if err := p.WriteMarkdown(a.stdout, plan.MaxComment); err != nil {
		return err
	}
	if p.Changed() {
		return alreadyReported{errChanges}
	}
	return nil
}
