package console

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patchbay/patchbay/internal/testcluster"
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
