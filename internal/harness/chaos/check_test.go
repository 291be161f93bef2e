package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// binding is the part of app's stored binding its file depends on.
type binding struct {
	Revision uint64 `json:"revision"`
	Vars     map[string]struct {
		Value string `json:"value"`
	} `json:"vars"`
}

const bindingKey = "patchbay/bindings/default/app/_"

func (c *cluster) storedBinding() (binding, error) {
	var b binding
	cl, err := c.consul()
	if err != nil {
		return b, err
	}
	pair, _, err := cl.KV().Get(bindingKey, nil)
	if err != nil {
		return b, fmt.Errorf("read %s: %w", bindingKey, err)
	}
	if pair == nil {
		return b, fmt.Errorf("no binding at %s", bindingKey)
	}
	if err := json.Unmarshal(pair.Value, &b); err != nil {
		return b, fmt.Errorf("binding at %s: %w", bindingKey, err)
	}
	return b, nil
}

// filesMatch compares every host's file with what the stored binding
// implies.
func (c *cluster) filesMatch() error {
	b, err := c.storedBinding()
	if err != nil {
		return err
	}
	want := expectedFile(b.Revision, b.Vars["MARK"].Value, b.Vars["BACKENDS"].Value)
	var errs []error
	for _, h := range c.hosts {
		st, err := readFile(h)
		if err != nil {
			errs = append(errs, err)
		} else if st.raw != want {
			errs = append(errs, fmt.Errorf("%s renders %q, the binding implies %q", h.name, st.raw, want))
		}
	}
	return errors.Join(errs...)
}

// stagedFiles lists files a listener staged and never installed or removed.
func (c *cluster) stagedFiles() []string {
	var staged []string
	for _, h := range c.hosts {
		_ = filepath.WalkDir(h.root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".patchbay-") {
				staged = append(staged, path)
			}
			return nil
		})
	}
	return staged
}

// finalCheck is every case's end: the files converge on the stored binding
// within the settle time, no staged file is left, and no listener's
// revision went backwards during the case.
func (c *cluster) finalCheck(ctx context.Context) error {
	var errs []error
	if err := poll(ctx, c.opts.settle, c.filesMatch); err != nil {
		errs = append(errs, fmt.Errorf("files did not converge on the stored binding: %w", err))
	}
	if staged := c.stagedFiles(); len(staged) > 0 {
		errs = append(errs, fmt.Errorf("staged files left behind: %s", strings.Join(staged, ", ")))
		for _, f := range staged { // reported once: the next case is judged on its own
			_ = os.Remove(f)
		}
	}
	if back := c.samples.regressions(); len(back) > 0 {
		errs = append(errs, fmt.Errorf("revisions went backwards: %s", strings.Join(back, "; ")))
	}
	return errors.Join(errs...)
}

// sampler watches every host's rendered revision (in its file) and
// applied revision (in /status) for the whole run, and remembers each time
// one went backwards.
type sampler struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	back []string
}

func startSampler(c *cluster) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{cancel: cancel}
	for _, h := range c.hosts {
		s.wg.Add(1)
		go func() { // owned by s; stop waits
			defer s.wg.Done()
			s.watch(ctx, h)
		}()
	}
	return s
}

func (s *sampler) watch(ctx context.Context, h *host) {
	var file, applied uint64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if st, err := readFile(h); err == nil && st.revision != 0 {
			s.see(h.name+" file", &file, st.revision)
		}
		if i%5 != 0 {
			continue
		}
		st, err := status(ctx, h)
		if err != nil || st.LastRun == nil {
			continue
		}
		for _, sv := range st.LastRun.Services {
			if sv.Service == "app" && sv.Revision != 0 {
				s.see(h.name+" /status", &applied, sv.Revision)
			}
		}
	}
}

func (s *sampler) see(what string, last *uint64, rev uint64) {
	if rev < *last {
		s.mu.Lock()
		s.back = append(s.back, fmt.Sprintf("%s %d → %d at %s", what, *last, rev, time.Now().Format("15:04:05.000")))
		s.mu.Unlock()
	}
	*last = rev
}

// regressions returns and forgets the regressions seen so far.
func (s *sampler) regressions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	back := s.back
	s.back = nil
	return back
}

func (s *sampler) stop() {
	s.cancel()
	s.wg.Wait()
}
