// Package redact is patchbay's one redaction policy: which values are
// secrets, and how they are shown to readers of the CLI, plans, the
// console and statuses. The resolver applies it to bindings
// (binding.Binding.Redacted); text that may quote a secret (a rendered
// file's diff) is scrubbed with Text.
package redact

import (
	"cmp"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Masked replaces a secret value.
const Masked = "(masked)"

// secretWords mark a variable or key name whose value is a secret: what
// people name passwords, tokens and keys. A false positive only hides a
// value that --show-secrets reveals.
var secretWords = []string{"PASSWORD", "PASSWD", "PWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "CERT", "AUTH"}

// SecretName reports whether a variable or key name looks like it holds
// a secret.
func SecretName(name string) bool {
	upper := strings.ToUpper(name)
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(upper, w) })
}

// Value is value as a reader may see it: Masked when name looks secret,
// else with the password of every URL in it hidden (a select-all value
// joins several with ",").
func Value(name, value string) string {
	if value == "" {
		return value
	}
	if SecretName(name) {
		return Masked
	}
	return URLPasswords(value)
}

// URLPasswords hides the password of every URL in a ","-joined value.
func URLPasswords(value string) string {
	if !strings.Contains(value, "://") {
		return value
	}
	parts := strings.Split(value, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// Secrets are the strings a value's redaction hides: the whole value when
// it is masked, else each URL password in it. Text removes them from
// free text built from the value.
func Secrets(name, value string, masked bool) []string {
	if value == "" {
		return nil
	}
	if masked || SecretName(name) {
		return []string{value}
	}
	var out []string
	for p := range strings.SplitSeq(value, ",") {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			if pw, has := u.User.Password(); has && pw != "" {
				out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
			}
		}
	}
	return out
}

// Text replaces every secret in s with Masked, the longest first, so that
// a secret containing another is masked whole. A secret shorter than
// shortSecret is replaced only where it stands alone (between characters
// that are not letters or digits): masking every "3" of a diff for a
// datastore value "3" would hide the diff, not the secret.
func Text(s string, secrets []string) string {
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	secrets = slices.Compact(secrets)
	for _, sec := range secrets {
		switch {
		case sec == "":
		case len(sec) >= shortSecret:
			s = strings.ReplaceAll(s, sec, Masked)
		default:
			re := regexp.MustCompile(`(^|[^\pL\pN])` + regexp.QuoteMeta(sec) + `($|[^\pL\pN])`)
			for re.MatchString(s) { // twice for adjacent matches, which share a boundary
				s = re.ReplaceAllString(s, "${1}"+Masked+"${2}")
			}
		}
	}
	return s
}

// shortSecret is the length below which Text replaces a secret only where
// it stands alone.
const shortSecret = 4

// ConnectURLs hides the credentials of ","-joined server URLs (NATS's
// servers, say) for errors and logs: a password, or a user given alone,
// which such servers read as a token.
func ConnectURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
