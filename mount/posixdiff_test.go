package mount

// TestPOSIXDifferential runs the same file operations in a native
// directory and in an item of a clfs mount and compares, after every
// operation, what each side returned and what lstat and fstat say.
//
// What is compared, and where clfs differs from a native file system by
// design (ARCHITECTURE.md, "Writes: update sessions"), so it is not:
//
//   - the result of every operation: ok or the exact errno (close too: it
//     commits), and the byte count of writes;
//   - the bytes a pread returns, on a descriptor that sees the file as its
//     writer does: no other descriptor changed the file since it was
//     opened (a reader opened before another's commit keeps reading the
//     version it opened);
//   - for every name in play, lstat: ENOENT or not, mode & 07777, uid,
//     gid; size and times only while no descriptor has an uncommitted
//     change to that file (until the commit, stat shows the last
//     committed version);
//   - for every open descriptor, fstat: errno, mode, uid, gid; size and
//     times on descriptors that see the file as its writer does;
//   - times by their order: whether mtime and ctime moved (later),
//     stayed, or went back since the last time they were compared on
//     that name or descriptor; a time before 2020 can only have been set
//     by utimensat and is compared to the nanosecond; atime only right
//     after a utimensat (exact when set explicitly), never after reads;
//     times POSIX leaves open are not ordered: truncation to the same
//     size, fallocate that changes no size, the ctime of a renamed file,
//     the ctime of an unlinked file;
//   - at the end, with everything closed, the content of every name, by
//     a fresh open.
//
// Part one is fixed cases, each the smallest reproduction of one defect.
// Part two is random sequences: CLFS_POSIXDIFF_SEEDS=N runs seeds 1..N
// (default 20; for thousands give go test a -timeout of hours, and
// -run TestPOSIXDifferential/random leaves out the native-vs-native
// half), CLFS_POSIXDIFF_SEED=S replays seed S alone, logs every operation
// and, if it fails, shrinks it to the fewest operations that fail the
// same way, CLFS_POSIXDIFF_SKIP=mmap,fallocate,... leaves kinds of
// operation out of the random sequences, CLFS_POSIXDIFF_NOORDER=1 makes
// them compare no time orders (explicit times still): both to look past
// a known defect for the next one. The subtest native-vs-native
// runs everything with a native directory on both sides: it checks the
// harness, and must always pass.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pdTick is the pause before every operation that may change something,
// so that a coarse kernel clock moves between operations.
const pdTick = 10 * time.Millisecond

// pdOps is how many random operations a random sequence has (besides the
// files it starts with and the closes it ends with).
const pdOps = 40

// ---------------------------------------------------------------- model

// pdInode is a file as the harness models it, to know what may be
// compared. Both sides run the same operations; the model follows the
// native side's results.
type pdInode struct {
	id    int
	wrote map[int]bool // slots with changes their close has not committed yet
	trunc bool         // an O_TRUNC at open, committed at the last close
}

// pending: the file has changes not committed yet, which only its
// writer sees.
func (i *pdInode) pending() bool { return len(i.wrote) > 0 || i.trunc }

type pdSlot struct {
	ino *pdInode // nil: the slot holds no descriptor
	acc int      // O_RDONLY, O_WRONLY or O_RDWR
	// stale: someone else changed the file since this descriptor was
	// opened (or it was opened while someone else had changes pending),
	// so on clfs it may see another version than its writer does.
	stale bool
	seq   int // order of opening, among all opens of the run
}

type pdModel struct {
	names   map[string]*pdInode
	slots   [pdSlots]pdSlot
	nextID  int
	nextSeq int
}

// answersFstat tells whether slot s's view is what fstat of any
// descriptor of its file shows on clfs while the file has a change
// pending: FUSE's GETATTR does not name the descriptor, so go-fuse answers
// with the file's first open handle, and stat by others shows the
// committed version (ARCHITECTURE.md, guarantee 2).
func (m *pdModel) answersFstat(s int) bool {
	sl := m.slots[s]
	if !sl.ino.pending() {
		return true
	}
	for t := range m.slots {
		if t != s && m.slots[t].ino == sl.ino && m.slots[t].seq < sl.seq {
			return false
		}
	}
	return true
}

func (m *pdModel) open(s int) bool { return m.slots[s].ino != nil }

// changedBy records a change of content through slot s.
func (m *pdModel) changedBy(s int) {
	ino := m.slots[s].ino
	ino.wrote[s] = true
	for t := range m.slots {
		if t != s && m.slots[t].ino == ino {
			m.slots[t].stale = true
		}
	}
}

// closed records the last close of slot s's descriptor.
func (m *pdModel) closed(s int) {
	ino := m.slots[s].ino
	m.slots[s] = pdSlot{}
	delete(ino.wrote, s)
	for t := range m.slots {
		if m.slots[t].ino == ino {
			return
		}
	}
	ino.trunc = false // RELEASE of the last handle commits it
	clear(ino.wrote)
}

// apply updates the model with an operation and its native result.
func (m *pdModel) apply(op pdOp, res pdRes) {
	switch o := op.(type) {
	case pdOpen:
		if res.err != nil {
			return
		}
		ino := m.names[o.name]
		created := ino == nil
		if created {
			m.nextID++
			ino = &pdInode{id: m.nextID, wrote: map[int]bool{}}
			m.names[o.name] = ino
		}
		acc := o.flags & unix.O_ACCMODE
		m.nextSeq++
		m.slots[o.slot] = pdSlot{ino: ino, acc: acc, stale: ino.pending(), seq: m.nextSeq}
		if o.flags&unix.O_TRUNC != 0 && acc != unix.O_RDONLY && !created {
			ino.trunc = true
			for t := range m.slots {
				if t != o.slot && m.slots[t].ino == ino {
					m.slots[t].stale = true
				}
			}
		}
	case pdClose:
		if m.open(o.slot) {
			m.closed(o.slot)
		}
	case pdDupClose:
		// The close of the dup is a FLUSH of the same open file: it
		// commits what the descriptor changed.
		if res.err == nil && m.open(o.slot) {
			delete(m.slots[o.slot].ino.wrote, o.slot)
		}
	case pdWrite, pdPwrite, pdFtruncate:
		if res.err == nil {
			m.changedBy(pdSlotOf(op))
		}
	case pdFallocate:
		if res.err == nil && o.mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
			m.changedBy(o.slot)
		}
	case pdMmapWrite:
		if res.err == nil {
			// The kernel writes the pages back through any writable
			// handle of the file: count them all as writers.
			ino := m.slots[o.slot].ino
			m.changedBy(o.slot)
			for t := range m.slots {
				if m.slots[t].ino == ino && m.slots[t].acc != unix.O_RDONLY {
					ino.wrote[t] = true
				}
			}
		}
	case pdTruncate:
		if res.err == nil {
			ino := m.names[o.name]
			for t := range m.slots {
				if m.slots[t].ino == ino {
					m.slots[t].stale = true
				}
			}
		}
	case pdRename:
		if res.err == nil && o.from != o.to {
			m.names[o.to] = m.names[o.from]
			delete(m.names, o.from)
		}
	case pdUnlink:
		if res.err == nil {
			delete(m.names, o.name)
		}
	}
}

// pdSlotOf is the slot an operation on a descriptor uses (-1: none).
func pdSlotOf(op pdOp) int {
	switch o := op.(type) {
	case pdOpen:
		return o.slot
	case pdClose:
		return o.slot
	case pdWrite:
		return o.slot
	case pdPwrite:
		return o.slot
	case pdPread:
		return o.slot
	case pdFtruncate:
		return o.slot
	case pdFchmod:
		return o.slot
	case pdFchown:
		return o.slot
	case pdDupClose:
		return o.slot
	case pdFstat:
		return o.slot
	case pdFallocate:
		return o.slot
	case pdMmapWrite:
		return o.slot
	}
	return -1
}

// ---------------------------------------------------------- observation

type pdStat struct {
	err                 error
	size                int64
	mode, uid, gid      uint32
	atime, mtime, ctime unix.Timespec
}

func pdStatOf(st *unix.Stat_t, err error) pdStat {
	if err != nil {
		return pdStat{err: err}
	}
	return pdStat{size: st.Size, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, atime: st.Atim, mtime: st.Mtim, ctime: st.Ctim}
}

func (s pdStat) String() string {
	if s.err != nil {
		return pdErrName(s.err)
	}
	return fmt.Sprintf("size=%d mode=%04o uid=%d gid=%d atime=%s mtime=%s ctime=%s", s.size, s.mode, s.uid, s.gid, pdTS(s.atime), pdTS(s.mtime), pdTS(s.ctime))
}

// pdObs is what lstat of every name and fstat of every descriptor say.
type pdObs struct {
	names map[string]pdStat
	fds   [pdSlots]pdStat
	open  [pdSlots]bool
}

func (s *pdSide) observe(names []string) pdObs {
	o := pdObs{names: map[string]pdStat{}}
	for _, n := range names {
		var st unix.Stat_t
		o.names[n] = pdStatOf(&st, unix.Lstat(s.path(n), &st))
	}
	for i, fd := range s.fd {
		if fd >= 0 {
			var st unix.Stat_t
			o.fds[i] = pdStatOf(&st, unix.Fstat(fd, &st))
			o.open[i] = true
		}
	}
	return o
}

func (o pdObs) format(names []string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "      lstat %s: %v\n", pdName(n), o.names[n])
	}
	for i := range o.fds {
		if o.open[i] {
			fmt.Fprintf(&b, "      fstat fd%d: %v\n", i, o.fds[i])
		}
	}
	return b.String()
}

// pdDir is how a time moved from a to b.
func pdDir(a, b unix.Timespec) string {
	switch {
	case b.Sec > a.Sec || b.Sec == a.Sec && b.Nsec > a.Nsec:
		return "later"
	case b == a:
		return "same"
	}
	return "earlier"
}

// pdExplicit: a time this long ago can only have been set by utimensat.
func pdExplicit(ts unix.Timespec) bool { return ts.Sec < 1_577_836_800 } // 2020-01-01

// ----------------------------------------------------------------- run

// pdTimes is a baseline: the times last compared on a name or descriptor.
type pdTimes struct{ mtime, ctime unix.Timespec }

// pdRebase says which times of a file are not ordered by this
// operation (POSIX leaves them open): they are taken as the new
// baseline without comparison.
type pdRebase struct{ mtime, ctime bool }

type pdRun struct {
	t       *testing.T
	names   []string
	sides   [2]*pdSide
	m       pdModel
	obs     [2]pdObs
	nameB   [2]map[string]*pdTimes
	fdB     [2][pdSlots]*pdTimes
	hist    []string
	verbose bool
	scope   pdScope
}

// pdScope is what a run compares.
type pdScope int

const (
	pdEverything pdScope = iota
	pdNoOrder            // no time orders (explicit times still): a case about something else
	pdContent            // only results, bytes read and the content at the end
)

// pdFile is a file a sequence starts with, made outside the comparison
// (so that a defect in making it does not hide what the case is about).
type pdFile struct {
	name, content string
	mode          uint32
	mtime         pdTime // set as atime and mtime if explicit
}

// newPDRun makes the files on both sides and starts a comparison.
func newPDRun(t *testing.T, names []string, files []pdFile, a, b *pdSide, verbose bool) *pdRun {
	t.Helper()
	r := &pdRun{t: t, names: names, sides: [2]*pdSide{a, b}, verbose: verbose}
	r.m.names = map[string]*pdInode{}
	for _, f := range files {
		if f.content == "" {
			panic("harness: an empty setup file would commit asynchronously")
		}
		for _, s := range r.sides {
			p := s.path(f.name)
			if err := os.WriteFile(p, []byte(f.content), os.FileMode(f.mode)); err != nil {
				t.Fatalf("setup: %v", err)
			}
			if err := os.Chmod(p, os.FileMode(f.mode)); err != nil {
				t.Fatalf("setup: %v", err)
			}
			if f.mtime.explicit() {
				ts := []unix.Timespec{unix.Timespec(f.mtime), unix.Timespec(f.mtime)}
				if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
					t.Fatalf("setup: utimensat %s: %v", p, err)
				}
			}
		}
		r.m.nextID++
		r.m.names[f.name] = &pdInode{id: r.m.nextID, wrote: map[int]bool{}}
	}
	for i := range r.sides {
		r.obs[i] = r.sides[i].observe(names)
		r.nameB[i] = map[string]*pdTimes{}
	}
	return r
}

// pdStepResult is one operation on both sides.
type pdStepResult struct {
	res       [2]pdRes
	pre, post [2]pdObs
	diffs     []string
}

func (r *pdRun) step(op pdOp) pdStepResult {
	if o, ok := op.(pdMmapWrite); ok && r.m.open(o.slot) && !r.m.answersFstat(o.slot) {
		// The kernel maps the file at the size it keeps for the inode,
		// which is the committed one while an older descriptor is a
		// reader's (see answersFstat): clfs faults where the pending
		// file is longer. By design; not run on either side.
		return pdStepResult{pre: r.obs, post: r.obs}
	}
	if op.mutating() {
		time.Sleep(pdTick)
	}
	var sr pdStepResult
	sr.pre = r.obs
	rebase := r.rebases(op)
	readOK := false
	if o, ok := op.(pdPread); ok {
		readOK = r.m.open(o.slot) && !r.m.slots[o.slot].stale
	}
	for i, s := range r.sides {
		sr.res[i] = op.do(s)
	}
	r.m.apply(op, sr.res[0])
	for i, s := range r.sides {
		sr.post[i] = s.observe(r.names)
	}
	var nameB [2]map[string]*pdTimes
	var fdB [2][pdSlots]*pdTimes
	sr.diffs, nameB, fdB = r.compare(op, sr.res, sr.pre, sr.post, rebase, readOK)
	if len(sr.diffs) > 0 && r.sides[1].mount {
		switch op.(type) {
		case pdClose, pdDupClose:
			// RELEASE, which commits a change no FLUSH committed, comes
			// after close(2) returns.
			for deadline := time.Now().Add(500 * time.Millisecond); len(sr.diffs) > 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				sr.post[1] = r.sides[1].observe(r.names)
				sr.diffs, nameB, fdB = r.compare(op, sr.res, sr.pre, sr.post, rebase, readOK)
			}
		}
	}
	r.obs, r.nameB, r.fdB = sr.post, nameB, fdB
	r.hist = append(r.hist, op.String())
	if r.verbose {
		r.t.Logf("#%d %v: %s: %v, %s: %v", len(r.hist)-1, op, r.sides[0].label, sr.res[0], r.sides[1].label, sr.res[1])
	}
	return sr
}

// rebases: which times the operation may move or not, as POSIX leaves
// open (decided before the operation, on the native side's state).
func (r *pdRun) rebases(op pdOp) map[*pdInode]pdRebase {
	out := map[*pdInode]pdRebase{}
	switch o := op.(type) {
	case pdTruncate:
		// Truncation to the size the file has: ext4 moves no time for
		// truncate(2) and both for ftruncate(2); POSIX only asks for
		// it "if the file size is changed".
		if ino := r.m.names[o.name]; ino != nil && r.obs[0].names[o.name].err == nil && r.obs[0].names[o.name].size == o.size {
			out[ino] = pdRebase{mtime: true, ctime: true}
		}
	case pdFtruncate:
		if ino := r.m.slots[o.slot].ino; ino != nil && r.obs[0].fds[o.slot].err == nil && r.obs[0].fds[o.slot].size == o.size {
			out[ino] = pdRebase{mtime: true, ctime: true}
		}
	case pdRename:
		// "Some implementations mark for update the last file status
		// change timestamp of renamed files and some do not."
		if o.from != o.to {
			for _, n := range []string{o.from, o.to} {
				if ino := r.m.names[n]; ino != nil {
					out[ino] = pdRebase{ctime: true}
				}
			}
		}
	case pdUnlink:
		// POSIX marks the file's ctime only if links remain.
		if ino := r.m.names[o.name]; ino != nil {
			out[ino] = pdRebase{ctime: true}
		}
	case pdFallocate:
		// fallocate that changes no size changes no content: whether
		// it moves times is up to the file system (ext4 moves both).
		if ino := r.m.slots[o.slot].ino; ino != nil && r.obs[0].fds[o.slot].err == nil &&
			(o.mode&unix.FALLOC_FL_KEEP_SIZE != 0 || o.off+o.size <= r.obs[0].fds[o.slot].size) {
			out[ino] = pdRebase{mtime: true, ctime: true}
		}
	}
	return out
}

// compare returns the differences between the sides after op, and the
// new time baselines.
func (r *pdRun) compare(op pdOp, res [2]pdRes, pre, post [2]pdObs, rebase map[*pdInode]pdRebase, readOK bool) (diffs []string, nameB [2]map[string]*pdTimes, fdB [2][pdSlots]*pdTimes) {
	l0, l1 := r.sides[0].label, r.sides[1].label
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if a, b := pdErrName(res[0].err), pdErrName(res[1].err); a != b {
		add("result: %s %s, %s %s", l0, a, l1, b)
	}
	if res[0].n != res[1].n {
		add("bytes written: %s %d, %s %d", l0, res[0].n, l1, res[1].n)
	}
	if readOK && !bytes.Equal(res[0].data, res[1].data) {
		add("bytes read: %s %s, %s %s", l0, pdShort(res[0].data), l1, pdShort(res[1].data))
	}
	// meta compares what is always comparable; full the rest, against
	// the baselines base, and returns the new baselines.
	meta := func(what string, a, b pdStat) bool {
		if x, y := pdErrName(a.err), pdErrName(b.err); x != y {
			add("%s: %s %s, %s %s", what, l0, x, l1, y)
			return false
		}
		if a.err != nil {
			return false
		}
		if a.mode != b.mode {
			add("%s: mode %s %04o, %s %04o", what, l0, a.mode, l1, b.mode)
		}
		if a.uid != b.uid || a.gid != b.gid {
			add("%s: owner %s %d:%d, %s %d:%d", what, l0, a.uid, a.gid, l1, b.uid, b.gid)
		}
		return true
	}
	full := func(what string, a, b pdStat, base [2]*pdTimes, rb pdRebase) [2]*pdTimes {
		if a.size != b.size {
			add("%s: size %s %d, %s %d", what, l0, a.size, l1, b.size)
		}
		if (pdExplicit(a.mtime) || pdExplicit(b.mtime)) && a.mtime != b.mtime {
			add("%s: mtime %s %s, %s %s", what, l0, pdTS(a.mtime), l1, pdTS(b.mtime))
		}
		if base[0] != nil && base[1] != nil && r.scope == pdEverything {
			for _, f := range []struct {
				name      string
				skip      bool
				b0, b1    unix.Timespec
				now0, nw1 unix.Timespec
			}{
				{"mtime", rb.mtime, base[0].mtime, base[1].mtime, a.mtime, b.mtime},
				{"ctime", rb.ctime, base[0].ctime, base[1].ctime, a.ctime, b.ctime},
			} {
				if f.skip {
					continue
				}
				if d0, d1 := pdDir(f.b0, f.now0), pdDir(f.b1, f.nw1); d0 != d1 {
					add("%s: %s %s: %s %s -> %s, %s: %s %s -> %s", what, f.name, l0, d0, pdTS(f.b0), pdTS(f.now0), l1, d1, pdTS(f.b1), pdTS(f.nw1))
				}
			}
		}
		return [2]*pdTimes{{a.mtime, a.ctime}, {b.mtime, b.ctime}}
	}
	for i := range nameB {
		nameB[i] = map[string]*pdTimes{}
	}
	if r.scope == pdContent {
		return diffs, nameB, fdB
	}
	for _, n := range r.names {
		a, b := post[0].names[n], post[1].names[n]
		if !meta("lstat "+pdName(n), a, b) {
			continue
		}
		ino := r.m.names[n]
		if ino == nil {
			add("harness: %s exists on %s but not in the model", pdName(n), l0)
			continue
		}
		base := [2]*pdTimes{r.nameB[0][n], r.nameB[1][n]}
		if !ino.pending() {
			base = full("lstat "+pdName(n), a, b, base, rebase[ino])
		}
		nameB[0][n], nameB[1][n] = base[0], base[1]
	}
	for s := range pdSlots {
		sl := r.m.slots[s]
		if sl.ino == nil {
			continue
		}
		a, b := post[0].fds[s], post[1].fds[s]
		what := fmt.Sprintf("fstat fd%d", s)
		if !meta(what, a, b) {
			continue
		}
		base := [2]*pdTimes{r.fdB[0][s], r.fdB[1][s]}
		if !sl.stale && r.m.answersFstat(s) {
			base = full(what, a, b, base, rebase[sl.ino])
		}
		fdB[0][s], fdB[1][s] = base[0], base[1]
	}
	// While a change is pending, a setattr by path changes the pending
	// version, which stat shows only where the file's oldest handle is
	// its writer's (see answersFstat).
	if o, ok := op.(pdUtimens); ok && res[0].err == nil && (r.m.names[o.name] == nil || !r.m.names[o.name].pending()) {
		what := "lstat " + pdName(o.name)
		a, b := post[0].names[o.name], post[1].names[o.name]
		pa, pb := pre[0].names[o.name], pre[1].names[o.name]
		if a.err == nil && b.err == nil && pa.err == nil && pb.err == nil {
			if o.atime.explicit() {
				if a.atime != unix.Timespec(o.atime) {
					add("harness: %s: %s atime %s after setting %v", what, l0, pdTS(a.atime), o.atime)
				}
				if a.atime != b.atime {
					add("%s: atime %s %s, %s %s", what, l0, pdTS(a.atime), l1, pdTS(b.atime))
				}
			} else if d0, d1 := pdDir(pa.atime, a.atime), pdDir(pb.atime, b.atime); d0 != d1 {
				add("%s: atime %s: %s %s -> %s, %s: %s %s -> %s", what, l0, d0, pdTS(pa.atime), pdTS(a.atime), l1, d1, pdTS(pb.atime), pdTS(b.atime))
			}
			if o.mtime.explicit() && a.mtime != unix.Timespec(o.mtime) {
				add("harness: %s: %s mtime %s after setting %v", what, l0, pdTS(a.mtime), o.mtime)
			}
		}
	}
	return diffs, nameB, fdB
}

// final closes nothing: with every descriptor closed, it compares the
// content of every name, read by a fresh open.
func (r *pdRun) final() []string {
	read := func(s *pdSide, n string) (string, []byte) {
		b, err := os.ReadFile(s.path(n))
		if err != nil {
			return pdErrName(pdUnwrapErrno(err)), nil
		}
		return "ok", b
	}
	check := func() []string {
		var diffs []string
		for _, n := range r.names {
			e0, b0 := read(r.sides[0], n)
			e1, b1 := read(r.sides[1], n)
			switch {
			case e0 != e1:
				diffs = append(diffs, fmt.Sprintf("final read of %s: %s %s, %s %s", pdName(n), r.sides[0].label, e0, r.sides[1].label, e1))
			case !bytes.Equal(b0, b1):
				diffs = append(diffs, fmt.Sprintf("final content of %s: %s %s, %s %s", pdName(n), r.sides[0].label, pdShort(b0), r.sides[1].label, pdShort(b1)))
			}
		}
		return diffs
	}
	diffs := check()
	for deadline := time.Now().Add(500 * time.Millisecond); len(diffs) > 0 && r.sides[1].mount && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		diffs = check()
	}
	return diffs
}

func pdUnwrapErrno(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// report is a mismatch after the i-th operation, for a failure message.
func (r *pdRun) report(head string, i int, op pdOp, sr pdStepResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: op #%d %v\n", head, i, op)
	for _, d := range sr.diffs {
		fmt.Fprintf(&b, "    %s\n", d)
	}
	for k, s := range r.sides {
		fmt.Fprintf(&b, "  %s: result %v; after it:\n%s", s.label, sr.res[k], sr.post[k].format(r.names))
		fmt.Fprintf(&b, "    before it:\n%s", sr.pre[k].format(r.names))
	}
	fmt.Fprintf(&b, "  operations:\n")
	for k, h := range r.hist {
		fmt.Fprintf(&b, "    #%d %s\n", k, h)
	}
	return b.String()
}

// ---------------------------------------------------------- fixed cases

// pdWant checks the native side's result of one step against the answer
// POSIX gives: a failure is a bug of the harness or of the test case.
type pdWant func(res pdRes, pre, post pdObs) error

type pdStep struct {
	op   pdOp
	want []pdWant
}

type pdCase struct {
	name  string
	names []string
	files []pdFile
	steps []pdStep
	scope pdScope
}

func pdSt(op pdOp, want ...pdWant) pdStep { return pdStep{op, want} }

func pdWantErr(want error) pdWant {
	return func(res pdRes, _, _ pdObs) error {
		if pdErrName(res.err) != pdErrName(want) {
			return fmt.Errorf("result %s, want %s", pdErrName(res.err), pdErrName(want))
		}
		return nil
	}
}

func pdWantData(want string) pdWant {
	return func(res pdRes, _, _ pdObs) error {
		if string(res.data) != want {
			return fmt.Errorf("read %s, want %q", pdShort(res.data), want)
		}
		return nil
	}
}

func pdWantSize(name string, want int64) pdWant {
	return func(_ pdRes, _, post pdObs) error {
		s := post.names[name]
		if want < 0 {
			if s.err != syscall.ENOENT {
				return fmt.Errorf("lstat %s: %v, want ENOENT", name, s)
			}
			return nil
		}
		if s.err != nil || s.size != want {
			return fmt.Errorf("lstat %s: %v, want size %d", name, s, want)
		}
		return nil
	}
}

func pdWantFdSize(slot int, want int64) pdWant {
	return func(_ pdRes, _, post pdObs) error {
		if s := post.fds[slot]; s.err != nil || s.size != want {
			return fmt.Errorf("fstat fd%d: %v, want size %d", slot, s, want)
		}
		return nil
	}
}

func pdWantMode(name string, want uint32) pdWant {
	return func(_ pdRes, _, post pdObs) error {
		if s := post.names[name]; s.err != nil || s.mode != want {
			return fmt.Errorf("lstat %s: %v, want mode %04o", name, s, want)
		}
		return nil
	}
}

func pdWantMtime(name, dir string) pdWant {
	return func(_ pdRes, pre, post pdObs) error {
		if d := pdDir(pre.names[name].mtime, post.names[name].mtime); d != dir {
			return fmt.Errorf("lstat %s: mtime %s (%s -> %s), want %s", name, d, pdTS(pre.names[name].mtime), pdTS(post.names[name].mtime), dir)
		}
		return nil
	}
}

func pdWantFdMtime(slot int, dir string) pdWant {
	return func(_ pdRes, pre, post pdObs) error {
		if d := pdDir(pre.fds[slot].mtime, post.fds[slot].mtime); d != dir {
			return fmt.Errorf("fstat fd%d: mtime %s, want %s", slot, d, dir)
		}
		return nil
	}
}

func pdWantMtimeIs(name string, want pdTime) pdWant {
	return func(_ pdRes, _, post pdObs) error {
		if s := post.names[name]; s.mtime != unix.Timespec(want) {
			return fmt.Errorf("lstat %s: mtime %s, want %v", name, pdTS(s.mtime), want)
		}
		return nil
	}
}

func pdWantMtimeAfter(name string, t pdTime) pdWant {
	return func(_ pdRes, _, post pdObs) error {
		if s := post.names[name]; pdDir(unix.Timespec(t), s.mtime) != "later" {
			return fmt.Errorf("lstat %s: mtime %s, want later than %v", name, pdTS(s.mtime), t)
		}
		return nil
	}
}

func pdWantAtimeIs(name string, want pdTime) pdWant {
	return func(_ pdRes, _, post pdObs) error {
		if s := post.names[name]; s.atime != unix.Timespec(want) {
			return fmt.Errorf("lstat %s: atime %s, want %v", name, pdTS(s.atime), want)
		}
		return nil
	}
}

func pdWantAtime(name, dir string) pdWant {
	return func(_ pdRes, pre, post pdObs) error {
		if d := pdDir(pre.names[name].atime, post.names[name].atime); d != dir {
			return fmt.Errorf("lstat %s: atime %s, want %s", name, d, dir)
		}
		return nil
	}
}

func pdSteps(parts ...any) []pdStep {
	var out []pdStep
	for _, p := range parts {
		switch p := p.(type) {
		case pdStep:
			out = append(out, p)
		case []pdStep:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("steps: %T", p))
		}
	}
	return out
}

func pdFixedCases() []pdCase {
	f := "f"
	ok := pdWantErr(nil)
	// old is f with content and an mtime long ago; plain without it.
	old := []pdFile{{f, "hello", 0o644, pdT(1)}}
	plain := func(content string) []pdFile { return []pdFile{{f, content, 0o644, pdOmit}} }
	long := strings.Repeat("x", 256)
	tooLong := pdWantErr(syscall.ENAMETOOLONG)
	cases := []pdCase{
		// mtime moves on every change of content, at the change.
		{"mtime/append-write", []string{f}, old, pdSteps(
			pdSt(pdOpen{0, f, unix.O_WRONLY | unix.O_APPEND, 0}, ok),
			pdSt(pdWrite{0, []byte(" world")}, ok, pdWantFdMtime(0, "later"), pdWantFdSize(0, 11)),
			pdSt(pdClose{0}, ok, pdWantMtimeAfter(f, pdT(1)), pdWantSize(f, 11)),
		), pdEverything},
		{"mtime/O_TRUNC-rewrite", []string{f}, old, pdSteps(
			pdSt(pdOpen{0, f, unix.O_WRONLY | unix.O_TRUNC, 0}, ok, pdWantMtime(f, "later"), pdWantFdSize(0, 0)),
			pdSt(pdWrite{0, []byte("new")}, ok),
			pdSt(pdClose{0}, ok, pdWantMtimeAfter(f, pdT(1)), pdWantSize(f, 3)),
		), pdEverything},
		{"mtime/truncate", []string{f}, old, pdSteps(
			pdSt(pdTruncate{f, 2}, ok, pdWantMtime(f, "later"), pdWantSize(f, 2)),
		), pdEverything},
		{"mtime/ftruncate", []string{f}, old, pdSteps(
			pdSt(pdOpen{0, f, unix.O_WRONLY, 0}, ok),
			pdSt(pdFtruncate{0, 2}, ok, pdWantFdMtime(0, "later"), pdWantFdSize(0, 2)),
			pdSt(pdClose{0}, ok, pdWantMtimeAfter(f, pdT(1)), pdWantSize(f, 2)),
		), pdEverything},
		{"mtime/pwrite", []string{f}, old, pdSteps(
			pdSt(pdOpen{0, f, unix.O_WRONLY, 0}, ok),
			pdSt(pdPwrite{0, 0, []byte("J")}, ok, pdWantFdMtime(0, "later")),
			pdSt(pdClose{0}, ok, pdWantMtimeAfter(f, pdT(1))),
		), pdEverything},
		{"mtime/mmap-write", []string{f}, old, pdSteps(
			pdSt(pdOpen{0, f, unix.O_RDWR, 0}, ok),
			pdSt(pdMmapWrite{0, 0, []byte("J")}, ok, pdWantFdMtime(0, "later")),
			pdSt(pdClose{0}, ok, pdWantMtimeAfter(f, pdT(1))),
		), pdEverything},
		// A write after utimensat moves mtime again.
		{"mtime/utimensat-then-append", []string{f}, plain("hello"), pdSteps(
			pdSt(pdOpen{0, f, unix.O_WRONLY | unix.O_APPEND, 0}, ok),
			pdSt(pdUtimens{f, pdT(2), pdT(2)}, ok, pdWantMtimeIs(f, pdT(2))),
			pdSt(pdWrite{0, []byte("!")}, ok, pdWantFdMtime(0, "later")),
			pdSt(pdClose{0}, ok, pdWantMtimeAfter(f, pdT(2)), pdWantSize(f, 6)),
		), pdEverything},
		// cp -p, rsync -a: write, utimensat, close; the time set stays.
		{"mtime/write-utimensat-close", []string{f}, nil, pdSteps(
			pdSt(pdOpen{0, f, unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC, 0o644}, ok),
			pdSt(pdWrite{0, []byte("data")}, ok),
			pdSt(pdUtimens{f, pdT(3), pdT(3)}, ok, pdWantMtimeIs(f, pdT(3))),
			pdSt(pdClose{0}, ok, pdWantMtimeIs(f, pdT(3)), pdWantSize(f, 4)),
		), pdNoOrder},
		// Mode 0 is a mode (the test runs with umask 0).
		{"mode0/create", []string{f}, nil, pdSteps(
			pdSt(pdOpen{0, f, unix.O_CREAT | unix.O_WRONLY, 0}, ok, pdWantMode(f, 0)),
			pdSt(pdClose{0}, ok, pdWantMode(f, 0)),
		), pdEverything},
		{"mode0/chmod", []string{f}, plain("x"), pdSteps(
			pdSt(pdChmod{f, 0}, ok, pdWantMode(f, 0)),
		), pdEverything},
		// An unlinked file stays usable through its descriptor.
		{"unlink-while-open", []string{f}, nil, pdSteps(
			pdSt(pdOpen{0, f, unix.O_CREAT | unix.O_RDWR, 0o644}, ok),
			pdSt(pdWrite{0, []byte("Hello")}, ok),
			pdSt(pdUnlink{f}, ok, pdWantSize(f, -1), pdWantFdSize(0, 5)),
			pdSt(pdFstat{0}, ok, pdWantFdSize(0, 5)),
			pdSt(pdWrite{0, []byte(", world")}, ok, pdWantFdSize(0, 12)),
			pdSt(pdPread{0, 0, 100}, ok, pdWantData("Hello, world")),
			pdSt(pdClose{0}, ok, pdWantSize(f, -1)),
		), pdNoOrder},
		// The writer reads its own bytes, also after a close of a dup
		// committed them.
		{"writer-reads-own-bytes", []string{f}, plain("old content"), pdSteps(
			pdSt(pdOpen{0, f, unix.O_RDWR, 0}, ok),
			pdSt(pdPread{0, 0, 64}, ok, pdWantData("old content")),
			pdSt(pdPwrite{0, 0, []byte("NEW")}, ok),
			pdSt(pdDupClose{0}, ok),
			pdSt(pdPread{0, 0, 64}, ok, pdWantData("NEW content")),
			pdSt(pdClose{0}, ok),
		), pdNoOrder},
		// atime is stored as set.
		{"utimensat/explicit-atime", []string{f}, plain("x"), pdSteps(
			pdSt(pdUtimens{f, pdT(4), pdT(5)}, ok, pdWantAtimeIs(f, pdT(4)), pdWantMtimeIs(f, pdT(5))),
		), pdEverything},
		{"utimensat/omit-atime", []string{f}, plain("x"), pdSteps(
			pdSt(pdUtimens{f, pdOmit, pdT(6)}, ok, pdWantAtime(f, "same"), pdWantMtimeIs(f, pdT(6))),
		), pdEverything},
		{"utimensat/now-atime", []string{f}, plain("x"), pdSteps(
			pdSt(pdUtimens{f, pdNow, pdOmit}, ok, pdWantAtime(f, "later"), pdWantMtime(f, "same")),
		), pdEverything},
		// fallocate on a write descriptor.
		{"fallocate/grow", []string{f}, plain("hello"), pdSteps(
			pdSt(pdOpen{0, f, unix.O_RDWR, 0}, ok),
			pdSt(pdFallocate{0, 0, 0, 4096}, ok, pdWantFdSize(0, 4096)),
			pdSt(pdPread{0, 0, 8192}, ok, pdWantData("hello"+strings.Repeat("\x00", 4091))),
			pdSt(pdClose{0}, ok, pdWantSize(f, 4096)),
		), pdEverything},
		{"fallocate/keep-size", []string{f}, plain("hello"), pdSteps(
			pdSt(pdOpen{0, f, unix.O_RDWR, 0}, ok),
			pdSt(pdFallocate{0, unix.FALLOC_FL_KEEP_SIZE, 0, 8192}, ok, pdWantFdSize(0, 5)),
			pdSt(pdClose{0}, ok, pdWantSize(f, 5)),
		), pdEverything},
	}
	// Found by the random sequences (shrunk), beyond the defects above.
	ab := []pdFile{{"a", "hello", 0o644, pdOmit}, {"b", "other", 0o640, pdOmit}}
	cases = append(cases,
		// The writer's fstat shows its own size, also when a reader
		// opened the file first.
		pdCase{"found/writer-fstat-with-reader-open", []string{"a"}, ab, pdSteps(
			pdSt(pdOpen{1, "a", unix.O_RDONLY, 0}, ok),
			pdSt(pdOpen{0, "a", unix.O_WRONLY, 0}, ok),
			pdSt(pdFtruncate{0, 100}, ok, pdWantFdSize(0, 100)),
		), pdNoOrder},
		// An append is not lost when another writer closed and a
		// reader is open (only the content is compared: the writer's
		// fstat is wrong here too, as above).
		pdCase{"found/append-lost-with-reader-open", []string{"a"}, ab, pdSteps(
			pdSt(pdOpen{1, "a", unix.O_WRONLY | unix.O_APPEND, 0}, ok),
			pdSt(pdOpen{0, "a", unix.O_WRONLY | unix.O_APPEND, 0}, ok),
			pdSt(pdOpen{2, "a", unix.O_RDONLY, 0}, ok),
			pdSt(pdClose{1}, ok),
			pdSt(pdWrite{0, []byte("1")}, ok),
			pdSt(pdWrite{0, []byte("2")}, ok, pdWantFdSize(0, 7)),
			pdSt(pdClose{0}, ok),
			pdSt(pdClose{2}, ok, pdWantSize("a", 7)),
		), pdContent},
		// A file renamed over keeps its own attributes on the
		// descriptors still open on it.
		pdCase{"found/rename-over-open-file", []string{"a", "b"}, ab, pdSteps(
			pdSt(pdOpen{0, "a", unix.O_RDWR, 0}, ok),
			pdSt(pdRename{"b", "a", 0}, ok, pdWantMode("a", 0o640)),
			pdSt(pdPread{0, 0, 100}, ok, pdWantData("hello")),
		), pdNoOrder},
		// A shared mapping of a file written, then renamed, is readable
		// (clfs: SIGBUS, also from another process).
		pdCase{"found/mmap-after-rename", []string{"a", "b"}, []pdFile{{"a", "x", 0o644, pdOmit}}, pdSteps(
			pdSt(pdOpen{0, "a", unix.O_RDWR, 0}, ok),
			pdSt(pdTruncate{"a", 0}, ok),
			pdSt(pdPread{0, 0, 10}, ok, pdWantData("")),
			pdSt(pdWrite{0, bytes.Repeat([]byte("z"), 3789)}, ok),
			pdSt(pdRename{"a", "b", 0}, ok),
			pdSt(pdMmapWrite{0, 400, []byte("X")}, ok),
		), pdNoOrder},
	)
	// Names over 255 bytes: ENAMETOOLONG, whatever the operation.
	for _, c := range []struct {
		name string
		op   pdOp
	}{
		{"stat", pdLstat{long}},
		{"open", pdOpen{0, long, unix.O_RDONLY, 0}},
		{"open-create", pdOpen{0, long, unix.O_CREAT | unix.O_WRONLY, 0o644}},
		{"unlink", pdUnlink{long}},
		{"truncate", pdTruncate{long, 0}},
		{"chmod", pdChmod{long, 0o600}},
		{"chown", pdChown{long, 1, 1}},
		{"rmdir", pdRmdir{long}},
		{"rename-from", pdRename{long, f, 0}},
	} {
		// Only f is lstat after it: each case fails on its own result.
		cases = append(cases, pdCase{"long-name/" + c.name, []string{f}, plain("x"), pdSteps(pdSt(c.op, tooLong)), pdEverything})
	}
	return cases
}

// runFixed runs one case on two sides; it reports the first mismatch
// (and how many operations after it differ too) and every failed
// expectation on the native side.
func pdRunFixed(t *testing.T, c pdCase, a, b *pdSide) {
	r := newPDRun(t, c.names, c.files, a, b, false)
	r.scope = c.scope
	defer a.closeAll()
	defer b.closeAll()
	first, later := "", 0
	for i, s := range c.steps {
		sr := r.step(s.op)
		for _, w := range s.want {
			if err := w(sr.res[0], sr.pre[0], sr.post[0]); err != nil {
				t.Errorf("harness: %s: op #%d %v on %s: %v", c.name, i, s.op, a.label, err)
			}
		}
		if len(sr.diffs) > 0 {
			if first == "" {
				first = r.report(c.name, i, s.op, sr)
			} else {
				later++
			}
		}
	}
	for s := range pdSlots {
		if r.m.open(s) {
			sr := r.step(pdClose{s})
			if len(sr.diffs) > 0 {
				if first == "" {
					first = r.report(c.name, len(r.hist)-1, pdClose{s}, sr)
				} else {
					later++
				}
			}
		}
	}
	if d := r.final(); len(d) > 0 {
		if first == "" {
			first = c.name + ": at the end, everything closed:\n    " + strings.Join(d, "\n    ")
		} else {
			later++
		}
	}
	if first != "" {
		if later > 0 {
			first += fmt.Sprintf("  (and %d later steps differ too)\n", later)
		}
		t.Error(first)
	}
}

// -------------------------------------------------------- random sequences

type pdKind struct {
	kind   string
	weight int
}

var pdKinds = []pdKind{
	{"open", 12}, {"close", 8}, {"write", 12}, {"pwrite", 8}, {"pread", 10},
	{"ftruncate", 4}, {"truncate", 4}, {"utimens", 5}, {"chmod", 3},
	{"fchmod", 2}, {"chown", 2}, {"fchown", 1}, {"rename", 4}, {"unlink", 3},
	{"dupclose", 3}, {"fstat", 2}, {"fallocate", 3}, {"mmap", 2},
}

var pdModes = []uint32{0o644, 0o600, 0o000, 0o755, 0o444, 0o640}

type pdGen struct {
	rng  *rand.Rand
	r    *pdRun
	skip map[string]bool
}

func (g *pdGen) data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(g.rng.IntN(26))
	}
	return b
}

func (g *pdGen) length() int {
	switch p := g.rng.IntN(100); {
	case p < 70:
		return 1 + g.rng.IntN(64)
	case p < 95:
		return 1 + g.rng.IntN(5000)
	default:
		return 65536 + g.rng.IntN(10000) // past the inline limit
	}
}

// slot picks a slot holding a descriptor, mostly (1 in 20 draws, any
// slot); false: draw another kind of operation (no descriptor is open).
func (g *pdGen) slot() (int, bool) {
	var open []int
	for s := range pdSlots {
		if g.r.m.open(s) {
			open = append(open, s)
		}
	}
	if g.rng.IntN(20) == 0 {
		return g.rng.IntN(pdSlots), true
	}
	if len(open) == 0 {
		return 0, false
	}
	return open[g.rng.IntN(len(open))], true
}

// name picks an existing name, mostly.
func (g *pdGen) name() string {
	var have []string
	for _, n := range g.r.names {
		if g.r.m.names[n] != nil {
			have = append(have, n)
		}
	}
	if len(have) == 0 || g.rng.IntN(8) == 0 {
		return g.r.names[g.rng.IntN(len(g.r.names))]
	}
	return have[g.rng.IntN(len(have))]
}

func (g *pdGen) size(cur int64) int64 {
	switch g.rng.IntN(5) {
	case 0:
		return 0
	case 1:
		return cur / 2
	case 2:
		return cur
	case 3:
		return cur + 1 + int64(g.rng.IntN(100))
	}
	return int64(g.rng.IntN(5000))
}

func (g *pdGen) time() pdTime {
	switch g.rng.IntN(10) {
	case 0, 1, 2:
		return pdNow
	case 3, 4, 5:
		return pdOmit
	}
	return pdT(1 + g.rng.IntN(50))
}

func (g *pdGen) owner() (int, int) {
	switch g.rng.IntN(5) {
	case 0, 1:
		return 0, 0
	case 2, 3:
		return 1, 1
	}
	return -1, g.rng.IntN(2) // keep the owner, change the group
}

// next draws an operation that can be made in the current state.
func (g *pdGen) next() pdOp {
	total := 0
	for _, k := range pdKinds {
		if !g.skip[k.kind] {
			total += k.weight
		}
	}
	for {
		n := g.rng.IntN(total)
		kind := ""
		for _, k := range pdKinds {
			if g.skip[k.kind] {
				continue
			}
			if n < k.weight {
				kind = k.kind
				break
			}
			n -= k.weight
		}
		if op := g.make(kind); op != nil {
			return op
		}
	}
}

func (g *pdGen) make(kind string) pdOp {
	m, nat := &g.r.m, g.r.obs[0]
	fdSize := func(s int) int64 {
		if nat.open[s] && nat.fds[s].err == nil {
			return nat.fds[s].size
		}
		return 100
	}
	switch kind {
	case "open":
		var free []int
		for s := range pdSlots {
			if !m.open(s) {
				free = append(free, s)
			}
		}
		if len(free) == 0 {
			return nil
		}
		flags := []int{unix.O_RDONLY, unix.O_WRONLY, unix.O_RDWR, unix.O_RDWR}[g.rng.IntN(4)]
		if g.rng.IntN(10) < 6 {
			flags |= unix.O_CREAT
			if g.rng.IntN(6) == 0 {
				flags |= unix.O_EXCL
			}
		}
		if flags&unix.O_ACCMODE != unix.O_RDONLY { // O_RDONLY|O_TRUNC is unspecified
			if g.rng.IntN(5) == 0 {
				flags |= unix.O_TRUNC
			}
			if g.rng.IntN(5) == 0 {
				flags |= unix.O_APPEND
			}
		}
		return pdOpen{free[g.rng.IntN(len(free))], g.name(), flags, pdModes[g.rng.IntN(len(pdModes))]}
	case "close":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdClose{s}
	case "write":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdWrite{s, g.data(g.length())}
	case "pwrite":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdPwrite{s, int64(g.rng.IntN(int(fdSize(s)) + 50)), g.data(g.length())}
	case "pread":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		n := 1 + g.rng.IntN(300)
		if g.rng.IntN(3) == 0 {
			n = int(fdSize(s)) + 10
		}
		return pdPread{s, int64(g.rng.IntN(int(fdSize(s)) + 10)), n}
	case "ftruncate":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdFtruncate{s, g.size(fdSize(s))}
	case "truncate":
		n := g.name()
		cur := int64(100)
		if st := nat.names[n]; st.err == nil {
			cur = st.size
		}
		return pdTruncate{n, g.size(cur)}
	case "utimens":
		return pdUtimens{g.name(), g.time(), g.time()}
	case "chmod":
		return pdChmod{g.name(), pdModes[g.rng.IntN(len(pdModes))]}
	case "fchmod":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdFchmod{s, pdModes[g.rng.IntN(len(pdModes))]}
	case "chown":
		u, gr := g.owner()
		return pdChown{g.name(), u, gr}
	case "fchown":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		u, gr := g.owner()
		return pdFchown{s, u, gr}
	case "rename":
		from, to := g.name(), g.r.names[g.rng.IntN(len(g.r.names))]
		if from == to && g.rng.IntN(4) != 0 {
			return nil
		}
		var flags uint
		if g.rng.IntN(4) == 0 {
			flags = unix.RENAME_NOREPLACE
		}
		return pdRename{from, to, flags}
	case "unlink":
		return pdUnlink{g.name()}
	case "dupclose":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdDupClose{s}
	case "fstat":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		return pdFstat{s}
	case "fallocate":
		s, ok := g.slot()
		if !ok {
			return nil
		}
		var mode uint32
		if g.rng.IntN(3) == 0 {
			mode = unix.FALLOC_FL_KEEP_SIZE
		}
		return pdFallocate{s, mode, int64(g.rng.IntN(int(fdSize(s)) + 1)), 1 + int64(g.rng.IntN(5000))}
	case "mmap":
		// Only where a write into the mapping stays inside the file
		// (past its end would be SIGBUS).
		var ok []int
		for s := range pdSlots {
			if m.open(s) && m.slots[s].acc == unix.O_RDWR && nat.open[s] && nat.fds[s].err == nil && nat.fds[s].size > 0 {
				ok = append(ok, s)
			}
		}
		if len(ok) == 0 {
			return nil
		}
		s := ok[g.rng.IntN(len(ok))]
		size := nat.fds[s].size
		off := int64(g.rng.IntN(int(size)))
		n := 1 + g.rng.IntN(int(min(size-off, 200)))
		return pdMmapWrite{s, off, g.data(n)}
	}
	panic("unknown kind " + kind)
}

// pdSeq is a sequence: its names, the files it starts with, its
// operations.
type pdSeq struct {
	names []string
	files []pdFile
	ops   []pdOp
}

// pdRunRandom runs seed's sequence on two fresh sides, drawing each
// operation from the state the previous ones left. It returns "" or the
// first mismatch, with the sequence up to it and the mismatch's
// signature (for pdShrink).
func pdRunRandom(t *testing.T, seed uint64, a, b *pdSide, cfg pdConfig, verbose bool) (msg string, seq pdSeq, sig string) {
	rng := rand.New(rand.NewPCG(seed, 0x706f73697864696d))
	seq.names = []string{"a", "b", "tmp"}[:2+rng.IntN(2)]
	g := &pdGen{rng: rng, skip: cfg.skip}
	seq.files = []pdFile{{"a", string(g.data(g.length())), 0o644, pdOmit}}
	if rng.IntN(2) == 0 {
		seq.files = append(seq.files, pdFile{"b", string(g.data(g.length())), 0o640, pdT(0)})
	}
	head := fmt.Sprintf("seed %d (replay: CLFS_POSIXDIFF_SEED=%d go test -count=1 -run 'TestPOSIXDifferential/random' ./mount/)", seed, seed)
	msg, seq.ops, sig = pdRunSeq(t, head, seq, a, b, cfg.noOrder, verbose, func(r *pdRun, i int) pdOp {
		if i < pdOps {
			g.r = r
			return g.next()
		}
		return nil
	})
	return msg, seq, sig
}

// pdRunSeq runs a sequence on two sides: seq.ops, or the operations next
// draws when it is given; then it closes what is open and compares the
// content. It returns "" or the first mismatch, the operations run up to
// it, and its signature: the kind of operation and the first
// difference, numbers left out.
func pdRunSeq(t *testing.T, head string, seq pdSeq, a, b *pdSide, noOrder, verbose bool, next func(*pdRun, int) pdOp) (string, []pdOp, string) {
	r := newPDRun(t, seq.names, seq.files, a, b, verbose)
	if noOrder {
		r.scope = pdNoOrder
	}
	defer a.closeAll()
	defer b.closeAll()
	var ops []pdOp
	for i := 0; ; i++ {
		var op pdOp
		switch {
		case next != nil:
			op = next(r, i)
		case i < len(seq.ops):
			op = seq.ops[i]
			if o, ok := op.(pdOpen); ok && r.m.open(o.slot) {
				continue // a shrunk sequence lost the close before it
			}
		}
		if op == nil {
			for s := range pdSlots {
				if r.m.open(s) {
					op = pdClose{s}
					break
				}
			}
		}
		if op == nil {
			break
		}
		ops = append(ops, op)
		if sr := r.step(op); len(sr.diffs) > 0 {
			return r.report(head, len(r.hist)-1, op, sr), ops, op.kind() + ": " + pdSignature(sr.diffs[0])
		}
	}
	if d := r.final(); len(d) > 0 {
		return head + ": at the end, everything closed:\n    " + strings.Join(d, "\n    ") + "\n  operations:\n    " + strings.Join(r.hist, "\n    "), ops, "final: " + pdSignature(d[0])
	}
	return "", ops, ""
}

var pdNumbers = regexp.MustCompile(`[0-9][0-9.]*`)

func pdSignature(diff string) string { return pdNumbers.ReplaceAllString(diff, "N") }

// pdShrink makes a failing sequence shorter while it still fails the same
// way (same signature), removing ever smaller runs of operations
// (delta debugging); fresh makes two fresh sides for each attempt.
func pdShrink(t *testing.T, seq pdSeq, sig string, noOrder bool, fresh func() (*pdSide, *pdSide)) pdSeq {
	fails := func(ops []pdOp) bool {
		a, b := fresh()
		_, _, s := pdRunSeq(t, "shrink", pdSeq{seq.names, seq.files, ops}, a, b, noOrder, false, nil)
		return s == sig
	}
	ops := seq.ops
	for n := 2; len(ops) >= 2; {
		chunk := (len(ops) + n - 1) / n
		removed := false
		for start := 0; start < len(ops); start += chunk {
			try := append(slices.Clone(ops[:start]), ops[min(start+chunk, len(ops)):]...)
			if fails(try) {
				ops, removed = try, true
				break
			}
		}
		switch {
		case removed:
			n = max(n-1, 2)
		case chunk == 1:
			return pdSeq{seq.names, seq.files, ops}
		default:
			n = min(2*n, len(ops))
		}
	}
	return pdSeq{seq.names, seq.files, ops}
}

func (s pdSeq) String() string {
	var b strings.Builder
	for _, f := range s.files {
		fmt.Fprintf(&b, "    (start: %s, %d bytes, mode %04o, mtime %v)\n", pdName(f.name), len(f.content), f.mode, f.mtime)
	}
	for i, op := range s.ops {
		fmt.Fprintf(&b, "    #%d %v\n", i, op)
	}
	return b.String()
}

// ------------------------------------------------------------------- test

type pdConfig struct {
	seeds   []uint64
	replay  bool
	skip    map[string]bool
	noOrder bool
}

func pdConfigFromEnv(t *testing.T) pdConfig {
	c := pdConfig{skip: map[string]bool{}}
	n := uint64(20)
	if v := os.Getenv("CLFS_POSIXDIFF_SEEDS"); v != "" {
		var err error
		if n, err = strconv.ParseUint(v, 10, 64); err != nil || n == 0 {
			t.Fatalf("CLFS_POSIXDIFF_SEEDS=%q: want a positive number", v)
		}
	}
	for s := uint64(1); s <= n; s++ {
		c.seeds = append(c.seeds, s)
	}
	if v := os.Getenv("CLFS_POSIXDIFF_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CLFS_POSIXDIFF_SEED=%q: want a number", v)
		}
		c.seeds, c.replay = []uint64{s}, true
	}
	if v := os.Getenv("CLFS_POSIXDIFF_SKIP"); v != "" {
		for _, k := range strings.Split(v, ",") {
			if !slices.ContainsFunc(pdKinds, func(x pdKind) bool { return x.kind == k }) {
				t.Fatalf("CLFS_POSIXDIFF_SKIP: no kind of operation %q", k)
			}
			c.skip[k] = true
		}
	}
	c.noOrder = os.Getenv("CLFS_POSIXDIFF_NOORDER") != ""
	return c
}

// pdNative makes a fresh native directory.
func pdNative(t *testing.T, base, label, name string) *pdSide {
	t.Helper()
	dir := filepath.Join(base, label+"-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return newPDSide(label, dir, false)
}

// pdItemName turns a case name into an item name.
func pdItemName(s string) string { return strings.ReplaceAll(s, "/", "-") }

func TestPOSIXDifferential(t *testing.T) {
	// Under umask 0 a mode given to open is the mode the file gets, on
	// both sides.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	cfg := pdConfigFromEnv(t)
	base := t.TempDir()
	tm := newMount(t)

	// The harness on itself: a native directory against another.
	t.Run("native-vs-native", func(t *testing.T) {
		if !cfg.replay {
			for _, c := range pdFixedCases() {
				n := pdItemName(c.name)
				pdRunFixed(t, c, pdNative(t, base, "native", n), pdNative(t, base, "native2", n))
			}
		}
		for _, seed := range cfg.seeds {
			n := fmt.Sprintf("seed-%d", seed)
			if msg, _, _ := pdRunRandom(t, seed, pdNative(t, base, "native", n), pdNative(t, base, "native2", n), cfg, false); msg != "" {
				t.Error(msg)
			}
		}
	})

	t.Run("fixed", func(t *testing.T) {
		if cfg.replay {
			t.Log("replaying one seed: fixed cases not run")
			return
		}
		for _, c := range pdFixedCases() {
			t.Run(c.name, func(t *testing.T) {
				n := pdItemName(c.name)
				pdRunFixed(t, c, pdNative(t, base, "native", "fixed-"+n), newPDSide("clfs", tm.mkItem(t, "fixed", n), true))
			})
		}
	})
	t.Run("random", func(t *testing.T) {
		for _, seed := range cfg.seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				n := fmt.Sprintf("seed-%d", seed)
				msg, seq, sig := pdRunRandom(t, seed, pdNative(t, base, "native", "rand-"+n), newPDSide("clfs", tm.mkItem(t, "random", n), true), cfg, cfg.replay)
				if msg == "" {
					return
				}
				t.Error(msg)
				if cfg.replay {
					k := 0
					small := pdShrink(t, seq, sig, cfg.noOrder, func() (*pdSide, *pdSide) {
						k++
						m := fmt.Sprintf("shrink-%d-%d", seed, k)
						return pdNative(t, base, "native", m), newPDSide("clfs", tm.mkItem(t, "random", m), true)
					})
					t.Errorf("seed %d, shrunk to %d operations that fail the same way (%s):\n%v", seed, len(small.ops), sig, small)
				}
			})
		}
	})
}
