package dev

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchbay/patchbay/listener"
)

// table shows every node's state, as its control endpoint reports it: the
// nodes of this process and those of patchbay dev node alike.
type table struct {
	cluster Cluster
	out     io.Writer
	live    bool
	events  <-chan string
	recent  []string // owned by run
	last    string   // the last table printed, when not live
	client  *http.Client
}

const recentEvents = 8

func newTable(c Cluster, out io.Writer, live bool, events <-chan string) *table {
	return &table{cluster: c, out: out, live: live, events: events, client: &http.Client{Timeout: 500 * time.Millisecond}}
}

// run redraws the table every second until ctx ends. Live, it redraws in
// place with the recent events below; otherwise it prints the table again
// only when a row changed, for logs and scripts.
func (t *table) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		t.draw(ctx)
		select {
		case <-ctx.Done():
			return
		case e := <-t.events:
			t.recent = append(t.recent[max(0, len(t.recent)-recentEvents+1):], e)
		case <-tick.C:
		}
	}
}

func (t *table) draw(ctx context.Context) {
	rows := t.rows(ctx)
	if !t.live {
		if rows != t.last {
			fmt.Fprintf(t.out, "\n%s\n%s", time.Now().Format("15:04:05"), rows)
			t.last = rows
		}
		return
	}
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J") // home, clear screen
	fmt.Fprintf(&b, "patchbay dev: Consul %s, NATS %s, files in %s/<node>/  (Ctrl-C stops everything)\n\n", t.cluster.ConsulAddr, t.cluster.NATSURL, t.cluster.Dir)
	b.WriteString(rows)
	b.WriteString("\nrecent events (all in " + filepath.Join(t.cluster.Dir, "dev.log") + "):\n")
	for _, e := range t.recent {
		b.WriteString("  " + truncate(e, 150) + "\n")
	}
	_, _ = io.WriteString(t.out, b.String())
}

// rows formats one row per node, from its control endpoint's /status.
func (t *table) rows(ctx context.Context) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSERVICES\tREVISION\tLAST PROVISION\tRESULT\tQUEUE\tCONTROL")
	for _, path := range nodeFiles(t.cluster.Dir) {
		if nodeGone(path) { // its patchbay dev node was killed: forget it rather than show it unreachable forever
			forgetNode(t.cluster.Dir, path)
			continue
		}
		cfg, err := listener.LoadConfig(path, globalKeys...)
		if err != nil {
			continue // being written
		}
		var services []string
		for _, s := range cfg.Services {
			services = append(services, s.Service)
		}
		r, err := t.status(ctx, cfg.Control)
		if err != nil {
			fmt.Fprintf(w, "%s\t%s\t-\t-\tunreachable\t-\t%s\n", cfg.Node, strings.Join(services, ","), cfg.Control)
			continue
		}
		revision, last, result := "-", "-", "-"
		if run := r.LastRun; run != nil {
			revs := map[string]uint64{}
			for _, s := range run.Services {
				revs[s.Service] = s.Revision
			}
			var parts []string
			for _, s := range services {
				parts = append(parts, fmt.Sprint(revs[s]))
			}
			revision = strings.Join(parts, ",")
			last = t.lastProvision(run)
			result = run.Result
			if run.Message != "" {
				result += ": " + truncate(run.Message, 60)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cfg.Node, strings.Join(services, ","), revision, last, result, queueState(r.Queue), cfg.Control)
	}
	_ = w.Flush()
	return b.String()
}

// lastProvision is when the run finished and how long it took: finished,
// as patchbay status's AGE counts (the time its outcome was recorded).
func (t *table) lastProvision(run *listener.RunReport) string {
	return t.when(run.Started.Add(run.Duration)) + " (" + run.Duration.Round(time.Millisecond).String() + ")"
}

// when is how long ago at was when live, the clock time otherwise, so
// that a printed table changes only when a run does.
func (t *table) when(at time.Time) string {
	if t.live {
		return time.Since(at).Round(time.Second).String() + " ago"
	}
	return at.Format("15:04:05")
}

func (t *table) status(ctx context.Context, addr string) (listener.Report, error) {
	var r listener.Report
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return r, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return r, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status %s", resp.Status)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

func queueState(q listener.QueueState) string {
	var parts []string
	if q.Paused {
		parts = append(parts, "paused")
	}
	if q.Running {
		parts = append(parts, "running")
	}
	if q.Pending {
		parts = append(parts, "pending")
	}
	if !q.RetryAt.IsZero() {
		parts = append(parts, "retry "+q.RetryAt.Format("15:04:05"))
	}
	if len(parts) == 0 {
		return "idle"
	}
	return strings.Join(parts, ",")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
