package command

import (
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// shells are programs whose -c word is a script: a glob in it matches shell
// code a manifest adds (`echo *` matches `echo ; reboot`).
var shells = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"}

// shellScript finds the script word of a pattern that runs a shell with
// -c: its index, and the name the shell runs as ($0); -1 when p runs no
// shell script. `**` before the script counts as one: it allows any.
func shellScript(p CommandPattern) (int, string) {
	i, name := 0, path.Base(p[0])
	for name == "env" || name == "busybox" { // env [NAME=value...] sh, busybox sh
		i++
		for i < len(p) && name == "env" && (strings.Contains(p[i], "=") || strings.HasPrefix(p[i], "-")) {
			i++
		}
		if i >= len(p) {
			return -1, ""
		}
		name = path.Base(p[i])
	}
	if !slices.Contains(shells, name) {
		return -1, ""
	}
	for j := i + 1; j < len(p); j++ {
		switch w := p[j]; {
		case w == Rest:
			return j, name
		case w == "-o" || w == "+o": // takes an option name
			j++
		case strings.HasPrefix(w, "-") && strings.Contains(w, "c") && !strings.HasPrefix(w, "--"):
			if j+1 < len(p) {
				return j + 1, name
			}
			return -1, ""
		case !strings.HasPrefix(w, "-") && !strings.HasPrefix(w, "+"):
			return -1, "" // a script file, not -c
		}
	}
	return -1, ""
}

// hasGlob reports whether a pattern word holds an unescaped glob character.
func hasGlob(w string) bool {
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// ShellGlob says whether p runs a shell script with a glob in it and, if
// so, the safer pattern: the script fixed, each word of it with a glob
// passed as an argument ("$1", ...), which the shell never reads as code.
func ShellGlob(p CommandPattern) (unsafe bool, safer CommandPattern) {
	i, name := shellScript(p)
	if i < 0 || !(p[i] == Rest || hasGlob(p[i])) {
		return false, nil
	}
	words := strings.Fields(p[i])
	if p[i] == Rest || len(words) == 0 || hasGlob(words[0]) { // the manifest picks the program
		return true, nil
	}
	var script, args []string
	for _, w := range words {
		if hasGlob(w) {
			args = append(args, w)
			w = `"$` + strconv.Itoa(len(args)) + `"`
		}
		script = append(script, w)
	}
	safer = append(append(CommandPattern{}, p[:i]...), strings.Join(script, " "), name)
	safer = append(safer, args...)
	return true, append(safer, p[i+1:]...)
}

// plainWord is a word YAML's flow style reads back unquoted.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./@%+=-]+$`)

// Flow writes a pattern as listener.yaml's list form.
func (c CommandPattern) Flow() string {
	words := make([]string, len(c))
	for i, w := range c {
		switch {
		case plainWord.MatchString(w):
			words[i] = w
		case strings.Contains(w, `"`) && !strings.Contains(w, "'"):
			words[i] = "'" + w + "'"
		default:
			words[i] = strconv.Quote(w)
		}
	}
	return "[" + strings.Join(words, ", ") + "]"
}

// WarnShellGlobs warns of every pattern that lets a manifest run shell
// code of its own, naming the safer form; file is the listener.yaml the
// patterns come from.
func WarnShellGlobs(log *slog.Logger, file string, patterns []CommandPattern) {
	for _, p := range patterns {
		unsafe, safer := ShellGlob(p)
		switch {
		case !unsafe:
		case safer == nil:
			log.Warn("allow.commands: a shell pattern that allows any script lets a manifest run anything as root; allow a script file, or a fixed script that takes its varying part as an argument",
				"file", file, "pattern", p.Flow())
		default:
			log.Warn("allow.commands: a glob in a shell's script matches shell code a manifest adds (`; reboot`); fix the script and pass the varying part as an argument",
				"file", file, "pattern", p.Flow(), "safer", safer.Flow())
		}
	}
}
