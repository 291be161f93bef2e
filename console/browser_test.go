package console

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

// browser starts headless Chromium (Debian's chromium package) for the
// test. With CI=true a missing chromium fails the test; elsewhere it skips.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := testcluster.RequirePrograms(t, "chromium")["chromium"]
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs steps with a deadline.
func run(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one action with a deadline and returns its value.
func value[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestConsoleInBrowser drives the page in real headless Chromium: it lists
// every published service, shows an unresolved requirement's reason, and a
// new registration appears within 2 s without a reload.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	f := newConsoleFixture(t)
	run(t, ctx, 30*time.Second, "open the console", chromedp.Navigate(f.srv.URL), chromedp.WaitVisible(`#fed-default .graph svg`))
	for _, svc := range []string{"api", "web", "www", "lb"} {
		run(t, ctx, 5*time.Second, "service "+svc+" listed", chromedp.WaitVisible(`#svc-default-`+svc))
	}
	reason := value(t, ctx, 5*time.Second, "unresolved reason", chromedp.Text(`#svc-default-www tr.var.unresolved[data-var="SEARCH_URL"] .why`))
	if !strings.Contains(reason, "MISSING_URL") {
		t.Fatalf("reason shown for SEARCH_URL: %q", reason)
	}

	// A marker on window survives only if the page is never reloaded.
	value(t, ctx, 5*time.Second, "mark the page", chromedp.Evaluate[int](`window.patchbayMarker = 42`))
	f.register(t, "api", "n9", 8009)
	registered := time.Now()
	run(t, ctx, 2*time.Second, "new registration shown within 2s", chromedp.WaitVisible(`#svc-default-api tr[data-instance="api@n9:8009"]`))
	t.Logf("registration shown after %s", time.Since(registered).Round(time.Millisecond))
	if marker := value(t, ctx, 5*time.Second, "read the marker", chromedp.Evaluate[int](`window.patchbayMarker`)); marker != 42 {
		t.Fatal("the page was reloaded")
	}

	if out := os.Getenv("PATCHBAY_CONSOLE_SCREENSHOT"); out != "" {
		png := value(t, ctx, 10*time.Second, "screenshot", chromedp.FullScreenshot(90))
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConsoleFleetInBrowser: the page as a fleet's operator reads it. The
// graph draws only edges the engine binds (a non-public *_URL glob never
// reaches a datastore); a run shows its age with the local time on hover;
// a long node name stays on one line; a run's reason shows once; the
// filter finds services and nodes by service, node or federation; and a
// node page lists the node's runs, queue and services.
func TestConsoleFleetInBrowser(t *testing.T) {
	ctx := browser(t)
	f := newConsoleFixture(t)
	bg := context.Background()
	m, err := manifest.Parse("lb-internal.yaml", []byte("id: lb-internal\nrequires:\n  ROUTES: {key: \"*_URL\", select: all, optional: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Publish(bg, m); err != nil {
		t.Fatal(err)
	}
	const long = "eu-west-1a-internal-balancer-0001"
	const reason = "cannot render www.env"
	statuses := []registry.Status{
		{Node: long, Federation: "default", Result: "failed", Message: "www failed: " + reason, Revision: 3, At: time.Now().Add(-20 * time.Second),
			Details: map[string]string{"www": "failed (revision 3): " + reason}},
		{Node: "n2", Federation: "default", Result: "ok", Revision: 3, At: time.Now().Add(-time.Minute)},
	}
	for _, s := range statuses {
		if err := f.reg.PutStatus(bg, s); err != nil {
			t.Fatal(err)
		}
	}
	f.register(t, "api", long, 8011)
	f.register(t, "web", "n2", 8012)

	row := `#nodes tr[data-node="` + long + `"]`
	run(t, ctx, 30*time.Second, "open the console", chromedp.EmulateViewport(900, 1000), chromedp.Navigate(f.srv.URL),
		chromedp.WaitVisible(`#fed-default .graph svg`), chromedp.WaitVisible(`#svc-default-lb-internal`), chromedp.WaitVisible(row))

	edges := value(t, ctx, 5*time.Second, "graph edges", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#fed-default .graph g.edge title")].map((e) => e.textContent)`))
	if !slices.Contains(edges, "www->datastore:DB_URL") {
		t.Fatalf("graph edges %q lack www->datastore:DB_URL", edges)
	}
	for _, e := range edges {
		if strings.HasPrefix(e, "lb-internal->datastore:") {
			t.Errorf("graph draws %s, which a glob can never bind (edges %q)", e, edges)
		}
	}

	at := value(t, ctx, 5*time.Second, "last run's time", chromedp.Text(row+` td:nth-child(2) time`))
	title := value(t, ctx, 5*time.Second, "last run's hover", chromedp.AttributeValue(row+` td:nth-child(2) time`, "title"))
	if !strings.HasSuffix(at, "ago") || strings.Contains(at, "2026") || !title.Exists || !strings.Contains(title.Value, "2026") {
		t.Errorf("last run shown as %q, title %+v; want an age like \"20 sec. ago\" and the date on hover", at, title)
	}
	lines := value(t, ctx, 5*time.Second, "node name lines", chromedp.Evaluate[int](`(() => {
		const td = document.querySelector('`+row+` td:first-child');
		const text = document.createTreeWalker(td, NodeFilter.SHOW_TEXT).nextNode();
		const r = document.createRange(); r.selectNodeContents(text);
		return r.getClientRects().length; })()`))
	if lines != 1 {
		t.Errorf("node name %s takes %d lines, want 1", long, lines)
	}
	reasons := value(t, ctx, 5*time.Second, "reason cell", chromedp.Text(row+` td:nth-child(4)`))
	if n := strings.Count(reasons, reason); n != 1 {
		t.Errorf("the run's reason is shown %d times, want once: %q", n, reasons)
	}

	shown := func(what string) map[string]bool {
		t.Helper()
		return value(t, ctx, 5*time.Second, what, chromedp.Evaluate[map[string]bool](`Object.fromEntries(
			[...document.querySelectorAll(".service[data-service], #nodes tr[data-node]")].map((el) => [el.dataset.service || "node " + el.dataset.node, el.offsetParent !== null]))`))
	}
	for _, tt := range []struct{ filter, visible, hidden string }{
		{"n2", "web,node n2", "api,www,lb,lb-internal,node " + long},
		{"internal", "api,lb-internal,node " + long, "web,www,lb,node n2"},
		{"default", "api,web,www,lb,lb-internal,node n2,node " + long, ""},
	} {
		value(t, ctx, 5*time.Second, "clear the filter", chromedp.Evaluate[bool](`document.querySelector("#filter").value = ""; true`))
		run(t, ctx, 5*time.Second, "filter "+tt.filter, chromedp.SendKeys(`#filter`, tt.filter)) // typed: the page filters on input
		got := shown("filtered by " + tt.filter)
		for _, name := range strings.Split(tt.visible, ",") {
			if !got[name] {
				t.Errorf("filter %q hides %s (%v)", tt.filter, name, got)
			}
		}
		for _, name := range strings.Split(tt.hidden, ",") {
			if name != "" && got[name] {
				t.Errorf("filter %q shows %s (%v)", tt.filter, name, got)
			}
		}
	}

	run(t, ctx, 5*time.Second, "open the node page", chromedp.Click(row+` td:first-child a`), chromedp.WaitVisible(`#node #svc-default-api`))
	page := value(t, ctx, 5*time.Second, "node page", chromedp.Text(`#node-body`))
	for _, want := range []string{"node " + long, "www", "failed (revision 3): " + reason, "ago", "api@" + long + ":8011"} {
		if !strings.Contains(page, want) {
			t.Errorf("node page lacks %q:\n%s", want, page)
		}
	}
	if hash := value(t, ctx, 5*time.Second, "address", chromedp.Evaluate[string](`location.hash`)); hash != "#node="+long {
		t.Errorf("node page address %q, want #node=%s (linkable)", hash, long)
	}

	// Anyone can send a link: the address's node name is text, never
	// markup, and a malformed escape in it does not break the page.
	for _, tt := range []struct{ hash, heading string }{
		{`%3Cimg%20id%3Dinjected%20src%3Dx%3E`, "node <img id=injected src=x>"},
		{`%3Cimg%20id%3Dinjected%20src%3Dx%3E%E0%A4%A`, "node %3Cimg%20id%3Dinjected%20src%3Dx%3E%E0%A4%A"},
	} {
		run(t, ctx, 10*time.Second, "open a crafted node link", chromedp.Navigate(f.srv.URL+"/#node="+tt.hash), chromedp.WaitVisible(`#node #node-body h2`))
		crafted := value(t, ctx, 5*time.Second, "crafted node page", chromedp.Evaluate[[]string](`[document.querySelector("#node-body h2").textContent, String(document.querySelector("#injected"))]`))
		if crafted[0] != tt.heading || crafted[1] != "null" {
			t.Errorf("link #node=%s: heading %q, injected element %s; want %q as text and no element", tt.hash, crafted[0], crafted[1], tt.heading)
		}
	}
}
