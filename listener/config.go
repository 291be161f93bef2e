package listener

import (
	"errors"
	"time"

	"github.com/patchbay/patchbay/manifest"
)

// ErrConfig marks an invalid listener.yaml; its message names file:line.
var ErrConfig = errors.New("listener: invalid config")

// Defaults of listener.yaml.
const (
	DefaultStateDir        = "/var/lib/patchbay"
	DefaultControlAddr     = "127.0.0.1:7676"
	DefaultAntiEntropy     = 30 * time.Second
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
	// StateDir keeps the throttle state and the last applied revisions.
	StateDir string `yaml:"state_dir"`
	// Control is the control endpoint's listen address; "off" disables it.
	Control string `yaml:"control"`
	// AntiEntropy is how often revisions in Consul are compared with the
	// last applied ones (jittered by up to a fifth).
	AntiEntropy manifest.Duration `yaml:"anti_entropy"`
	// ShutdownTimeout bounds how long SIGTERM waits for the running step.
	ShutdownTimeout manifest.Duration `yaml:"shutdown_timeout"`
	Queue           QueueConfig       `yaml:"queue"`
	Retry           RetryConfig       `yaml:"retry"`
	// Services are the services this node hosts, in file order.
	Services []ServiceConfig `yaml:"services"`
}

// QueueConfig tunes the coalescing queue (see NewQueue's defaults).
type QueueConfig struct {
	Quiet       manifest.Duration `yaml:"quiet"`
	MaxWait     manifest.Duration `yaml:"max_wait"`
	MinInterval manifest.Duration `yaml:"min_interval"`
	Burst       int               `yaml:"burst"`
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
