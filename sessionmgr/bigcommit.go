package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"clfs/meta"
)

// A commit of many changes at once: an API session that adds a whole
// template's files and completes once. One transaction would take about
// four keys a change, and etcd takes 128 per transaction, so a commit of
// more than bigCommitFiles changes builds the item's new file table
// instead, in bounded transactions, and switches the item to it in one
// small transaction. Readers see the old table until the switch and the
// new one after it: the commit is as atomic as the API promises.
//
//  1. freeze: the session is marked completing (it takes no more changes;
//     the API still shows it ACTIVE), and the new table is listed hidden,
//     owned by the session (meta's BuildTable), so that a crash leaves
//     garbage the sweep finds. The plan is made again under the freeze
//     and must be the one whose blobs were placed.
//  2. build: the old table's files the session does not change are
//     copied, then the session's new and replaced files are added, each
//     with a reference on its content, bigCommitBatch per transaction.
//     Every transaction checks the old table's stamp: any change to it
//     meanwhile (a chmod through a mount, a rename) starts the build over.
//  3. switch: one transaction checks the stamp and the session once more,
//     gives the item the new table, moves its content version, lists the
//     old table as garbage and ends the session DONE.
//  4. the old table is swept like a deleted item's (sweep.go), dropping
//     its references: the blobs of replaced and removed files go, those
//     the new table copied keep the reference it took. The commit sweeps
//     it before it returns, once it let go of its content locks (the
//     sweep frees blobs under them); cut short, the leader or the reaper
//     finish it.
//
// A build given up (the session cancelled or expired meanwhile, a server
// error, the caller gone) lists its table as garbage and leaves the item
// as it was.

const (
	// bigCommitFiles is the most changes one commit transaction makes.
	bigCommitFiles = sweepFiles
	// bigCommitBatch bounds one build transaction: files, and the
	// inline bytes they carry.
	bigCommitBatch      = sweepFiles
	bigCommitBatchBytes = 512 << 10
	// bigCommitTries is how often a build starts over because the old
	// table changed under it before the commit gives up, busy.
	bigCommitTries = 3
)

// isBigCommit reports whether a plan takes the path above: all of a
// session's changes (an API complete; the mount commits a few files at a
// time), too many for one transaction.
func isBigCommit(p *commitPlan) bool {
	return len(p.apply) > bigCommitFiles && len(p.carry) == 0 && p.sealed == nil
}

// bigCommit is the state of one large commit.
type bigCommit struct {
	m        *Manager
	p        *commitPlan
	fileIDs  []uint64
	froze    bool   // this call marked the session completing
	table    uint64 // the table being built
	oldTable uint64
	stamp    uint64 // the old table's stamp the build started from
	size     int64  // of the new table
	names    bool   // a name appears or goes
}

// commitBig runs steps 1-3 for a plan whose blobs are placed. It returns
// with the session DONE, or with the item untouched and the session
// ACTIVE again (a conflict, the caller gone) or ended (cancelled
// meanwhile, or failed by a server error: the caller fails it).
func (m *Manager) commitBig(ctx context.Context, p *commitPlan, fileIDs []uint64) error {
	b := &bigCommit{m: m, p: p, fileIDs: fileIDs}
	err := b.freeze(ctx)
	for try := 1; err == nil; try++ {
		switched := false
		if err = b.build(ctx); err == nil {
			switched, err = b.switchTable(ctx)
		}
		if errors.Is(err, errTableChanged) {
			err = nil
		}
		if err != nil || switched {
			break
		}
		if try == bigCommitTries {
			err = errorf(KindResourceBusy, "cannot complete %s: its item's files kept changing while it was committed; try again", updateLabel(p.s.UUID))
			break
		}
		if err = b.restart(ctx); err != nil {
			break
		}
	}
	if err != nil {
		b.giveUp(ctx, err, failsSession(ctx, err))
	}
	return err
}

// freeze is step 1.
func (b *bigCommit) freeze(ctx context.Context) error {
	m, p := b.m, b.p
	table, err := m.store.NextID(ctx)
	if err != nil {
		return err
	}
	err = m.store.Update(ctx, func(tx *meta.Tx) error {
		b.froze = false
		cur, err := tx.UpdateSession(p.s.ID)
		if err != nil {
			return err
		}
		if err := checkUpdate(cur, p.op); err != nil {
			return err
		}
		if p.op == opComplete {
			cur.CompletePending, b.froze = true, true
			if err := m.extendTx(tx, cur); err != nil {
				return err
			}
		}
		if err := b.readOldTable(tx, cur); err != nil {
			return err
		}
		return tx.BuildTable(table, cur.ID)
	})
	if err != nil {
		return err
	}
	b.table = table
	again, err := m.planCommit(ctx, p.s.UUID, nil, opCommit)
	if err != nil {
		return err
	}
	if !samePlan(p.apply, again.apply) || len(again.carry) != 0 {
		return errorf(KindNotAllowedInCurrentState, "%s changed while completing", updateLabel(p.s.UUID))
	}
	return nil
}

// readOldTable notes the table the item has and its stamp.
func (b *bigCommit) readOldTable(tx *meta.Tx, s *meta.UpdateSession) error {
	it, err := tx.Item(s.ItemID)
	if err != nil {
		return err
	}
	b.oldTable = it.Table()
	b.stamp, err = tx.TableStamp(b.oldTable)
	return err
}

// samePlan reports whether two plans apply the same changes: the one
// whose blobs were placed, and the one made under the freeze.
func samePlan(a, b []meta.UpdateSessionFile) bool {
	return slices.EqualFunc(a, b, func(x, y meta.UpdateSessionFile) bool {
		return x.Name == y.Name && x.Removed == y.Removed && x.Staging == y.Staging &&
			x.Inline == y.Inline && x.Size == y.Size && string(x.SHA256) == string(y.SHA256)
	})
}

// still checks, in each transaction of the build, that the session is
// the frozen one and the old table unchanged since the build started.
func (b *bigCommit) still(tx *meta.Tx) (*meta.UpdateSession, error) {
	cur, err := tx.UpdateSession(b.p.s.ID)
	if err != nil {
		return nil, err
	}
	if updateState(cur) != stateCompleting {
		return nil, &StateError{Session: updateLabel(cur.UUID), Op: b.p.op, State: updateState(cur)}
	}
	stamp, err := tx.TableStamp(b.oldTable)
	if err != nil {
		return nil, err
	}
	if stamp != b.stamp {
		return nil, errTableChanged
	}
	return cur, nil
}

// errTableChanged stops a build whose old table changed under it.
var errTableChanged = errors.New("the item's file table changed")

// build is step 2.
func (b *bigCommit) build(ctx context.Context) error {
	m, p := b.m, b.p
	changed := make(map[string]int, len(p.apply))
	for i, c := range p.apply {
		changed[c.Name] = i
	}
	old := map[string]*meta.File{} // the files the session replaces or removes
	b.size, b.names = 0, false

	// The files the session leaves as they are, copied a page at a time.
	for after, done := "", false; !done; {
		last := after
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			last = after // the body may run again
			if _, err := b.still(tx); err != nil {
				return err
			}
			files, err := tx.TableFilesAfter(b.oldTable, after, bigCommitBatch)
			if err != nil {
				return err
			}
			done = len(files) < bigCommitBatch
			for i := range files {
				f := &files[i]
				if _, ok := changed[f.Name]; ok {
					old[f.Name] = f
					continue
				}
				if _, err := tx.AddContentRef(meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}, 1, 0); err != nil {
					return err
				}
				if err := tx.PutTableFile(b.table, f); err != nil {
					return err
				}
			}
			if len(files) > 0 {
				last = files[len(files)-1].Name
			}
			return nil
		})
		if err != nil {
			return err
		}
		after = last
		b.m.builtBatch()
	}
	// Sizes are summed once the pages are in: a page's transaction may
	// have run more than once.
	if err := m.store.View(ctx, func(tx *meta.Tx) error {
		b.size = 0
		for after := ""; ; {
			files, err := tx.TableFilesAfter(b.table, after, 512)
			if err != nil || len(files) == 0 {
				return err
			}
			for i := range files {
				b.size += files[i].Size
			}
			after = files[len(files)-1].Name
		}
	}); err != nil {
		return err
	}

	// The session's new and replaced files.
	now := m.now()
	for start := 0; start < len(p.apply); {
		end, bytes := start, int64(0)
		for end < len(p.apply) && end-start < bigCommitBatch && (end == start || bytes+inlineSize(&p.apply[end]) <= bigCommitBatchBytes) {
			bytes += inlineSize(&p.apply[end])
			end++
		}
		var added int64
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			added = 0
			cur, err := b.still(tx)
			if err != nil {
				return err
			}
			for i := start; i < end; i++ {
				c := &p.apply[i]
				if c.Removed {
					continue
				}
				f := newFileRecord(c, old[c.Name], b.fileIDs[i], cur.ItemID, p.backingID, now)
				k := meta.ContentKey{BackingID: p.backingID, SHA256: c.SHA256}
				if c.Inline {
					staged, err := tx.StagedBytes(cur.ID, c.Name)
					if err != nil || int64(len(staged)) != c.Size {
						return fmt.Errorf("file %q: staged bytes in the catalog: %w", c.Name, errors.Join(err, meta.ErrCorrupt))
					}
					if _, err := tx.AddInlineContent(k, staged); err != nil {
						return err
					}
				} else if _, err := tx.AddContentRef(k, 1, c.Size); err != nil {
					return err
				}
				if err := tx.PutTableFile(b.table, f); err != nil {
					return err
				}
				added += f.Size
			}
			return nil
		})
		if err != nil {
			return err
		}
		b.size += added
		start = end
		b.m.builtBatch()
	}
	for _, c := range p.apply {
		if _, had := old[c.Name]; had == c.Removed {
			b.names = true // a name added, or one removed that was there
		}
	}
	return nil
}

// inlineSize is what a change carries in the catalog.
func inlineSize(c *meta.UpdateSessionFile) int64 {
	if c.Inline && !c.Removed {
		return c.Size
	}
	return 0
}

// newFileRecord is the committed record of an added or replaced file:
// a replaced file keeps its id, mode and owner, and its version moves.
func newFileRecord(c *meta.UpdateSessionFile, old *meta.File, id, itemID, backingID uint64, now int64) *meta.File {
	f := &meta.File{
		ID: id, ItemID: itemID, Name: c.Name, Size: c.Size, Version: 1,
		SHA256: c.SHA256, BackingID: backingID, Requested: c.Requested,
		Attr: meta.Attr{Mode: 0o644, Mtime: now, Ctime: now, Atime: &now},
	}
	if old != nil {
		f.ID, f.Version = old.ID, old.Version+1
		f.Attr.Mode, f.Attr.UID, f.Attr.GID = old.Attr.Mode, old.Attr.UID, old.Attr.GID
		f.Attr.Atime = old.Attr.Atime
	}
	if a := c.Attr; a != nil {
		f.Attr.Mode, f.Attr.UID, f.Attr.GID = a.Mode, a.UID, a.GID
		if a.Mtime != 0 {
			f.Attr.Mtime = a.Mtime
		}
		if a.Atime != nil {
			f.Attr.Atime = a.Atime
		}
		if a.Ctime != 0 {
			f.Attr.Ctime = a.Ctime
		}
	}
	return f
}

// switchTable is step 3. It reports false, and changes nothing, if the
// old table changed since the build started.
func (b *bigCommit) switchTable(ctx context.Context) (switched bool, err error) {
	m := b.m
	err = m.store.Update(ctx, func(tx *meta.Tx) error {
		switched = false
		cur, err := b.still(tx)
		if errors.Is(err, errTableChanged) {
			return nil
		}
		if err != nil {
			return err
		}
		it, err := tx.Item(cur.ItemID)
		if err != nil {
			return err
		}
		if it.Table() != b.oldTable {
			return nil
		}
		if err := tx.UseTable(it, b.table); err != nil {
			return err
		}
		now := m.now()
		it.Size, it.SizeKnown = b.size, true
		it.ContentVersion++
		it.LastModifiedTime = now
		if b.names {
			it.Attr.Mtime, it.Attr.Ctime = now, now
		}
		if err := tx.PutItem(it); err != nil {
			return err
		}
		switched = true
		return m.endUpdateTx(tx, cur, opCommit, "")
	})
	return switched, err
}

// restart gives up the table built so far and starts another from the
// old table as it is now.
func (b *bigCommit) restart(ctx context.Context) error {
	table, err := b.m.store.NextID(ctx)
	if err != nil {
		return err
	}
	return b.m.store.Update(ctx, func(tx *meta.Tx) error {
		cur, err := tx.UpdateSession(b.p.s.ID)
		if err != nil {
			return err
		}
		if err := b.readOldTable(tx, cur); err != nil {
			return err
		}
		if err := tx.DropTable(b.table); err != nil {
			return err
		}
		b.table = table
		return tx.BuildTable(table, cur.ID)
	})
}

// failsSession reports whether a large commit's error puts its session
// in ERROR, as failCommit does for any commit: a server-side failure, not
// the caller gone nor a blob the leader is deleting (the commit places it
// again and retries).
func failsSession(ctx context.Context, err error) bool {
	return serverSide(err) && !callerGone(ctx, err) && !errors.Is(err, meta.ErrContentDeleting)
}

// giveUp lists the table being built as garbage. A session still
// completing is failed with cause, or, if this call froze it, made ACTIVE
// again: the client may complete it again. It runs whether or not the
// caller is still there.
func (b *bigCommit) giveUp(ctx context.Context, cause error, fail bool) {
	m := b.m
	ctx = context.WithoutCancel(ctx)
	err := m.store.Update(ctx, func(tx *meta.Tx) error {
		if b.table != 0 {
			if err := tx.DropTable(b.table); err != nil {
				return err
			}
		}
		cur, err := tx.UpdateSession(b.p.s.ID)
		if err != nil || updateState(cur).Terminal() {
			return err
		}
		if fail {
			return m.endUpdateTx(tx, cur, opFail, "commit failed: "+cause.Error())
		}
		if !b.froze {
			return nil
		}
		cur.CompletePending = false
		return tx.PutUpdateSession(cur)
	})
	if err != nil {
		m.log.Warn("give up a large commit", "session", b.p.s.UUID, "cause", cause, "err", err)
	}
}

func (m *Manager) builtBatch() {
	if m.afterBuildBatch != nil {
		m.afterBuildBatch()
	}
}
