package templates

import (
	"errors"
	"strings"
)

// ErrUnquotable: a value holds a NUL byte, which no environment can carry.
var ErrUnquotable = errors.New("templates: value contains a NUL byte")

// ShellQuote quotes v for POSIX sh: inside single quotes nothing is
// special, and a single quote is written as '\”. Newlines, $(), backticks,
// # and unicode stay inert.
func ShellQuote(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", ErrUnquotable
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", nil
}

// systemdEscaper escapes what systemd's EnvironmentFile parser treats as
// special inside double quotes; a newline inside them is kept as is.
var systemdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)

// SystemdQuote quotes v for a systemd EnvironmentFile.
func SystemdQuote(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", ErrUnquotable
	}
	return `"` + systemdEscaper.Replace(v) + `"`, nil
}

// dotenvEscaper follows godotenv and docker compose: backslash escapes in
// double quotes, \$ to stop interpolation, \n for a newline.
var dotenvEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`, "\r", `\r`)

// DotenvQuote quotes v for a .env file read by godotenv or docker compose.
func DotenvQuote(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", ErrUnquotable
	}
	return `"` + dotenvEscaper.Replace(v) + `"`, nil
}
