package listener

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/manifest"
)

// configGlobals are the CLI's settings that may share listener.yaml.
var configGlobals = []string{"consul-addr", "consul-token", "nats-url", "prefix", "federation", "timeout", "log-level"}

// writeListenerYAML writes body as listener.yaml in a new directory.
func writeListenerYAML(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "listener.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func configDur(d time.Duration) manifest.Duration { return manifest.Duration(d) }

func TestLoadConfigFull(t *testing.T) {
	path := writeListenerYAML(t, `consul-addr: 127.0.0.1:8500
node: web-1
address: 10.0.0.11
region: us-east-1
state_dir: /srv/patchbay
control: 127.0.0.1:9000
anti_entropy: 1m
shutdown_timeout: 45s
queue:
  quiet: 2s
  max_wait: 20s
  min_interval: 1m
  burst: 5
retry:
  initial: 1s
  max: 1m
services:
  - service: app-www
    port: 8080
    address: 10.0.0.12
    provision:
      command: [chef-solo, -o, "app-www::default"]
      timeout: 2m
  - service: lb-public
    port: 80
    after: [app-www]
  - service: metrics
    provision: {command: [true]}
`)
	got, err := LoadConfig(path, configGlobals...)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: path, Node: "web-1", Address: "10.0.0.11", Region: "us-east-1",
		StateDir: "/srv/patchbay", Control: "127.0.0.1:9000",
		AntiEntropy: configDur(time.Minute), ShutdownTimeout: configDur(45 * time.Second),
		Queue: QueueConfig{Quiet: configDur(2 * time.Second), MaxWait: configDur(20 * time.Second), MinInterval: configDur(time.Minute), Burst: 5},
		Retry: RetryConfig{Initial: configDur(time.Second), Max: configDur(time.Minute)},
		Services: []ServiceConfig{
			{Service: "app-www", Port: 8080, Address: "10.0.0.12", Line: 18,
				Provision: &manifest.Provision{Command: []string{"chef-solo", "-o", "app-www::default"}, Timeout: configDur(2 * time.Minute)}},
			{Service: "lb-public", Port: 80, After: []string{"app-www"}, Line: 24},
			{Service: "metrics", Line: 27,
				Provision: &manifest.Provision{Command: []string{"true"}, Timeout: manifest.DefaultProvisionLimit}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	path := writeListenerYAML(t, "services:\n  - service: worker\n")
	got, err := LoadConfig(path)
	host, herr := os.Hostname()
	if herr != nil || !configNodeName.MatchString(host) {
		// This host's name cannot default a node name: that is the error.
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "node: not set") {
			t.Fatalf("host name %q (%v): LoadConfig error %v, want one asking to set node", host, herr, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: path, Node: host, StateDir: DefaultStateDir, Control: DefaultControlAddr,
		AntiEntropy: configDur(DefaultAntiEntropy), ShutdownTimeout: configDur(DefaultShutdownTimeout),
		Queue:    QueueConfig{Quiet: configDur(DefaultQuiet), MaxWait: configDur(DefaultMaxWait), MinInterval: configDur(DefaultMinInterval), Burst: DefaultBurst},
		Retry:    RetryConfig{Initial: configDur(DefaultRetryInitial), Max: configDur(DefaultRetryMax)},
		Services: []ServiceConfig{{Service: "worker", Line: 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
	}
}

// Keys left empty keep their defaults, as if they were not there.
func TestLoadConfigNullKeepsDefault(t *testing.T) {
	got, err := LoadConfig(writeListenerYAML(t, "node: n1\ncontrol:\nqueue:\n  burst:\nservices:\n  - service: worker\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Control != DefaultControlAddr || got.Queue.Burst != 3 || got.Queue.Quiet != configDur(DefaultQuiet) {
		t.Errorf("control %q, queue %+v: want the defaults", got.Control, got.Queue)
	}
}

func TestLoadConfigProblems(t *testing.T) {
	const svc = "services:\n  - service: worker\n" // lines 2-3 when it follows one line
	tests := []struct {
		name string
		body string
		want []string // each line of the error, after "path:"; a line matches when it starts with its entry
	}{
		{"node empty", "node: \"\"\n" + svc,
			[]string{`1: node: empty; `}},
		{"node invalid", "node: web 1\n" + svc,
			[]string{`1: node: "web 1" is not a valid node name; use letters, digits`}},
		{"address with port", "address: 10.0.0.11:80\nnode: n\nservices:\n  - service: worker\n",
			[]string{`1: address: "10.0.0.11:80" has a port; give the host alone, like "10.0.0.11"`}},
		{"address not a host", "address: http://10.0.0.11\nnode: n\nservices:\n  - service: worker\n",
			[]string{`1: address: "http://10.0.0.11" is not an IP address or a host name`}},
		{"service address with port", "node: n\nservices:\n  - service: worker\n    port: 8080\n    address: \"[::1]:8080\"\n",
			[]string{`5: address: "[::1]:8080" has a port; give the host alone, like "::1"`}},
		{"address missing", "node: n\nservices:\n  - service: worker\n  - service: app-www\n    port: 8080\n  - service: api\n    port: 9090\n",
			[]string{`4: address: not set, and app-www and api (port > 0) have no address of their own; set the node's address:`}},
		{"region not a label", "node: n\nregion: US_East\n" + svc,
			[]string{`2: region: "US_East" is not a DNS label`}},
		{"service missing", "node: n\nservices:\n  - port: 0\n",
			[]string{`3: service: missing; name the published service's id`}},
		{"service not a label", "node: n\nservices:\n  - service: App_WWW\n",
			[]string{`3: service: "App_WWW" is not a DNS label`}},
		{"duplicate service", "node: n\nservices:\n  - service: worker\n  - service: api\n  - service: worker\n",
			[]string{`5: service: worker is listed twice (first at line 3); keep one entry`}},
		{"port too large", "node: n\naddress: 10.0.0.1\nservices:\n  - service: worker\n    port: 65536\n",
			[]string{`5: port: 65536 is out of range; give 1 to 65535, or 0`}},
		{"port negative", "node: n\nservices:\n  - service: worker\n    port: -1\n",
			[]string{`4: port: -1 is out of range`}},
		{"port not a number", "node: n\nservices:\n  - service: worker\n    port: http\n",
			[]string{`4: port: "http" is not a whole number`}},
		{"after unknown", "node: n\nservices:\n  - service: app-www\n  - service: lb\n    after: [app-ww]\n",
			[]string{`5: after: "app-ww" is not a service of this file; did you mean "app-www"?`}},
		{"after unknown, no suggestion", "node: n\nservices:\n  - service: app-www\n  - service: lb\n    after:\n      - database\n",
			[]string{`6: after: "database" is not a service of this file; name a service listed in this file`}},
		{"after names an invalid entry: one problem, not two", "node: n\nservices:\n  - service: App\n  - service: lb\n    after: [App]\n",
			[]string{`3: service: "App" is not a DNS label`}},
		{"after itself", "node: n\nservices:\n  - service: lb\n    after: [lb]\n",
			[]string{`4: after: lb names itself; remove it`}},
		{"after not a list", "node: n\nservices:\n  - service: lb\n    after: {x: y}\n",
			[]string{`4: after: expected a list, found a mapping`}},
		{"provision without command", "node: n\nservices:\n  - service: lb\n    provision: {timeout: 1m}\n",
			[]string{`4: provision.command: missing or empty; give the command as a list`}},
		{"provision empty command", "node: n\nservices:\n  - service: lb\n    provision:\n      command: []\n",
			[]string{`4: provision.command: missing or empty`}},
		{"provision empty program", "node: n\nservices:\n  - service: lb\n    provision:\n      command: [\"\", x]\n",
			[]string{`5: provision.command: the program is empty`}},
		{"provision command a string", "node: n\nservices:\n  - service: lb\n    provision:\n      command: chef-solo -o x\n",
			[]string{`5: provision.command: expected a list, found "chef-solo -o x"`}},
		{"provision timeout zero", "node: n\nservices:\n  - service: lb\n    provision: {command: [x], timeout: 0s}\n",
			[]string{`4: provision.timeout: 0s is not more than zero`}},
		{"duration zero", "node: n\nshutdown_timeout: 0s\n" + svc,
			[]string{`2: shutdown_timeout: 0s is not more than zero; give a positive duration`}},
		{"duration negative", "node: n\nqueue:\n  min_interval: -5s\n" + svc,
			[]string{`3: queue.min_interval: -5s is not more than zero`}},
		{"duration malformed", "node: n\nretry:\n  max: 5 minutes\n" + svc,
			[]string{`3: retry.max: "5 minutes" is not a duration; write it like "30s"`}},
		{"anti_entropy too short", "node: n\nanti_entropy: 500ms\n" + svc,
			[]string{`2: anti_entropy: 500ms is shorter than 1s`}},
		{"burst zero", "node: n\nqueue:\n  burst: 0\n" + svc,
			[]string{`3: queue.burst: 0 is less than 1`}},
		{"quiet over max_wait", "node: n\nqueue:\n  max_wait: 5s\n  quiet: 6s\n" + svc,
			[]string{`4: queue.quiet: 6s is longer than queue.max_wait 5s; the quiet window must fit in the maximum wait`}},
		{"max_wait under the default quiet", "node: n\nqueue:\n  max_wait: 50ms\n" + svc,
			[]string{`3: queue.max_wait: 50ms is shorter than queue.quiet 100ms`}},
		{"retry initial over max", "node: n\nretry:\n  initial: 10m\n" + svc,
			[]string{`3: retry.initial: 10m0s is longer than retry.max 5m0s`}},
		{"control empty", "node: n\ncontrol: \"\"\n" + svc,
			[]string{`2: control: empty; give host:port`}},
		{"control without port", "node: n\ncontrol: localhost\n" + svc,
			[]string{`2: control: "localhost" is not host:port; write it like "127.0.0.1:7676", or "off"`}},
		{"control port not numeric", "node: n\ncontrol: localhost:http\n" + svc,
			[]string{`2: control: port "http" is not a number from 0 to 65535`}},
		{"state_dir empty", "node: n\nstate_dir: \"\"\n" + svc,
			[]string{`2: state_dir: empty; give a directory`}},
		{"unknown key with suggestion", "node: n\nstat_dir: /x\n" + svc,
			[]string{`2: unknown key "stat_dir"; did you mean "state_dir"?`}},
		{"unknown key nested", "node: n\nqueue:\n  quite: 1s\n" + svc,
			[]string{`3: unknown key "quite" in queue; did you mean "quiet"?`}},
		{"unknown key in a service", "node: n\nservices:\n  - service: worker\n    prot: 0\n",
			[]string{`4: unknown key "prot" in a service; did you mean "port"?`}},
		{"unknown key in provision", "node: n\nservices:\n  - service: worker\n    provision: {command: [x], timout: 1m}\n",
			[]string{`4: unknown key "timout" in provision; did you mean "timeout"?`}},
		{"unknown key without suggestion", "node: n\nzzzzzzzz: 1\n" + svc,
			[]string{`2: unknown key "zzzzzzzz"; the keys are node, address, region, state_dir, root, control`}},
		{"global key suggested when misspelt", "node: n\nconsul-adr: x\n" + svc,
			[]string{`2: unknown key "consul-adr"; did you mean "consul-addr"?`}},
		{"repeated key", "node: n\nnode: m\n" + svc,
			[]string{`2: node: repeats the key of line 1; keep one`}},
		{"empty file", "",
			[]string{`1: the file is empty; a listener needs the services this node hosts`}},
		{"only comments", "# nothing yet\n",
			[]string{`1: the file is empty`}},
		{"no services key", "node: n\naddress: 10.0.0.1\n",
			[]string{`1: services: none listed; a listener with nothing to host is a mistake`}},
		{"empty services", "node: n\nservices: []\n",
			[]string{`2: services: none listed`}},
		{"empty service entry", "node: n\nservices:\n  -\n  - service: worker\n",
			[]string{`3: services: an empty entry; fill it in or remove the "-"`}},
		{"top level a list", "- node: n\n",
			[]string{`1: expected keys such as node: and services: at the top level, found a list`}},
		{"invalid YAML", "node: n\nservices: [\n",
			[]string{`2: invalid YAML: did not find expected node content`}},
		{"anchors refused", "node: &n web-1\n" + svc,
			[]string{`1: node: YAML anchors and aliases are not supported`}},
		{"second document", "node: n\n" + svc + "---\nnode: m\n",
			[]string{`4: a second YAML document; keep one listener config per file`}},
		{"all problems, sorted by line", "node: n\nservices:\n  - service: worker\n    port: 70000\n    after: [database]\nqueue: {burst: 0}\ncontrol: nope\n",
			[]string{
				`4: port: 70000 is out of range`,
				`5: after: "database" is not a service of this file`,
				`6: queue.burst: 0 is less than 1`,
				`7: control: "nope" is not host:port`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeListenerYAML(t, tt.body)
			cfg, err := LoadConfig(path, configGlobals...)
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("config %+v returned with the error", cfg)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("errors.Is(err, ErrConfig) = false for %v", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], path+":"+w) {
					t.Errorf("problem %d =\n  %s\nwant it to start with\n  %s:%s", i, lines[i], path, w)
				}
			}
		})
	}
}

func TestLoadConfigCycles(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"two", `node: n
services:
  - service: app-www
    after: [lb-public]
  - service: lb-public
    after: [app-www]
`, []string{`4: after: cycle app-www → lb-public → app-www; remove one of these after entries`}},
		{"three, named from the earliest entry", `node: n
services:
  - service: c
    after: [a]
  - service: a
    after: [b]
  - service: b
    after: [x, c]
  - service: x
`, []string{`4: after: cycle c → a → b → c; remove one of these after entries`}},
		{"two cycles", `node: n
services:
  - service: a
    after: [b]
  - service: b
    after: [a]
  - service: c
    after: [a, d]
  - service: d
    after: [c]
`, []string{
			`4: after: cycle a → b → a;`,
			`8: after: cycle c → d → c;`,
		}},
		{"one per tangled group, the shortest", `node: n
services:
  - service: a
    after: [b, c]
  - service: b
    after: [c]
  - service: c
    after: [a]
`, []string{`4: after: cycle a → c → a; remove one of these after entries`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeListenerYAML(t, tt.body)
			_, err := LoadConfig(path)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], path+":"+w) {
					t.Errorf("problem %d =\n  %s\nwant it to start with\n  %s:%s", i, lines[i], path, w)
				}
			}
		})
	}
}

// The CLI's settings may share the file; the listener skips them, and only
// the keys it is told to skip.
func TestLoadConfigIgnoredKeys(t *testing.T) {
	body := `consul-addr: 10.0.0.5:8500
consul-token: secret
nats-url: nats://10.0.0.2:4222
prefix: patchbay/
federation: seatgeek
timeout: 10s
log-level: debug
node: n
services:
  - service: worker
`
	cfg, err := LoadConfig(writeListenerYAML(t, body), configGlobals...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node != "n" || len(cfg.Services) != 1 {
		t.Errorf("config = %+v", cfg)
	}

	path := writeListenerYAML(t, body)
	_, err = LoadConfig(path, "consul-addr")
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 6 || !strings.HasPrefix(lines[0], path+`:2: unknown key "consul-token"`) {
		t.Errorf("with only consul-addr ignored:\n%v", err)
	}

	// A nested key of the same name is the listener's, never skipped.
	path = writeListenerYAML(t, "node: n\nqueue:\n  prefix: x\nservices:\n  - service: worker\n")
	if _, err := LoadConfig(path, configGlobals...); err == nil || !strings.HasPrefix(err.Error(), path+`:3: unknown key "prefix" in queue`) {
		t.Errorf("nested global key: err = %v", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listener.yaml")
	_, err := LoadConfig(path)
	if !errors.Is(err, ErrConfig) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v: want ErrConfig and fs.ErrNotExist", err)
	}
	if want := path + ": no such file or directory; create it"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want it to start with %q", err, want)
	}
}

func TestConfigServiceNamed(t *testing.T) {
	c := &Config{Services: []ServiceConfig{{Service: "app-www", Port: 8080}, {Service: "lb-public", Port: 80}}}
	if s, ok := serviceNamed(c, "lb-public"); !ok || s.Port != 80 {
		t.Errorf("ServiceNamed(lb-public) = %+v, %v", s, ok)
	}
	if s, ok := serviceNamed(c, "api"); ok {
		t.Errorf("ServiceNamed(api) = %+v, true", s)
	}
}

func TestLoadConfigExample(t *testing.T) {
	cfg, err := LoadConfig("../examples/listener.yaml", configGlobals...)
	if err != nil {
		t.Fatalf("examples/listener.yaml does not load:\n%v", err)
	}
	if cfg.Node != "web-1" || cfg.Address != "10.0.0.11" || cfg.Region != "us-east-1" {
		t.Errorf("node %q, address %q, region %q", cfg.Node, cfg.Address, cfg.Region)
	}
	www, ok := serviceNamed(cfg, "app-www")
	if !ok || www.Port != 8080 || www.Provision != nil {
		t.Errorf("app-www = %+v, %v", www, ok)
	}
	lb, ok := serviceNamed(cfg, "lb-public")
	if !ok || lb.Port != 80 || !slices.Equal(lb.After, []string{"app-www"}) {
		t.Errorf("lb-public = %+v, %v", lb, ok)
	}
	if len(www.After) != 0 {
		t.Errorf("app-www after %v, want nothing", www.After)
	}
	// The example shows the defaults commented out: it must not set them
	// to other values.
	if cfg.StateDir != DefaultStateDir || cfg.Control != DefaultControlAddr || cfg.Queue.Burst != 3 || cfg.Retry.Max != configDur(DefaultRetryMax) {
		t.Errorf("defaults changed by the example: %+v", cfg)
	}
}

// serviceNamed returns the hosted service called name.
func serviceNamed(c *Config, name string) (ServiceConfig, bool) {
	for _, s := range c.Services {
		if s.Service == name {
			return s, true
		}
	}
	return ServiceConfig{}, false
}
