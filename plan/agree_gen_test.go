package plan_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
)

// genCases is how many cases TestPlanAgreesGenerated runs; each costs a
// fraction of a second (one with an HAProxy, a little more).
const genCases = 24

// TestPlanAgreesGenerated generates nodes (region, listener.yaml's
// provision override), manifests (select-one and select-all requirements,
// a runtime-API HAProxy), instances and a change of them (providers come,
// go, move, turn private or are unpublished while live), lets a real
// listener apply the before state against a real Consul, and checks that
// what plan predicts for the change is exactly what the listener's next
// run does. PATCHBAY_AGREE_SEED replays a failing seed.
func TestPlanAgreesGenerated(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PATCHBAY_AGREE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PATCHBAY_AGREE_SEED=%q: %v", s, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with PATCHBAY_AGREE_SEED=%d", seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, seed>>7|1))
	a := newAgreement(t)
	_, err := exec.LookPath("haproxy")
	haproxy := err == nil || os.Getenv("CI") == "true" // CI: a missing HAProxy fails the case
	seen := map[string]int{}
	for i := range genCases {
		t.Run(fmt.Sprintf("case-%d", i), func(t *testing.T) {
			c := &agreeCase{fed: fmt.Sprintf("gen-%d", i), node: "n1", dir: t.TempDir()}
			generate(t, rng, c, haproxy)
			tally(seen, c, (&agreement{t: t, reg: a.reg}).run(c))
		})
	}
	t.Logf("the listener's runs covered: %v", seen)
}

// tally counts the four points among what the runs did.
func tally(seen map[string]int, c *agreeCase, did map[string]outcome) {
	for svc, o := range did {
		switch {
		case o.Result == "skipped" && len(o.Changed) > 0:
			seen["policy render"]++
		case len(o.Runtime) > 0:
			seen["runtime api"]++
		case o.Provision == "provision-app-node":
			seen["provision override"]++
		case svc == "app" && c.region != "" && len(o.Changed) > 0:
			seen["node region"]++
		case len(o.Changed) > 0:
			seen["other change"]++
		}
	}
}

// generate fills c with a random node, manifests and instances, before
// and after.
func generate(t *testing.T, rng *rand.Rand, c *agreeCase, haproxy bool) {
	pick := func(n int) bool { return rng.IntN(n) == 0 }
	if pick(2) {
		c.region = "eu"
	}
	api := fmt.Sprintf("id: api\npublic: %t\nprovides: {API_URL: \"http://{HOST}:{PORT}\"}", pick(2))
	webDoc := "id: web\npublic: true\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}"
	var consumers []string
	var services strings.Builder
	reload := func(svc string) string {
		if pick(3) {
			return ""
		}
		return "\n    reload: " + yamlList(c.logCommand("reload-"+svc+"-"+strconv.Itoa(rng.IntN(2))))
	}
	{ // app: a select-one requirement, always hosted
		prov := ""
		if pick(2) {
			prov = "provision: {command: " + yamlList(c.logCommand("provision-app-manifest")) + "}\n"
		}
		public := ""
		if pick(3) {
			public = ", public: true"
		}
		consumers = append(consumers, fmt.Sprintf("id: app\n%srequires: {API_URL: {key: API_URL%s}}\ntemplates:\n  env:\n    contents: \"API_URL={{ binding \\\"API_URL\\\" }} region={{ (patchbay).Region }}\\n\"\n    destination: /etc/app/env%s",
			prov, public, reload("app")))
		services.WriteString("  - service: app\n")
		if pick(2) {
			fmt.Fprintf(&services, "    provision: {command: %s}\n", yamlList(c.logCommand("provision-app-node")))
		}
	}
	if pick(2) {
		key := []string{"API_URL", "WEB_URL"}[rng.IntN(2)]
		consumers = append(consumers, fmt.Sprintf("id: lb\nrequires: {ROUTES: {key: %s, select: all}}\ntemplates:\n  upstreams:\n    contents: \"{{ range upstreams \\\"ROUTES\\\" }}server {{ .HostPort }}\\n{{ end }}\"\n    destination: /etc/lb/upstreams\n    min: %d%s",
			key, rng.IntN(2), reload("lb")))
		services.WriteString("  - service: lb\n")
	}
	if haproxy && pick(4) {
		testcluster.RequirePrograms(t, "haproxy")
		socket := filepath.Join(c.dir, "admin.sock")
		consumers = append(consumers, fmt.Sprintf("id: hap\nrequires: {ROUTES: {key: WEB_URL, select: all}}\ntemplates:\n  haproxy:\n    source: builtin:haproxy\n    destination: /etc/haproxy/haproxy.cfg\n    options: {listen: %q, stats_socket: %q, runtime_api: \"true\", check_inter: \"5s\"}\n    reload: %s",
			freeAddr(t), socket, yamlList(c.logCommand("reload-hap-1"))))
		services.WriteString("  - service: hap\n")
		cfg := filepath.Join(c.dir, "root", "etc/haproxy/haproxy.cfg")
		c.afterBefore = func(t *testing.T) {
			if _, err := os.Stat(cfg); err == nil {
				startHAProxy(t, cfg, socket)
			}
		}
	}
	c.services = services.String()
	manifests := func(withAPI, withWeb bool, consumers []string) []manifest.Manifest {
		var out []manifest.Manifest
		if withAPI {
			out = append(out, parseManifest(t, c.fed, api))
		}
		if withWeb {
			out = append(out, parseManifest(t, c.fed, webDoc))
		}
		for _, d := range consumers {
			out = append(out, parseManifest(t, c.fed, d))
		}
		return out
	}
	before := instances(rng, c, api, webDoc)
	c.before = &binding.Snapshot{Manifests: manifests(true, true, consumers), Instances: before}
	after := mutate(rng, c, before, api, webDoc)
	// Providers unpublished while live are withheld by policy.
	c.after = &binding.Snapshot{Manifests: manifests(!pick(4), !pick(4), consumers), Instances: after}
	t.Logf("region %q, services:\n%s%d instances before, %d after", c.region, c.services, len(before), len(after))
}

// instances are 0-3 providers of each of api and web, in random regions.
func instances(rng *rand.Rand, c *agreeCase, apiDoc, webDoc string) []binding.Instance {
	var out []binding.Instance
	for _, sd := range [][2]string{{"api", apiDoc}, {"web", webDoc}} {
		s, doc := sd[0], sd[1]
		m, _ := manifest.Parse("gen.yaml", []byte(doc))
		for i := range rng.IntN(4) {
			region := []string{"", "eu", "us"}[rng.IntN(3)]
			out = append(out, instance(c.fed, s, fmt.Sprintf("%s%d", s, i), region, 8000+10*len(s)+i, m.Public, m.Provides))
		}
	}
	slices.SortFunc(out, func(a, b binding.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// mutate drops, moves or adds instances.
func mutate(rng *rand.Rand, c *agreeCase, in []binding.Instance, apiDoc, webDoc string) []binding.Instance {
	var out []binding.Instance
	for _, i := range in {
		switch rng.IntN(4) {
		case 0: // gone
		case 1: // moved to another port
			out = append(out, moved(i, 100))
		default:
			out = append(out, i)
		}
	}
	for _, extra := range instances(rng, c, apiDoc, webDoc) {
		if rng.IntN(2) == 0 {
			out = append(out, moved(extra, 200))
		}
	}
	return out
}

// moved is in on another port, as a new instance.
func moved(in binding.Instance, by int) binding.Instance {
	in.Port += by
	in.ID = binding.InstanceID(in.Service, in.Node, in.Port)
	provides := make(map[string]string, len(in.Provides))
	for k, v := range in.Provides {
		provides[k] = strings.Replace(v, fmt.Sprint(in.Port-by), fmt.Sprint(in.Port), 1)
	}
	in.Provides = provides
	return in
}
