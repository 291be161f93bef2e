package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// changesBrowser starts headless Chromium (Debian's chromium package). With
// CI=true a missing chromium fails the test; elsewhere it skips.
func changesBrowser(t *testing.T) context.Context {
	t.Helper()
	path := testcluster.RequirePrograms(t, "chromium")["chromium"]
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// pageEval evaluates a JavaScript expression in the page, with a deadline.
func pageEval[T any](t *testing.T, ctx context.Context, what, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestConsoleChangesInBrowser: with real listeners, Consul, NATS and a
// resolver, `patchbay console`'s recent changes view shows a change
// spreading in Chromium, live: one node applied with its latency, one
// paused and named; once resumed, every node applied, without a reload.
func TestConsoleChangesInBrowser(t *testing.T) {
	ctx := changesBrowser(t)
	c := startListenCluster(t)
	c.publish(t, map[string]string{"cv-a": waitManifest("cv-a", "1")})
	startWaitNode(t, c, "cva-fast", "cv-a", "1")
	held, _ := startWaitNode(t, c, "cva-held", "cv-a", "1")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	con := startDaemon(t, append(c.flags(), "console", "--addr", addr, "--refresh", "300ms")...)
	testcluster.Eventually(t, 10*time.Second, "the console serving", func() bool {
		return strings.Contains(con.stdout.String(), "patchbay console at")
	})

	if code, out, errOut := patchbay(t, "pause", "--control", held.control); code != 0 {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	before := c.storedRevision(t, "cv-a")
	if code, _, errOut := patchbay(t, "publish", "--consul-addr="+c.consul.Addr, writeServices(t, map[string]string{"cv-a": waitManifest("cv-a", "2")})); code != 0 {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	var rev uint64
	testcluster.Eventually(t, 10*time.Second, "the new revision", func() bool { rev = c.storedRevision(t, "cv-a"); return rev > before })
	target := fmt.Sprintf("cv-a@%d", rev)

	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(runCtx, chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible(`#changes-table`)); err != nil {
		t.Fatalf("open the console: %v", err)
	}
	row := func() map[string]string {
		return pageEval[map[string]string](t, ctx, "the change's row", `(() => {
			const row = [...document.querySelectorAll("#changes-table tr.change")].find((r) => r.textContent.includes("`+target+`"));
			if (!row) return {};
			return { summary: row.querySelector(".summary").textContent, latency: row.querySelector(".latency").textContent,
				waiting: row.querySelector(".waiting").textContent, held: row.querySelector('.waiting [data-node="cva-held"]')?.dataset.state ?? "" };
		})()`)
	}
	var got map[string]string
	testcluster.Eventually(t, 15*time.Second, "the change shown with cva-fast applied and cva-held paused", func() bool {
		got = row()
		return strings.HasPrefix(got["summary"], "1/2 applied") && got["held"] == "paused"
	})
	if !strings.Contains(got["latency"], "p50") || !strings.Contains(got["latency"], "slowest cva-fast") {
		t.Errorf("latency cell %q: want p50, p99 and the slowest node", got["latency"])
	}
	if strings.Contains(pageEval[string](t, ctx, "page text", `document.body.innerText`), "hunter2") {
		t.Error("the page shows a secret value")
	}
	pageEval[int](t, ctx, "mark the page", `window.patchbayMarker = 7`)

	if code, out, errOut := patchbay(t, "resume", "--control", held.control); code != 0 {
		t.Fatalf("resume: %d %s %s", code, out, errOut)
	}
	testcluster.Eventually(t, 15*time.Second, "the change applied on both nodes", func() bool {
		got = row()
		return strings.HasPrefix(got["summary"], "2/2 applied") && got["waiting"] == ""
	})
	if pageEval[int](t, ctx, "read the marker", `window.patchbayMarker`) != 7 {
		t.Error("the page was reloaded")
	}
	if out := os.Getenv("PATCHBAY_CHANGES_SCREENSHOT"); out != "" {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err == nil {
			err = os.WriteFile(out, png, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
