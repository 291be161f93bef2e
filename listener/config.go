package listener

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/graph"
	"github.com/patchbay/patchbay/internal/suggest"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

// ErrConfig marks an invalid listener.yaml; its message names file:line.
var ErrConfig = errkind.New(errkind.Input, "listener: invalid config")

// Defaults of listener.yaml.
const (
	DefaultStateDir = "/var/lib/patchbay"
	// DefaultControlAddr is a unix socket only the listener's user may
	// connect to (mode 0600). TCP ("127.0.0.1:7676") without
	// control_token_file lets any local user pause the node: it is warned
	// about at start.
	DefaultControlAddr = "unix:///run/patchbay/listener.sock"
	// DefaultAntiEntropy is long because it is the last resort: events carry
	// every change, and a listener reads Consul at once when events may have
	// been lost (NATS reconnected, a slow consumer dropped some). The
	// periodic check costs the fleet N consistent reads per interval.
	DefaultAntiEntropy     = 2 * time.Minute
	DefaultShutdownTimeout = 30 * time.Second
	DefaultRetryInitial    = 5 * time.Second
	DefaultRetryMax        = 5 * time.Minute
)

// Config is a parsed, defaulted and validated listener.yaml: what this node
// hosts and how its listener behaves.
type Config struct {
	// File is the path the config was read from, for messages.
	File string `yaml:"-"`
	// Node names this host (default: the host name).
	Node string `yaml:"node"`
	// Address is where this node's instances are reached, unless a service
	// names its own.
	Address string `yaml:"address"`
	// Region is the node's region label ("" for none).
	Region string `yaml:"region"`
	// StateDir keeps the throttle's recent run starts across restarts.
	StateDir string `yaml:"state_dir"`
	// Root is prefixed to every template destination ("" or "/": none), so
	// that several listeners can share one host: patchbay dev, tests, a
	// container writing into a mounted directory.
	Root string `yaml:"root"`
	// Control is the control endpoint's listen address; "off" disables it.
	Control string `yaml:"control"`
	// ControlTokenFile holds a token every control request but GET
	// /healthz must carry; "" for none.
	ControlTokenFile string `yaml:"control_token_file"`
	// AntiEntropy is how often the bindings in Consul are compared with
	// those held and last applied, Consul winning (jittered by up to a
	// fifth).
	AntiEntropy manifest.Duration `yaml:"anti_entropy"`
	// ShutdownTimeout bounds how long SIGTERM waits for the running step.
	ShutdownTimeout manifest.Duration `yaml:"shutdown_timeout"`
	Queue           QueueConfig       `yaml:"queue"`
	Retry           RetryConfig       `yaml:"retry"`
	// Allow is what manifests may run and read on this node.
	Allow AllowConfig `yaml:"allow"`
	// Env is what of the node's environment templates and commands see.
	Env EnvConfig `yaml:"env"`
	// Events says whose bindings events the node trusts.
	Events EventsConfig `yaml:"events"`
	// Services are the services this node hosts, in file order.
	Services []ServiceConfig `yaml:"services"`
	// LocalLB is the node's own HAProxy for via: local requirements.
	LocalLB LocalLBConfig `yaml:"local_lb"`
}

// QueueConfig tunes the coalescing queue (defaults: the queue's Default*).
type QueueConfig struct {
	// Quiet is the short window: triggers during a run or within Quiet
	// after it wait until they have been quiet this long; a trigger after a
	// longer calm runs at once.
	Quiet manifest.Duration `yaml:"quiet"`
	// MaxWait caps that wait.
	MaxWait manifest.Duration `yaml:"max_wait"`
	// MinInterval and Burst throttle guarded runs only: the first run after
	// a start and every run after a failed one (restart and failure loops).
	MinInterval manifest.Duration `yaml:"min_interval"`
	Burst       int               `yaml:"burst"`
}

// EventsConfig lists the resolvers' public signing keys. With none, any
// bindings event is applied as it comes, whoever published it.
type EventsConfig struct {
	// PublicKeys are public keys of `patchbay keygen` (N...).
	PublicKeys []string `yaml:"public_keys"`
	// PublicKeysFile holds more, one a line ("#" starts a comment); it is
	// read at start and at every reload, and must not be writable by
	// others than its owner.
	PublicKeysFile string `yaml:"public_keys_file"`

	// verifier checks events against every key above; nil without keys.
	verifier *events.Verifier
}

// RetryConfig bounds the backoff between retries of a failed provision.
type RetryConfig struct {
	Initial manifest.Duration `yaml:"initial"`
	Max     manifest.Duration `yaml:"max"`
}

// ServiceConfig is one service this node hosts.
type ServiceConfig struct {
	// Service is the published service's id.
	Service string `yaml:"service"`
	// Port is where the instance listens; 0 runs the service's templates
	// and provision without registering an instance (a pure consumer).
	Port int `yaml:"port"`
	// Address overrides the node's address for this instance.
	Address string `yaml:"address"`
	// Provision overrides the manifest's provision command.
	Provision *manifest.Provision `yaml:"provision"`
	// After names services of this node whose step must finish first.
	After []string `yaml:"after"`
	// Line is where the entry starts in File, for messages.
	Line int `yaml:"-"`
}

// LoadConfig reads, defaults and validates the listener.yaml at path.
//
// The same file may hold the CLI's global settings (consul-addr, nats-url,
// ...): top-level keys named in ignore are accepted and skipped. Any other
// key this loader does not know is an error, so that a typo never falls
// back silently to a default.
//
// When the file is wrong the error lists every problem found, one per line
// and sorted by line, each as "file:line: what is wrong; what to do"; it
// matches ErrConfig.
func LoadConfig(path string, ignore ...string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, configReadError(path, err)
	}
	l := &configLoader{file: path, ignore: ignore, lines: map[string]int{}, pruned: map[string]bool{}}
	root := l.parse(data)
	if root == nil {
		return nil, l.err()
	}
	cfg := &Config{
		File:            path,
		StateDir:        DefaultStateDir,
		Control:         DefaultControlAddr,
		AntiEntropy:     manifest.Duration(DefaultAntiEntropy),
		ShutdownTimeout: manifest.Duration(DefaultShutdownTimeout),
		Queue: QueueConfig{
			Quiet:       manifest.Duration(DefaultQuiet),
			MaxWait:     manifest.Duration(DefaultMaxWait),
			MinInterval: manifest.Duration(DefaultMinInterval),
			Burst:       DefaultBurst,
		},
		Retry: RetryConfig{Initial: manifest.Duration(DefaultRetryInitial), Max: manifest.Duration(DefaultRetryMax)},
	}
	l.root = root.Line
	l.checkSchema(root)
	// The check pruned every entry that cannot decode, so an error here is
	// a gap in the check, reported rather than hidden.
	if err := root.Decode(cfg); err != nil {
		l.report(root.Line, "cannot read the file: %v; please report this with the file", err)
		return nil, l.err()
	}
	cfg.File = path
	l.validate(cfg)
	if len(l.probs) > 0 {
		return nil, l.err()
	}
	return cfg, nil
}

// configLoader turns one listener.yaml into a Config and collects every
// problem, so that a user fixes them all in one round.
type configLoader struct {
	file   string
	ignore []string
	root   int            // line of the top-level mapping, for problems of absent keys
	lines  map[string]int // where each kept value is, by key path ("services.1.after.0")
	pruned map[string]bool
	probs  []configProblem
}

type configProblem struct {
	line int
	msg  string
}

// configError is every problem of one file.
type configError struct {
	lines []string
	cause error // the read error, when the file could not be read
}

func (e *configError) Error() string        { return strings.Join(e.lines, "\n") }
func (e *configError) Is(target error) bool { return target == ErrConfig }
func (e *configError) Kind() errkind.Kind   { return errkind.Of(ErrConfig) }
func (e *configError) Unwrap() error        { return e.cause }

func configReadError(path string, err error) error {
	what := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		what = pe.Err.Error()
	}
	hint := "fix it or pass another file with --config"
	if errors.Is(err, fs.ErrNotExist) {
		hint = "create it (examples/listener.yaml is a commented start) or pass its path with --config"
	}
	return &configError{lines: []string{fmt.Sprintf("%s: %s; %s", path, what, hint)}, cause: err}
}

func (l *configLoader) report(line int, format string, args ...any) {
	l.probs = append(l.probs, configProblem{line: line, msg: fmt.Sprintf(format, args...)})
}

func (l *configLoader) err() error {
	slices.SortStableFunc(l.probs, func(a, b configProblem) int { return a.line - b.line })
	e := &configError{}
	for _, p := range l.probs {
		if p.line > 0 {
			e.lines = append(e.lines, fmt.Sprintf("%s:%d: %s", l.file, p.line, p.msg))
		} else {
			e.lines = append(e.lines, fmt.Sprintf("%s: %s", l.file, p.msg))
		}
	}
	return e
}

// line is where the value at key path is, or the top of the file when the
// key is absent.
func (l *configLoader) line(path ...string) int {
	if n, ok := l.lines[strings.Join(path, ".")]; ok {
		return n
	}
	return l.root
}

// parse returns the top-level mapping, or nil after reporting why there is
// none.
func (l *configLoader) parse(data []byte) *yaml.Node {
	empty := func() *yaml.Node {
		l.report(1, "the file is empty; a listener needs the services this node hosts (see examples/listener.yaml)")
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return empty()
		}
		l.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			l.yamlError(err)
		} else {
			l.report(extra.Line, "a second YAML document; keep one listener config per file")
		}
		return nil
	}
	if len(doc.Content) == 0 {
		return empty()
	}
	root := doc.Content[0]
	switch {
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return empty()
	case root.Kind != yaml.MappingNode:
		l.report(root.Line, "expected keys such as node: and services: at the top level, found %s", manifest.NodeKind(root))
		return nil
	}
	return root
}

func (l *configLoader) yamlError(err error) {
	line, msg := manifest.YAMLError(err)
	l.report(line, "invalid YAML: %s", msg)
}

var (
	configDurationType = reflect.TypeFor[manifest.Duration]()
	serviceConfigType  = reflect.TypeFor[ServiceConfig]()
)

// checkSchema prunes from root every entry that cannot decode into a
// Config (unknown, repeated, mistyped), and every null as unset so that
// defaults hold, and records where each kept value is.
func (l *configLoader) checkSchema(root *yaml.Node) {
	_, checked := manifest.CheckSchema(root, reflect.TypeFor[Config](), l,
		manifest.NullsUnset(), manifest.DropBadEntries(), manifest.IgnoreKeys(l.ignore...))
	for _, p := range checked.Pruned {
		l.pruned[strings.Join(p.Parts(), ".")] = true
	}
	for _, k := range checked.Kept {
		l.lines[strings.Join(k.At.Parts(), ".")] = k.Line
	}
}

// Check holds listener.yaml's own rules: no anchors, and the types whose
// values have a form of their own.
func (l *configLoader) Check(n *yaml.Node, t reflect.Type, at manifest.Path) (ok, handled bool) {
	label := configLabel(at)
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		l.report(n.Line, "%sYAML anchors and aliases are not supported; write the value out", configPrefix(label))
		return false, true
	}
	switch {
	case t == configDurationType:
		d, err := time.ParseDuration(n.Value)
		switch {
		case n.Kind != yaml.ScalarNode || err != nil:
			l.report(n.Line, "%s: %s is not a duration; write it like \"30s\" or \"1m30s\"", label, manifest.NodeKind(n))
			return false, true
		case d <= 0:
			l.report(n.Line, "%s: %s is not more than zero; give a positive duration like \"30s\", or leave the key out for the default", label, n.Value)
			return false, true
		}
		return true, true
	case t == serviceConfigType && n.Kind == yaml.ScalarNode:
		l.report(n.Line, "%s: %s is not an entry; write it as \"- service: %s\"", label, manifest.NodeKind(n), n.Value)
		return false, true
	case t == commandPatternType:
		return l.commandPattern(n, label), true
	}
	return false, false
}

// Scalar checks a single value by decoding it.
func (l *configLoader) Scalar(n *yaml.Node, t reflect.Type, at manifest.Path) bool {
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		what := "a single value"
		if t.Kind() == reflect.Int {
			what = "a whole number"
		}
		l.report(n.Line, "%s: %s is not %s", configLabel(at), manifest.NodeKind(n), what)
		return false
	}
	return true
}

// Report words the problems of shape the schema check finds.
func (l *configLoader) Report(is manifest.Issue) {
	label := configLabel(is.At)
	switch is.Kind {
	case manifest.NotMapping:
		l.report(is.Node.Line, "%s: expected a mapping of keys, found %s", label, manifest.NodeKind(is.Node))
	case manifest.NotList:
		l.report(is.Node.Line, "%s: expected a list, found %s", label, manifest.NodeKind(is.Node))
	case manifest.NotScalar:
		l.report(is.Node.Line, "%s: expected a single value, found %s", label, manifest.NodeKind(is.Node))
	case manifest.EmptyEntry:
		l.report(is.Node.Line, "%s: an empty entry; fill it in or remove the \"-\"", label)
	case manifest.RepeatedKey:
		l.report(is.Node.Line, "%s: repeats the key of line %d; keep one", label, is.FirstLine)
	case manifest.UnknownKey:
		in := is.At[:len(is.At)-1]
		if is.Node.Tag == "!!merge" {
			l.report(is.Node.Line, "%sYAML merge keys (<<) are not supported; write the keys out", configPrefix(configLabel(in)))
			return
		}
		l.unknownKey(is.Node, configLabel(in), is.Fields, len(in) == 0)
	}
}

func (l *configLoader) unknownKey(k *yaml.Node, label string, known []string, top bool) {
	where := ""
	switch label {
	case "":
	case "services":
		where = " in a service"
	default:
		where = " in " + label
	}
	candidates := known
	if top {
		candidates = append(slices.Clip(known), l.ignore...)
	}
	if s, ok := suggest.Closest(k.Value, candidates); ok {
		l.report(k.Line, "unknown key %q%s; did you mean %q?", k.Value, where, s)
		return
	}
	l.report(k.Line, "unknown key %q%s; the keys are %s", k.Value, where, strings.Join(known, ", "))
}

// configNodeName is what Consul accepts as a node name.
var configNodeName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

var configDigits = regexp.MustCompile(`^[0-9]+$`)

// validate defaults what depends on other keys and checks what a type
// cannot say.
func (l *configLoader) validate(c *Config) {
	l.node(c)
	if c.Address != "" {
		l.address(c.Address, l.line("address"), "address")
	}
	if c.Region != "" && !manifest.IsDNSLabel(c.Region) {
		// The region is a segment of Consul KV keys (bindings/<fed>/<service>/<region>).
		l.report(l.line("region"), "region: %q is not a DNS label; use lower-case letters, digits and \"-\", like \"us-east-1\"", c.Region)
	}
	if c.StateDir == "" {
		l.report(l.line("state_dir"), "state_dir: empty; give a directory the listener may write, or leave the key out for %s", DefaultStateDir)
	}
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		l.report(l.line("root"), "root: %q is not an absolute path; destinations are placed under it, so give it from /", c.Root)
	}
	l.control(c.Control)
	if !l.pruned["anti_entropy"] && time.Duration(c.AntiEntropy) < time.Second {
		l.report(l.line("anti_entropy"), "anti_entropy: %s is shorter than 1s; checks that often load Consul for nothing, give 1s or more (default %s)", c.AntiEntropy, DefaultAntiEntropy)
	}
	if c.Queue.Burst < 1 && !l.pruned["queue.burst"] {
		l.report(l.line("queue", "burst"), "queue.burst: %d is less than 1; give how many guarded runs (after a start or a failure) may start back to back, at least 1 (default %d)", c.Queue.Burst, DefaultBurst)
	}
	if c.Queue.Quiet > c.Queue.MaxWait && !l.pruned["queue.quiet"] && !l.pruned["queue.max_wait"] {
		l.exceeds("queue", "quiet", "max_wait", c.Queue.Quiet, c.Queue.MaxWait, "the quiet window must fit in the maximum wait")
	}
	if c.Retry.Initial > c.Retry.Max && !l.pruned["retry.initial"] && !l.pruned["retry.max"] {
		l.exceeds("retry", "initial", "max", c.Retry.Initial, c.Retry.Max, "the first backoff must not exceed the cap")
	}
	l.services(c)
	l.localLB(c) // local_config.go
	l.allow(&c.Allow)
	l.env(&c.Env)
	l.allowDestinations(&c.Allow)
	l.events(&c.Events)
}

// exceeds reports a lower bound above its upper bound, at the one of the
// two keys the file sets (the later one when it sets both).
func (l *configLoader) exceeds(section, low, high string, lv, hv manifest.Duration, why string) {
	lowAt, lowSet := l.lines[section+"."+low]
	highAt, highSet := l.lines[section+"."+high]
	switch {
	case highSet && (!lowSet || highAt > lowAt):
		l.report(highAt, "%s.%s: %s is shorter than %s.%s %s; %s, so lengthen %s or shorten %s", section, high, hv, section, low, lv, why, high, low)
	default:
		l.report(l.line(section, low), "%s.%s: %s is longer than %s.%s %s; %s, so shorten %s or lengthen %s", section, low, lv, section, high, hv, why, low, high)
	}
}

func (l *configLoader) node(c *Config) {
	if _, set := l.lines["node"]; set || l.pruned["node"] {
		switch {
		case l.pruned["node"]:
		case c.Node == "":
			l.report(l.line("node"), "node: empty; give this host's name, like \"web-1\", or leave the key out for the host name")
		case !configNodeName.MatchString(c.Node):
			l.report(l.line("node"), "node: %q is not a valid node name; use letters, digits, \"-\", \"_\" and \".\", like \"web-1\"", c.Node)
		}
		return
	}
	host, err := os.Hostname()
	switch {
	case err != nil:
		l.report(l.root, "node: not set, and the host name is unknown (%v); set node: to this host's name", err)
	case !configNodeName.MatchString(host):
		l.report(l.root, "node: not set, and the host name %q is not a valid node name; set node: to a name of letters, digits, \"-\", \"_\" and \".\"", host)
	}
	c.Node = host
}

// address checks a host name or IP without a port.
func (l *configLoader) address(a string, line int, label string) {
	if h, port, err := net.SplitHostPort(a); err == nil && configDigits.MatchString(port) {
		l.report(line, "%s: %q has a port; give the host alone, like %q, and each service's port: on its entry", label, a, h)
		return
	}
	if registry.CheckAddress(a) == nil {
		return
	}
	l.report(line, "%s: %q is not %s; give where this node is reached, like \"10.0.0.11\"", label, a, registry.AddressRule)
}

func (l *configLoader) control(ctl string) {
	if ctl == "off" || l.pruned["control"] {
		return
	}
	at := l.line("control")
	if ctl == "" {
		l.report(at, "control: empty; give host:port with control_token_file, a unix socket like %q, or \"off\" to disable the control endpoint", DefaultControlAddr)
		return
	}
	if path, ok := strings.CutPrefix(ctl, unixScheme); ok {
		if !filepath.IsAbs(path) {
			l.report(at, "control: %q: the socket's path must be absolute, like %q", ctl, DefaultControlAddr)
		}
		return
	}
	_, port, err := net.SplitHostPort(ctl)
	if err != nil {
		l.report(at, "control: %q is not host:port; write it like \"127.0.0.1:7676\", or \"off\" to disable the control endpoint, or a unix socket like %q", ctl, DefaultControlAddr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		l.report(at, "control: port %q is not a number from 0 to 65535; write the address like \"127.0.0.1:7676\", or \"off\" to disable the control endpoint", port)
	}
}

func (l *configLoader) services(c *Config) {
	if len(c.Services) == 0 {
		if !l.pruned["services"] {
			l.report(l.line("services"), "services: none listed; a listener with nothing to host is a mistake, so list this node's services, like \"services: [{service: app-www, port: 8080}]\"")
		}
		return
	}
	first := map[string]int{} // service → index of its first entry
	var needAddress []string
	for i := range c.Services {
		s := &c.Services[i]
		at := func(key ...string) int { return l.line(append([]string{"services", strconv.Itoa(i)}, key...)...) }
		s.Line = at()
		switch {
		case s.Service == "":
			if !l.pruned[fmt.Sprintf("services.%d.service", i)] {
				l.report(s.Line, "service: missing; name the published service's id, like \"service: app-www\"")
			}
		case !manifest.IsDNSLabel(s.Service):
			l.report(at("service"), "service: %q is not a DNS label; give the service's id: lower-case letters, digits and \"-\", like \"app-www\"", s.Service)
		default:
			if j, dup := first[s.Service]; dup {
				l.report(at("service"), "service: %s is listed twice (first at line %d); keep one entry", s.Service, c.Services[j].Line)
			} else {
				first[s.Service] = i
			}
		}
		if s.Port < 0 || s.Port > 65535 {
			l.report(at("port"), "port: %d is out of range; give 1 to 65535, or 0 to render and provision without registering an instance", s.Port)
		}
		if s.Address != "" {
			l.address(s.Address, at("address"), "address")
		} else if s.Port > 0 && s.Port <= 65535 && c.Address == "" && !l.pruned["address"] && s.Service != "" {
			needAddress = append(needAddress, s.Service)
		}
		if s.Provision != nil {
			switch {
			case l.pruned[fmt.Sprintf("services.%d.provision.command", i)]:
			case len(s.Provision.Command) == 0:
				l.report(at("provision"), "provision.command: missing or empty; give the command as a list, like [chef-solo, -o, \"nginx::default\"], or remove provision to run the manifest's")
			case s.Provision.Command[0] == "":
				l.report(at("provision", "command", "0"), "provision.command: the program is empty; give the command as a list, like [chef-solo, -o, \"nginx::default\"]")
			}
			if s.Provision.Timeout == 0 {
				s.Provision.Timeout = manifest.DefaultProvisionLimit
			}
		}
	}
	if len(needAddress) > 0 {
		first := c.Services[slices.IndexFunc(c.Services, func(s ServiceConfig) bool { return s.Service == needAddress[0] })]
		l.report(first.Line, "address: not set, and %s (port > 0) %s no address of %s own; set the node's address: (an IP or host name, no port) or give each service its own",
			configList(needAddress), configPlural(len(needAddress), "has", "have"), configPlural(len(needAddress), "its", "their"))
	}
	l.after(c, first)
}

// after checks the after entries and reports a cycle of each group of
// entries that wait for each other, the shortest through the group's
// earliest entry: fixing it shows the next, as patchbay graph does.
func (l *configLoader) after(c *Config, first map[string]int) {
	names := make([]string, 0, len(first)) // in file order: suggestions must not depend on map order
	for i, s := range c.Services {
		if j, ok := first[s.Service]; ok && j == i {
			names = append(names, s.Service)
		}
	}
	edges := make([][]int, len(c.Services)) // entry index → entry indexes it waits for
	for i, s := range c.Services {
		for j, a := range s.After {
			at := l.line("services", strconv.Itoa(i), "after", strconv.Itoa(j))
			dep, hosted := first[a]
			switch {
			case a == s.Service:
				l.report(at, "after: %s names itself; remove it", a)
			case !hosted && slices.ContainsFunc(c.Services, func(o ServiceConfig) bool { return o.Service == a }):
				// Its entry was reported as invalid; a second message would be noise.
			case !hosted:
				hint := "name a service listed in this file"
				if m, ok := suggest.Closest(a, names); ok {
					hint = fmt.Sprintf("did you mean %q?", m)
				}
				l.report(at, "after: %q is not a service of this file; %s", a, hint)
			default:
				// A repeated entry was reported already; its edges would
				// only echo the first entry's cycles.
				if first[s.Service] == i {
					edges[i] = append(edges[i], dep)
				}
			}
		}
	}
	for _, cycle := range graph.FindCycles(edges).Paths() {
		ring := make([]string, len(cycle))
		for k, i := range cycle {
			ring[k] = c.Services[i].Service
		}
		at := c.Services[cycle[0]].Line
		if j := slices.Index(c.Services[cycle[0]].After, ring[1]); j >= 0 {
			at = l.line("services", strconv.Itoa(cycle[0]), "after", strconv.Itoa(j))
		}
		l.report(at, "after: cycle %s; remove one of these after entries", strings.Join(ring, " → "))
	}
}

// configLabel names a value in messages: its keys without list positions,
// and services' keys without "services", which the line already tells.
func configLabel(at manifest.Path) string {
	keys := at.Keys()
	if len(keys) > 1 && keys[0] == "services" {
		keys = keys[1:]
	}
	return strings.Join(keys, ".")
}

func configPrefix(label string) string {
	if label == "" {
		return ""
	}
	return label + ": "
}

func configList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func configPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
