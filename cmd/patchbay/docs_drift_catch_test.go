package main

import (
	"strings"
	"testing"
)

// The drift checks catch each kind of drift, with a message that says what
// to add and where; and a page in step raises nothing.
func TestDocsDriftCatches(t *testing.T) {
	flags := []cmdFlag{
		{command: "patchbay publish", name: "plan"},
		{command: "patchbay console", name: "http-addr"},
		{command: "patchbay console", name: "addr", hidden: true},
	}
	good := map[string]string{
		"README.md":             "See [the manifest](docs/manifest.md#validate-and-publish), [console](docs/console.md), [settings](docs/settings.md), [listener.yaml](docs/listener-yaml.md).\n",
		"docs/manifest.md":      "# Manifest\n\n## validate and publish\n\n`publish --plan` shows it first.\n",
		"docs/console.md":       "# Console\n\n`console --http-addr` moves it; `patchbay_listener_provisions_total`.\n",
		"docs/settings.md":      "# Settings\n\n## Exit codes\n\n| code | meaning |\n| --- | --- |\n| 0 | ok |\n| 1 | yours |\n",
		"docs/listener-yaml.md": "| `node` | host | n |\n| `queue.quiet` | 100ms | q |\n",
	}
	metrics := map[string]string{"patchbay_listener_provisions_total": "listener/metrics.go"}
	codes := map[int]string{0: "exitOK", 1: "exitUser"}
	keys := []string{"node", "queue", "queue.quiet"}
	exists := func(p string) bool { _, ok := good[p]; return ok }

	with := func(file, text string) map[string]string {
		docs := map[string]string{}
		for k, v := range good {
			docs[k] = v
		}
		docs[file] = text
		return docs
	}
	check := func(docs map[string]string, fl []cmdFlag, m map[string]string, c map[int]string, k []string) []string {
		var p []string
		p = append(p, pageDrift(docs, fl)...)
		p = append(p, flagDrift(docs, fl)...)
		p = append(p, metricDrift(docs, m)...)
		p = append(p, linkDrift(docs, exists)...)
		p = append(p, listenerKeyDrift(docs["docs/listener-yaml.md"], k)...)
		p = append(p, exitCodeDrift(docs["docs/settings.md"], c)...)
		p = append(p, orphanDrift(docs)...)
		return p
	}
	if p := check(good, flags, metrics, codes, keys); len(p) > 0 {
		t.Fatalf("docs in step raised:\n%s", strings.Join(p, "\n"))
	}

	tests := []struct {
		name    string
		docs    map[string]string
		flags   []cmdFlag
		metrics map[string]string
		codes   map[int]string
		keys    []string
		want    string
	}{
		{"new flag undocumented", good, append(flags, cmdFlag{command: "patchbay publish", name: "wait"}),
			metrics, codes, keys, "patchbay publish --wait is documented only in docs/cli: say what it does and when to use it in docs/manifest.md"},
		{"new command without a page", good, append(flags, cmdFlag{command: "patchbay drain", name: "timeout"}),
			metrics, codes, keys, `command patchbay drain has no docs page: explain it in a page under docs/ (a new docs/drain.md`},
		{"docs name a flag that is gone", with("docs/manifest.md", good["docs/manifest.md"]+"Give `--yes-really`.\n"),
			flags, metrics, codes, keys, "docs/manifest.md:6: names --yes-really, which no patchbay command has"},
		{"docs name a metric that is gone", with("docs/console.md", good["docs/console.md"]+"`patchbay_listener_gone_total`\n"),
			flags, metrics, codes, keys, "names metric patchbay_listener_gone_total, which no code declares"},
		{"new metric undocumented", good, flags, map[string]string{"patchbay_listener_provisions_total": "x", "patchbay_resolver_new_total": "resolverd/metrics.go"},
			codes, keys, `metric patchbay_resolver_new_total (resolverd/metrics.go) is documented nowhere: name it and say what it counts in docs/resolution.md`},
		{"a page nobody links to", with("docs/run.md", "# Run\n"), flags, metrics, codes, keys,
			"docs/run.md is linked from no page: link it from README.md's \"Where next\" table"},
		{"link to a missing file", with("README.md", "[x](docs/gone.md)\n"), flags, metrics, codes, keys, "README.md:1: link docs/gone.md: no file docs/gone.md"},
		{"link to a missing heading", with("README.md", "[x](docs/manifest.md#publish)\n"), flags, metrics, codes, keys, "docs/manifest.md has no heading for #publish"},
		{"link to a missing heading of the same page", with("docs/manifest.md", good["docs/manifest.md"]+"[up](#manifests)\n"), flags, metrics, codes, keys, "docs/manifest.md:6: link #manifests"},
		{"new listener.yaml key undocumented", good, flags, metrics, codes, append(keys, "queue.burst"),
			"listener.yaml key queue.burst is not in docs/listener-yaml.md's key table: add a row \"| `queue.burst` |"},
		{"documented listener.yaml key gone", good, flags, metrics, codes, []string{"node"},
			"docs/listener-yaml.md documents key queue.quiet, which listener.yaml does not have"},
		{"new exit code undocumented", good, flags, metrics, map[int]string{0: "exitOK", 1: "exitUser", 4: "exitTimeout"}, keys,
			"exit code 4 (exitTimeout in cmd/patchbay/main.go) is not in docs/settings.md's exit code table"},
		{"documented exit code gone", good, flags, metrics, map[int]string{0: "exitOK"}, keys,
			"docs/settings.md documents exit code 1, which cmd/patchbay/main.go does not define"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := check(tt.docs, tt.flags, tt.metrics, tt.codes, tt.keys)
			if !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Errorf("want a problem containing\n  %s\ngot\n  %s", tt.want, strings.Join(problems, "\n  "))
			}
		})
	}
}

// Anchors are GitHub's: lower case, punctuation dropped, spaces as
// hyphens, repeats numbered; fenced code is no heading.
func TestAnchors(t *testing.T) {
	text := "# listener.yaml reference\n## Rollout groups\n```\n# not a heading\n```\n## Rollout groups\n## `--json` output, and exit codes\n<a id=\"redaction\"></a>x\n"
	got := anchors(text)
	for _, want := range []string{"listeneryaml-reference", "rollout-groups", "rollout-groups-1", "--json-output-and-exit-codes", "redaction"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a comment in fenced code became a heading")
	}
}
