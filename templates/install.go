package templates

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// ErrCheckFailed: the template's check rejected the staged file; nothing
// was installed.
var ErrCheckFailed = errkind.New(errkind.Input, "templates: check failed")

// ErrCommand: a reload or other command failed or timed out.
var ErrCommand = errkind.New(errkind.Backend, "templates: command failed")

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
	// Env is Check's environment (nil: PATH only, as Run).
	Env []string
	// Guard, when set, is asked before Check runs, with the argv that
	// runs and the staged path it names; an error refuses the check.
	Guard func(argv []string, staged string) error
	// Log reports the staged files a killed install left and the first
	// install removed (nil: slog.Default()).
	Log *slog.Logger
	// Root confines Destination ("" for "/"): every directory below it on
	// the way is a real directory, never a symbolic link, and what is at
	// Destination is replaced, never followed (ErrConfined).
	Root string
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
// the old version kept as a backup and renamed into place. A failed check
// or write leaves the destination untouched. The staged file is synced, so
// the name never points at a torn file; the directory is not: a rename a
// power cut loses leaves the previous complete file, which the listener
// renders again from Consul when it starts, and a second journal commit
// per file is what made a fleet's runs queue behind one another's fsyncs.
// It reports whether the file changed. The first call for a destination in
// a process first removes what a killed install left (RemoveStaged).
func Install(ctx context.Context, content []byte, f File) (changed bool, err error) {
	changed, _, err = InstallStamped(ctx, content, f)
	return changed, err
}

// InstallStamped is Install, and the installed file's Stamp once content
// is in place (the zero Stamp where none could be taken): taken through
// the descriptor Install wrote or read, so it is the file Install left,
// which lets a watcher tell its own install from a later edit without
// reading the file again.
func InstallStamped(ctx context.Context, content []byte, f File) (changed bool, stamp Stamp, err error) {
	d, err := f.openDir(true)
	if err != nil {
		return false, Stamp{}, err
	}
	defer d.close()
	f.sweepOnce(d)
	cur, err := d.readKnown()
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotRegular):
		cur = installed{} // nothing there, or something the install replaces
	case err != nil:
		return false, Stamp{}, fmt.Errorf("templates: read %s: %w", f.Destination, err)
	}
	defer cur.close()
	old := cur.content
	if old != nil && bytes.Equal(old, content) {
		stamp, err := f.keepMode(d, cur)
		return false, stamp, err
	}
	staged, err := f.stage(d, content)
	if err != nil {
		return false, Stamp{}, err
	}
	defer func() { staged.release() }() // sees renamed
	if err := f.check(ctx, d.name(staged.name)); err != nil {
		return false, Stamp{}, err
	}
	if f.Backup && old != nil {
		if err := backup(d); err != nil {
			return false, Stamp{}, err
		}
	}
	before := stampFile(staged.File)
	// Renaming over a symbolic link replaces the link, not its target.
	if err := d.root.Rename(staged.name, d.base); err != nil {
		return false, Stamp{}, fmt.Errorf("templates: install %s: %w", f.Destination, err)
	}
	staged.renamed = true
	stamp = unwrittenSince(before, stampFile(staged.File))
	known.remember(d.name(d.base), content, stamp)
	return true, stamp, nil
}

// unwrittenSince is after when the file was not written since before was
// taken, else the zero Stamp: the install cannot vouch for its content.
// An edit landing between the rename and the stat after it would otherwise
// be stamped as the install's own content, and never be put right. The
// rename, and a mode fixed through the descriptor, change only the change
// time and the mode; any write changes the size or the modification time.
func unwrittenSince(before, after Stamp) Stamp {
	if before == (Stamp{}) || before.dev != after.dev || before.ino != after.ino ||
		before.size != after.size || before.mtime != after.mtime {
		return Stamp{}
	}
	return after
}

// stampFile is the stamp of an open file; the zero Stamp if it has none.
func stampFile(file *os.File) Stamp {
	fi, err := file.Stat()
	if err != nil {
		return Stamp{}
	}
	s, _ := stampOf(fi)
	return s
}

// keepMode restores the permissions and owner of an unchanged file
// (through a descriptor, never a link's target) and returns its stamp.
func (f File) keepMode(d *destDir, cur installed) (Stamp, error) {
	if cur.mode.Perm() == f.Perms && f.Owner == "" && f.Group == "" {
		return cur.stamp, nil
	}
	file := cur.file
	if file == nil { // known without opening it
		opened, err := d.openInstalled()
		if err != nil {
			return Stamp{}, fmt.Errorf("templates: %w", err)
		}
		defer func() { _ = opened.Close() }() // only its mode and owner fixed through it
		if stampFile(opened) != cur.stamp {
			return Stamp{}, fmt.Errorf("%w: %s changed while being installed; the next run installs it", ErrNotRegular, d.name(d.base))
		}
		file = opened
	}
	before := stampFile(file)
	if err := f.fixMode(file); err != nil {
		return Stamp{}, err
	}
	stamp := unwrittenSince(before, stampFile(file))
	known.remember(d.name(d.base), cur.content, stamp)
	return stamp, nil
}

// stagedFile is a staged file, open and locked until released: the lock is
// what tells RemoveStaged, in this process or another, that it is in use.
type stagedFile struct {
	*os.File
	dir     *destDir
	name    string      // in dir
	mode    fs.FileMode // its permissions when created
	renamed bool        // into place: the name may be another install's now
}

// release removes the staged file (unless renamed) and then drops the lock.
func (s stagedFile) release() {
	if !s.renamed {
		_ = s.dir.root.Remove(s.name)
	}
	_ = s.Close() // only held for its lock
}

// stage writes content to a temporary file in the destination's directory
// with the final permissions and owner, and keeps it locked. A file with
// no owner or group to set is created with its permissions: a chmod is
// left only for what the umask took away.
func (f File) stage(d *destDir, content []byte) (stagedFile, error) {
	perm := fs.FileMode(0o600) // until its owner is set
	if f.Owner == "" && f.Group == "" {
		perm = f.Perms.Perm()
	}
	tmp, err := createLocked(d, stagedPrefix(d.base), perm)
	if err != nil {
		return stagedFile{}, fmt.Errorf("templates: stage %s: %w", f.Destination, err)
	}
	err = write(tmp.File, content)
	if err == nil && tmp.mode != f.Perms {
		err = tmp.Chmod(f.Perms)
	}
	err = errors.Join(err, f.chown(tmp.File), tmp.Sync())
	if err != nil {
		tmp.release()
		return stagedFile{}, fmt.Errorf("templates: stage %s: %w", f.Destination, err)
	}
	return tmp, nil
}

// createLocked creates a file named prefix and random digits in d with
// perm (less the umask), and locks it. A RemoveStaged in another process
// can remove the name between the two: then the lock is on a file no
// longer there, and a fresh one is made.
func createLocked(d *destDir, prefix string, perm fs.FileMode) (stagedFile, error) {
	for attempt := 1; ; attempt++ {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		tmp, err := d.open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && attempt < 100 {
			continue
		}
		if err != nil {
			return stagedFile{}, err
		}
		s := stagedFile{File: tmp, dir: d, name: name}
		if err := lockStaged(tmp); err != nil {
			s.release() // nothing written yet; the lock error is the one to report
			return stagedFile{}, err
		}
		held, err1 := tmp.Stat()
		named, err2 := d.root.Lstat(name)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			s.mode = held.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			return s, nil
		}
		_ = tmp.Close() // removed under us by another staging: nothing written, try again
		if attempt >= 10 {
			return stagedFile{}, fmt.Errorf("%s: staged files keep being removed while staging", d.path)
		}
	}
}

// stagedPrefix starts the name of every file staged for a destination
// named base: ".BASE.patchbay-", then os.CreateTemp's random digits.
func stagedPrefix(base string) string { return "." + base + ".patchbay-" }

// sweeps records the destinations this process has swept: once is enough,
// since from then on this process removes every file it stages, and a
// sweep costs a directory read the hot path need not pay at every run.
var sweeps = newSweeper((*destDir).removeStaged)

// sweeper runs remove once per destination. Its lock guards only the
// bookkeeping, never the directory I/O: a sweep of a slow directory (a
// hung network mount) must not hold up installs everywhere else.
type sweeper struct {
	remove func(*destDir) ([]string, error)
	mu     sync.Mutex
	state  map[string]sweepState
}

type sweepState uint8

const (
	sweepRunning sweepState = iota + 1
	sweepDone
)

func newSweeper(remove func(*destDir) ([]string, error)) *sweeper {
	return &sweeper{remove: remove, state: map[string]sweepState{}}
}

// sweepOnce runs RemoveStaged for f's destination the first time it is
// installed or checked in this process. A failure is logged, not returned:
// leftovers must not stop a new version from being installed; the sweep is
// tried again at the next install.
func (f File) sweepOnce(d *destDir) { sweeps.once(f, d) }

// once sweeps d for f unless a sweep of it is done or under way: a file
// this install stages is locked, so a concurrent sweep leaves it alone.
func (s *sweeper) once(f File, d *destDir) {
	s.mu.Lock()
	if s.state[f.Destination] != 0 {
		s.mu.Unlock()
		return
	}
	s.state[f.Destination] = sweepRunning
	s.mu.Unlock()

	log := cmp.Or(f.Log, slog.Default())
	removed, err := s.remove(d)
	for _, p := range removed {
		log.Info("removed a file staged by an interrupted install", "file", p, "destination", f.Destination)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		log.Warn("cannot remove files staged by an interrupted install", "destination", f.Destination, "err", err)
		delete(s.state, f.Destination) // tried again at the next install
		return
	}
	s.state[f.Destination] = sweepDone
}

// RemoveStaged removes the staged files a killed install (kill -9 during a
// check, a crash, a power cut) left beside dest: they hold a full rendered
// file with its final permissions, secrets included. A staged file an
// install still holds, in this process or another, is kept. It returns the
// paths removed.
func RemoveStaged(dest string) ([]string, error) {
	dir := filepath.Dir(dest)
	r, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("templates: look for staged files of %s: %w", dest, err)
	}
	d := &destDir{root: r, path: dir, base: filepath.Base(dest)}
	defer d.close()
	return d.removeStaged()
}

// removeStaged is RemoveStaged in d.
func (d *destDir) removeStaged() ([]string, error) {
	dest := d.name(d.base)
	dir, err := d.root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("templates: look for staged files of %s: %w", dest, err)
	}
	entries, err := dir.ReadDir(-1)
	_ = dir.Close() // read only
	if err != nil {
		return nil, fmt.Errorf("templates: look for staged files of %s: %w", dest, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), stagedPrefix(d.base))
		if !ok || !e.Type().IsRegular() || !allDigits(suffix) {
			continue
		}
		gone, err := d.removeUnlocked(e.Name())
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed = append(removed, d.name(e.Name()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("templates: remove staged files of %s: %w", dest, err)
	}
	return removed, nil
}

// removeUnlocked removes name unless an install holds its lock; the lock
// is held while removing, so no install can take the file meanwhile. A
// name that is not a regular file is not a staged file and is left alone.
func (d *destDir) removeUnlocked(name string) (removed bool, err error) {
	before, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // its install finished meanwhile
	}
	if err != nil || !before.Mode().IsRegular() {
		return false, err
	}
	f, err := d.open(name, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }() // only opened to test its lock
	if now, err := f.Stat(); err != nil || !os.SameFile(before, now) {
		return false, err
	}
	free, err := tryLockStaged(f)
	if err != nil || !free {
		return false, err
	}
	if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func write(f *os.File, content []byte) error {
	_, err := f.Write(content)
	return err
}

// fixMode restores permissions and owner of an unchanged file, through
// its open descriptor (never a link's target).
func (f File) fixMode(file *os.File) error {
	st, err := file.Stat()
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	if st.Mode().Perm() != f.Perms {
		if err := file.Chmod(f.Perms); err != nil {
			return fmt.Errorf("templates: %w", err)
		}
	}
	return f.chown(file)
}

func (f File) chown(file *os.File) error {
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
	if err := file.Chown(uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", file.Name(), err)
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
	argv := ExpandStaged(f.Check, staged)
	if f.Guard != nil {
		if err := f.Guard(argv, staged); err != nil {
			return fmt.Errorf("%w for %s, kept the installed file: %w", ErrCheckFailed, f.Destination, err)
		}
	}
	var opts []RunOption
	if f.Env != nil {
		opts = append(opts, WithEnv(f.Env))
	}
	if err := Run(ctx, argv, f.Timeout, opts...); err != nil {
		return fmt.Errorf("%w for %s, kept the installed file: %w", ErrCheckFailed, f.Destination, err)
	}
	return nil
}

// ExpandStaged is a check command with manifest.StagedPlaceholder replaced
// by the staged file's path.
func ExpandStaged(check []string, staged string) []string {
	argv := make([]string, len(check))
	for i, a := range check {
		argv[i] = strings.ReplaceAll(a, manifest.StagedPlaceholder, staged)
	}
	return argv
}

// StagedExample is a path like those dest's file is staged at, for
// matching a check command before anything is staged: the real ones end in
// other digits.
func StagedExample(dest string) string {
	return filepath.Join(filepath.Dir(dest), stagedPrefix(filepath.Base(dest))+"0")
}

// backup keeps the current destination as DEST.bak: a hard link, so the
// running version is kept without copying.
func backup(d *destDir) error {
	bak := d.base + BackupSuffix
	if err := d.root.Remove(bak); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("templates: backup %s: %w", d.name(d.base), err)
	}
	if err := d.root.Link(d.base, bak); err != nil {
		return fmt.Errorf("templates: backup %s: %w", d.name(d.base), err)
	}
	return nil
}

// Check stages content beside f.Destination and runs f's check on it,
// installing nothing: what a node whose rollout is halted does.
func Check(ctx context.Context, content []byte, f File) error {
	d, err := f.openDir(true)
	if err != nil {
		return err
	}
	defer d.close()
	f.sweepOnce(d)
	staged, err := f.stage(d, content)
	if err != nil {
		return err
	}
	defer staged.release()
	return f.check(ctx, d.name(staged.name))
}

// RunOption configures Run.
type RunOption func(*exec.Cmd)

// WithOutput copies the command's output to w as well.
func WithOutput(w io.Writer) RunOption {
	return func(c *exec.Cmd) {
		c.Stdout = io.MultiWriter(c.Stdout, w)
		c.Stderr = c.Stdout
	}
}

// Run runs a command, with BaseEnv unless WithEnv gives another
// environment, bounded by timeout, in a process group of its own that is
// killed whole on timeout. Its error is a *CommandError: the last
// MaxKeptOutput bytes of the output are kept there (CommandOutput), apart
// from the message, which travels further than the node.
func Run(ctx context.Context, argv []string, timeout time.Duration, opts ...RunOption) error {
	if len(argv) == 0 || argv[0] == "" {
		// Validation refuses such a command; a manifest written past it
		// must still fail here, not panic.
		return fmt.Errorf("%w: no program to run: the command is empty", ErrCommand)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second // a child holding the output pipe cannot hang us
	cmd.Env = BaseEnv()
	contain(cmd)
	out := NewTailBuffer(MaxKeptOutput)
	cmd.Stdout, cmd.Stderr = out, out
	for _, o := range opts {
		o(cmd)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %s", ctx.Err(), timeout)
		}
		return &CommandError{Argv: argv, Err: err, Output: out.String()}
	}
	return nil
}

// CommandError is a command that failed or timed out. Its message names
// the command and the cause, never the output: messages end up in the
// node's status, which leaves the node, and a command may print anything
// it can read (as root). Output is for the node's own log.
type CommandError struct {
	Argv   []string
	Err    error
	Output string // the end of what the command printed
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%v: %s: %v", ErrCommand, strings.Join(e.Argv, " "), e.Err)
}

// Unwrap lets errors.Is match ErrCommand and the cause (a deadline, say).
func (e *CommandError) Unwrap() []error { return []error{ErrCommand, e.Err} }

// CommandOutput is the last lines of the output of the command err
// reports, on one line; "" when err is not a command's or it printed
// nothing. Log it on the node; never put it in a status or reason.
func CommandOutput(err error) string {
	var ce *CommandError
	if !errors.As(err, &ce) {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(ce.Output), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// OutputAttr is the end of a failed command's output for the node's log,
// the one place it goes: reasons and statuses leave the node, and carry
// the command and its exit status only. No attribute when err is not a
// command's or it printed nothing.
func OutputAttr(err error) slog.Attr {
	if out := CommandOutput(err); out != "" {
		return slog.String("output", out)
	}
	return slog.Attr{}
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
