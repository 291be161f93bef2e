// Package manifest is patchbay's domain model: what a service provides and
// requires, parsed from YAML, JSON or TOML, merged, normalized and validated.
//
// A Manifest returned by Load is normalized: every default is filled in and
// every requirement is in its long form, so later stages never re-derive
// defaults and its JSON encoding is the canonical form stored in the registry.
package manifest

import (
	"encoding/json"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultFederation is the federation of a manifest that names none.
const DefaultFederation = "default"

// Selection modes of a requirement.
const (
	SelectOne = "one" // bind to one provider, chosen deterministically
	SelectAll = "all" // bind to every live provider, e.g. load-balancer upstreams
)

// ViaLocal serves a requirement through the node's local load balancer.
const ViaLocal = "local"

// Region modes of a requirement.
const (
	RegionPreferLocal = "prefer-local"
	RegionLocalOnly   = "local-only"
	RegionAny         = "any"
)

// Instance placeholders: the values an instance fills into its provides.
const (
	PlaceholderHost   = "HOST"
	PlaceholderPort   = "PORT"
	PlaceholderNode   = "NODE"
	PlaceholderRegion = "REGION"
	PlaceholderIndex  = "INDEX"
)

// InstancePlaceholders lists the placeholders every instance defines.
var InstancePlaceholders = []string{PlaceholderHost, PlaceholderPort, PlaceholderNode, PlaceholderRegion, PlaceholderIndex}

// Manifest is one service's declaration.
type Manifest struct {
	ID          string                 `yaml:"id" json:"id"`
	Federation  string                 `yaml:"federation" json:"federation"`
	Public      bool                   `yaml:"public" json:"public"`
	Environment map[string]string      `yaml:"environment" json:"environment,omitempty"`
	Requires    map[string]Requirement `yaml:"requires" json:"requires,omitempty"`
	Provides    map[string]string      `yaml:"provides" json:"provides,omitempty"`
	LocalPort   int                    `yaml:"local_port" json:"local_port,omitempty"`
	Unique      bool                   `yaml:"unique" json:"unique"`
	Indexed     bool                   `yaml:"indexed" json:"indexed"`
	Rollout     *Rollout               `yaml:"rollout" json:"rollout,omitempty"`
	Provision   *Provision             `yaml:"provision" json:"provision,omitempty"`
	Health      *Health                `yaml:"health" json:"health,omitempty"`
	// Tests run on every node after the service's files are applied.
	Tests []Test `yaml:"tests" json:"tests,omitempty"`
	// Templates are the files a listener renders for the service, by name.
	Templates map[string]TemplateFile `yaml:"templates" json:"templates,omitempty"`
}

// Requirement is one variable a service needs. In a file it is either a
// template over provided keys ("{PRIMARY_DATABASE_URL}") or a mapping; after
// Load it is always the long form.
type Requirement struct {
	// Key is the provided key (or glob, with select all) to bind to. Empty when
	// Template combines several keys.
	Key string `yaml:"key" json:"key,omitempty"`
	// Template combines several provided keys ("{DB_HOST}:{DB_PORT}"); set only
	// when it is more than a single placeholder.
	Template string `yaml:"template" json:"template,omitempty"`
	Select   string `yaml:"select" json:"select"`
	Region   string `yaml:"region" json:"region"`
	Optional bool   `yaml:"optional" json:"optional"`
	// Min is the fewest live providers a select-all requirement accepts; below
	// it, files that need the requirement keep their last good render.
	Min *int `yaml:"min" json:"min,omitempty"`
	// Public restricts candidates to services marked public.
	Public bool `yaml:"public" json:"public"`
	// Via "local" serves the requirement through the node's own load
	// balancer: the value names 127.0.0.1 and the provider's local_port,
	// so it stays the same while providers come and go.
	Via string `yaml:"via" json:"via,omitempty"`
}

// UnmarshalYAML accepts the short form, a template string.
func (r *Requirement) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = Requirement{Template: n.Value}
		return nil
	}
	type long Requirement // no methods: plain struct decoding
	return n.Decode((*long)(r))
}

// Keys returns the provided keys (or globs) the requirement draws on.
func (r Requirement) Keys() []string {
	if r.Key != "" {
		return []string{r.Key}
	}
	t, err := ParseTemplate(r.Template)
	if err != nil {
		return nil
	}
	return t.Names()
}

// Rollout makes the nodes of a group apply changes a few at a time.
type Rollout struct {
	Group         string   `yaml:"group" json:"group"`
	Concurrency   int      `yaml:"concurrency" json:"concurrency"`
	HealthTimeout Duration `yaml:"health_timeout" json:"health_timeout"`
}

// Provision is the command a listener runs after installing new files.
type Provision struct {
	Command []string `yaml:"command" json:"command"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// TemplateFile is one file rendered from the service's bindings: an env file,
// a load-balancer config.
type TemplateFile struct {
	// Source is "builtin:NAME" or an absolute path on the host; Contents is
	// the template itself, carried in the manifest. Exactly one is set.
	Source      string `yaml:"source" json:"source,omitempty"`
	Contents    string `yaml:"contents" json:"contents,omitempty"`
	Destination string `yaml:"destination" json:"destination"`
	// Perms are octal file permissions, "0640" by default: rendered files
	// often hold credentials.
	Perms string `yaml:"perms" json:"perms"`
	Owner string `yaml:"owner" json:"owner,omitempty"`
	Group string `yaml:"group" json:"group,omitempty"`
	// Check validates the staged file before it is installed; {STAGED} in
	// its arguments is replaced by the staged file's path.
	Check  []string `yaml:"check" json:"check,omitempty"`
	Reload []string `yaml:"reload" json:"reload,omitempty"`
	// Backup keeps the previous version beside the file as DEST.bak.
	Backup bool `yaml:"backup" json:"backup"`
	// Min is the fewest upstreams any upstreams or routes call may return;
	// below it the file is not rendered and the last good one stays.
	Min *int `yaml:"min" json:"min"`
	// Timeout bounds check and reload commands.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Options parameterize a template (read with the option function).
	Options map[string]string `yaml:"options" json:"options,omitempty"`
}

// BuiltinPrefix marks a template source that names a builtin template.
const BuiltinPrefix = "builtin:"

// StagedPlaceholder in a check command stands for the staged file's path.
const StagedPlaceholder = "{STAGED}"

// Health is the check Consul runs against each instance. Exactly one of
// HTTP, TCP and TTL is set.
type Health struct {
	HTTP     string   `yaml:"http" json:"http,omitempty"`
	TCP      string   `yaml:"tcp" json:"tcp,omitempty"`
	TTL      Duration `yaml:"ttl" json:"ttl,omitempty"`
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	Timeout  Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Defaults filled in by normalization.
const (
	DefaultConcurrency    = 1
	DefaultHealthTimeout  = Duration(60 * time.Second)
	DefaultProvisionLimit = Duration(10 * time.Minute)
	DefaultHealthInterval = Duration(10 * time.Second)
	DefaultHealthCheckMax = Duration(5 * time.Second)
	DefaultSelectAllMin   = 1
	DefaultTemplatePerms  = "0640"
	DefaultTemplateMin    = 1
	DefaultCommandTimeout = Duration(30 * time.Second)
)

// Duration is a time.Duration written as "10s" or "1m30s".
type Duration time.Duration

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string ("10s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML reads a duration string. The schema check has already
// proved it parses; this is the decoding step.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("duration %q: %w", n.Value, err)
	}
	*d = Duration(v)
	return nil
}

// Datastores are static providers for things outside the cluster, such as a
// managed database URL, used when no live instance provides the key.
type Datastores struct {
	Federation string            `yaml:"federation" json:"federation"`
	Values     map[string]string `yaml:"datastores" json:"datastores"`
}
