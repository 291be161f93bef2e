package model

import (
	"bytes"

	"github.com/patchbay/patchbay/manifest"
)

// How a changed file takes effect.
const (
	ApplyInstall = "install"     // installed; the template has no reload command
	ApplyReload  = "reload"      // installed, then its reload command runs
	ApplyRuntime = "runtime_api" // installed, and HAProxy's servers changed over its runtime API
)

// File is what a run decides for one rendered template.
type File struct {
	// Changed says the rendered file differs from the installed one (or
	// none is installed).
	Changed bool
	// Apply is how a change takes effect (ApplyInstall, ApplyReload or
	// ApplyRuntime); "" when nothing changes.
	Apply string
	// Why says why a runtime-API-capable change reloads instead.
	Why string
	// Runtime are the server changes to make over the runtime API
	// (ApplyRuntime only); the reload runs instead if they fail.
	Runtime *HAProxyChanges
}

// Decide says whether a rendered file changes and how the change takes
// effect. previous is the installed file, existed whether there was one.
func Decide(spec manifest.TemplateFile, previous []byte, existed bool, content []byte) File {
	f := File{Changed: !existed || !bytes.Equal(previous, content)}
	if !f.Changed {
		return f
	}
	if len(spec.Reload) == 0 {
		f.Apply = ApplyInstall
		return f
	}
	f.Apply = ApplyReload
	f.Runtime, f.Why = Runtime(spec, previous, existed, content)
	if f.Runtime != nil {
		f.Apply = ApplyRuntime
	}
	return f
}

// Hitless reports whether spec asks for HAProxy's runtime API.
func Hitless(spec manifest.TemplateFile) bool {
	return spec.Source == manifest.BuiltinPrefix+"haproxy" && spec.Options["runtime_api"] == "true"
}

// Runtime are the runtime API changes that replace a reload, or
// why there are none ("" when the template does not ask for it).
func Runtime(spec manifest.TemplateFile, previous []byte, existed bool, content []byte) (*HAProxyChanges, string) {
	switch {
	case !Hitless(spec):
		return nil, ""
	case spec.Options["stats_socket"] == "":
		return nil, "runtime_api needs the stats_socket option"
	case !existed:
		return nil, "no installed file: HAProxy may not run this one yet"
	}
	c, why := DiffHAProxy(previous, content)
	if why != "" {
		return nil, "HAProxy config changed beyond its servers: " + why
	}
	return &c, ""
}
