package alive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAsk(t *testing.T) {
	p := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // the loop
		defer close(done)
		select {
		case <-p.C():
		case <-ctx.Done():
		}
	}()
	if err := p.Ask(context.Background(), "test loop"); err != nil {
		t.Fatalf("a waiting loop: %v", err)
	}
	cancel()
	<-done
	short, stop := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer stop()
	err := p.Ask(short, "test loop")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "test loop did not answer") {
		t.Fatalf("no loop: %v", err)
	}
}
