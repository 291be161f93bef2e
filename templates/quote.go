package templates

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/patchbay/patchbay/internal/errkind"
)

// ErrUnquotable: a value cannot be written in a file format so that it
// reads back the same; the file is not rendered.
var ErrUnquotable = errkind.New(errkind.Input, "templates: value cannot be quoted")

var errNUL = fmt.Errorf("%w: it contains a NUL byte, which no environment can carry", ErrUnquotable)

// ShellQuote quotes v for POSIX sh: inside single quotes nothing is
// special; a single quote closes the quotes, is escaped, and reopens them.
// Newlines, $(), backticks, # and unicode stay inert.
func ShellQuote(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", errNUL
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", nil
}

// systemdEscaper escapes what systemd's EnvironmentFile parser treats as
// special inside double quotes; a newline inside them is kept as is.
var systemdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)

// SystemdQuote quotes v for a systemd EnvironmentFile. systemd refuses a
// whole file with a value that is not UTF-8, so such a value is an error.
func SystemdQuote(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", errNUL
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("%w: it is not UTF-8, and systemd would refuse the whole file", ErrUnquotable)
	}
	return `"` + systemdEscaper.Replace(v) + `"`, nil
}

// dotenvEscaper follows godotenv and docker compose: backslash escapes in
// double quotes, \$ to stop interpolation, \n for a newline.
var dotenvEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`, "\r", `\r`)

// DotenvQuote quotes v for a .env file read by godotenv or docker compose.
// Their readers skip a quote after a backslash when looking for the closing
// quote and strip trailing quotes, so a value ending in \ or " cannot be
// written so that it reads back the same.
func DotenvQuote(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", errNUL
	}
	if strings.HasSuffix(v, `\`) || strings.HasSuffix(v, `"`) {
		return "", fmt.Errorf("%w: dotenv readers misread a value ending in a backslash or a double quote; use builtin:env or builtin:json", ErrUnquotable)
	}
	return `"` + dotenvEscaper.Replace(v) + `"`, nil
}

// mustUTF8 passes vars through when every value is UTF-8: JSON cannot
// carry other bytes, and encoding would silently replace them.
func mustUTF8(vars map[string]string) (map[string]string, error) {
	for k, v := range vars {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("%w: %s is not UTF-8, which JSON cannot carry", ErrUnquotable, k)
		}
	}
	return vars, nil
}
