package main

import (
	"encoding/json"
	"fmt"
)

// printJSON writes v as indented JSON, the --json output of every command.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
