package templates

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/patchbay/patchbay/manifest"
)

// ErrCheckFailed: the template's check rejected the staged file; nothing
// was installed.
var ErrCheckFailed = errors.New("templates: check failed")

// ErrCommand: a reload or other command failed or timed out.
var ErrCommand = errors.New("templates: command failed")

// BackupSuffix is appended to a destination to name its backup.
const BackupSuffix = ".bak"

// File says where and how a rendered file is installed.
type File struct {
	Destination string
	Perms       fs.FileMode
	// Owner and Group are names or numeric ids; "" leaves the process's.
	Owner, Group string
	// Check validates the staged file; manifest.StagedPlaceholder in it is
	// replaced by the staged file's path.
	Check   []string
	Backup  bool
	Timeout time.Duration // bounds Check
}

// FileOf reads the install settings of a manifest template.
func FileOf(t manifest.TemplateFile) (File, error) {
	perms, err := strconv.ParseUint(t.Perms, 8, 32)
	if err != nil {
		return File{}, fmt.Errorf("templates: perms %q: write them in octal, like \"0640\"", t.Perms)
	}
	return File{
		Destination: t.Destination, Perms: fs.FileMode(perms), Owner: t.Owner, Group: t.Group,
		Check: t.Check, Backup: t.Backup, Timeout: time.Duration(t.Timeout),
	}, nil
}

// Install puts content at f.Destination unless it is already there:
// staged beside it (same filesystem, so the rename is atomic), checked,
// the old version kept as a backup, renamed into place and the directory
// synced. A failed check or write leaves the destination untouched.
// It reports whether the file changed.
func Install(ctx context.Context, content []byte, f File) (changed bool, err error) {
	old, err := os.ReadFile(f.Destination)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("templates: read %s: %w", f.Destination, err)
	}
	if err == nil && bytes.Equal(old, content) {
		return false, f.fixMode()
	}
	staged, err := f.stage(content)
	if err != nil {
		return false, err
	}
	defer os.Remove(staged) // a no-op once renamed
	if err := f.check(ctx, staged); err != nil {
		return false, err
	}
	if f.Backup && old != nil {
		if err := backup(f.Destination); err != nil {
			return false, err
		}
	}
	if err := os.Rename(staged, f.Destination); err != nil {
		return false, fmt.Errorf("templates: install %s: %w", f.Destination, err)
	}
	return true, syncDir(filepath.Dir(f.Destination))
}

// stage writes content to a temporary file in the destination's directory
// with the final permissions and owner.
func (f File) stage(content []byte) (string, error) {
	dir, base := filepath.Split(f.Destination)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("templates: create directory for %s: %w", f.Destination, err)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".patchbay-*")
	if err != nil {
		return "", fmt.Errorf("templates: stage %s: %w", f.Destination, err)
	}
	err = errors.Join(
		write(tmp, content),
		tmp.Chmod(f.Perms),
		f.chown(tmp.Name()),
		tmp.Sync(),
		tmp.Close(),
	)
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("templates: stage %s: %w", f.Destination, err)
	}
	return tmp.Name(), nil
}

func write(f *os.File, content []byte) error {
	_, err := f.Write(content)
	return err
}

// fixMode restores permissions and owner of an unchanged file.
func (f File) fixMode() error {
	st, err := os.Stat(f.Destination)
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	if st.Mode().Perm() != f.Perms {
		if err := os.Chmod(f.Destination, f.Perms); err != nil {
			return fmt.Errorf("templates: %w", err)
		}
	}
	return f.chown(f.Destination)
}

func (f File) chown(path string) error {
	if f.Owner == "" && f.Group == "" {
		return nil
	}
	uid, gid := -1, -1
	if f.Owner != "" {
		u, err := lookupID(f.Owner, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return fmt.Errorf("owner %q: %w", f.Owner, err)
		}
		uid = u
	}
	if f.Group != "" {
		g, err := lookupID(f.Group, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return fmt.Errorf("group %q: %w", f.Group, err)
		}
		gid = g
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// lookupID accepts a numeric id or a name.
func lookupID(name string, lookup func(string) (string, error)) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	s, err := lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// check runs the check command against the staged file.
func (f File) check(ctx context.Context, staged string) error {
	if len(f.Check) == 0 {
		return nil
	}
	argv := make([]string, len(f.Check))
	for i, a := range f.Check {
		argv[i] = strings.ReplaceAll(a, manifest.StagedPlaceholder, staged)
	}
	if err := Run(ctx, argv, f.Timeout); err != nil {
		return fmt.Errorf("%w for %s, kept the installed file: %w", ErrCheckFailed, f.Destination, err)
	}
	return nil
}

// backup keeps the current destination as DEST.bak: a hard link, so the
// running version is kept without copying.
func backup(dest string) error {
	bak := dest + BackupSuffix
	if err := os.Remove(bak); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("templates: backup %s: %w", dest, err)
	}
	if err := os.Link(dest, bak); err != nil {
		return fmt.Errorf("templates: backup %s: %w", dest, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("templates: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("templates: sync %s: %w", dir, err)
	}
	return nil
}

// Check stages content beside f.Destination and runs f's check on it,
// installing nothing: what a node whose rollout is halted does.
func Check(ctx context.Context, content []byte, f File) error {
	staged, err := f.stage(content)
	if err != nil {
		return err
	}
	defer os.Remove(staged)
	return f.check(ctx, staged)
}

// RunOption configures Run.
type RunOption func(*exec.Cmd)

// WithEnv sets the command's environment (default: this process's).
func WithEnv(env []string) RunOption { return func(c *exec.Cmd) { c.Env = env } }

// WithOutput copies the command's output to w as well.
func WithOutput(w io.Writer) RunOption {
	return func(c *exec.Cmd) {
		c.Stdout = io.MultiWriter(c.Stdout, w)
		c.Stderr = c.Stdout
	}
}

// Run runs a command, bounded by timeout; its output is kept for the error.
func Run(ctx context.Context, argv []string, timeout time.Duration, opts ...RunOption) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second // a child holding the output pipe cannot hang us
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	for _, o := range opts {
		o(cmd)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %s", ctx.Err(), timeout)
		}
		return fmt.Errorf("%w: %s: %w%s", ErrCommand, strings.Join(argv, " "), err, tail(out.String()))
	}
	return nil
}

// tail is the last lines of a command's output, on one line.
func tail(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	s := strings.Join(lines, " | ")
	if s == "" {
		return ""
	}
	return ": " + s
}

// Diff is a unified diff from the installed file to the rendered one, ""
// when they are equal.
func Diff(installed, rendered []byte, name string) (string, error) {
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(installed)),
		B:        difflib.SplitLines(string(rendered)),
		FromFile: name,
		ToFile:   name + " (rendered)",
		Context:  3,
	})
	if err != nil {
		return "", fmt.Errorf("templates: diff %s: %w", name, err)
	}
	return d, nil
}
