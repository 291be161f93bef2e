// Command floor is the least a consumer driven by patchbay's events can do
// per change, for `make bench`'s cost row: receive the bindings event,
// decode it and its binding, write the providers' address:port lines to a
// file durably (a temporary file, fsync, rename), as consul-template writes
// its files. It verifies no signature, confines no path, keeps no last
// good file and watches no drift: its CPU per change is a floor, not a
// consumer anyone should run.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
)

func main() {
	url := flag.String("nats-url", nats.DefaultURL, "NATS server")
	service := flag.String("service", "consumer", "the consumer service whose bindings events to follow")
	variable := flag.String("var", "UPSTREAMS", "the requirement whose providers the file lists")
	out := flag.String("out", "upstreams.txt", "the file to write")
	flag.Parse()
	if err := run(*url, events.BindingsSubject("default", *service), *variable, *out); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(url, subject, variable, out string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if err := apply(m.Data, variable, out); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
		}
	}); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return nil
}

// apply writes the providers of variable in the event's binding to out.
func apply(data []byte, variable, out string) error {
	var e events.BindingsChanged
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	var b binding.Binding
	if err := json.Unmarshal(e.Binding, &b); err != nil {
		return err
	}
	var lines []byte
	for _, p := range b.Vars[variable].Providers {
		lines = fmt.Appendf(lines, "%s:%d\n", p.Address, p.Port)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".floor-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(lines)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		_ = os.Remove(tmp.Name()) // the error says what failed
	}
	return err
}
