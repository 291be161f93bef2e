package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// row is one figure of the results table. Met is nil for a figure with no
// target (a baseline, a count reported for information).
type row struct {
	Case   string `json:"case"`
	Figure string `json:"figure"`
	Target string `json:"target"`
	Met    *bool  `json:"met,omitempty"`
}

type results struct {
	mu   sync.Mutex
	rows []row
}

func (r *results) add(cs, figure, target string, met *bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row{cs, figure, target, met})
}

// timed records a duration against a target; a duration of -1 means the
// event did not happen within the time the suite waited.
func (r *results) timed(cs, what string, d, target time.Duration, waited time.Duration) bool {
	met := d >= 0 && d <= target
	fig := what + " " + secs(d)
	if d < 0 {
		fig = what + " > " + secs(waited) + " (not seen)"
	}
	r.add(cs, fig, "≤ "+secs(target), &met)
	return met
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func yes(b bool) *bool { return &b }

func (r *results) write(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tFIGURE MEASURED\tTARGET\tMET?")
	for _, x := range r.rows {
		met := "-"
		if x.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*x.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Case, x.Figure, x.Target, met)
	}
	tw.Flush()
}

// save writes the table as text and JSON into bin/.
func (r *results) save(repo string, took time.Duration) error {
	var b strings.Builder
	r.write(&b)
	fmt.Fprintf(&b, "suite took %s\n", took.Round(time.Second))
	if err := os.WriteFile(filepath.Join(repo, "bin", "chaos-results.txt"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("chaos: write results: %w", err)
	}
	r.mu.Lock()
	js, err := json.MarshalIndent(map[string]any{"rows": r.rows, "took_s": took.Seconds()}, "", "  ")
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(repo, "bin", "chaos-results.json"), append(js, '\n'), 0o644)
}
