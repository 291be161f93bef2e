package main

import (
	"os"
	"strings"
)

// controlToken reads the control endpoint's token from file ("" for none).
func controlToken(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", usageErrorf("--control-token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", usageErrorf("--control-token-file %s is empty; give the file listener.yaml's control_token_file names", file)
	}
	return token, nil
}
