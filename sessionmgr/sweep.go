package sessionmgr

import (
	"context"
	"errors"
	"time"

	"clfs/meta"
)

// Deleting what one transaction cannot hold. etcd takes at most 128 keys
// in a transaction, and deleting an item takes about three per file;
// deleting a library, that for every file of every item. So a library
// with more than one item, or an item with more than sweepFiles files, is
// deleted in two steps (meta's HideItem):
//
//  1. one small transaction hides it: its name and API id go, it is
//     marked Deleting, and an item's sessions end (those on a library's
//     items end as each item goes in step 2; their items are hidden with
//     the library meanwhile). From then on it
//     is gone for every client, on every node, and its name is free:
//     the API's delete is atomic as it promises.
//  2. sweepHidden removes what it held in bounded transactions (the files
//     of an item, sweepFiles at a time, dropping their content
//     references; the items of a library, one at a time), then the
//     record itself.
//
// The delete runs step 2 before it returns. Cut short (a crash, a client
// gone), the hidden index finds what is left: the leader (or, on Badger,
// the reaper) finishes it. Two nodes sweeping the same item conflict and
// take turns; what one removed the other finds gone.

const (
	// sweepFiles is how many files one transaction of a sweep removes:
	// with their references and the item's own keys, well within 128.
	sweepFiles = 24
	// sweepHiddenBatch is how many hidden records one round reads.
	sweepHiddenBatch = 16
	// sweepReaperBudget bounds the reaper's share of a sweep per round.
	sweepReaperBudget = 2 * time.Second
)

// finishDeleting runs step 2 for a delete that hid what it deletes. The
// delete took effect with step 1, so its caller is not told of a sweep
// cut short: what is left is the leader's (the reaper's) to remove.
func (m *Manager) finishDeleting(ctx context.Context) {
	if err := m.sweepHidden(ctx); err != nil {
		m.log.Warn("finish a deletion (the leader or the reaper will)", "err", err)
	}
}

// sweepAWhile is sweepHidden for a background round, which must not
// hold up the rest of it (a node's heartbeat above all): it stops after
// budget, and the next round goes on.
func (m *Manager) sweepAWhile(ctx context.Context, budget time.Duration) error {
	// A delete of this node's is sweeping: it goes on to the end. Two
	// sweeps of one node would only conflict with each other (a
	// library of 10,000 items took 4 min 20 s that way on etcd).
	if !m.sweeping.TryLock() {
		return nil
	}
	defer m.sweeping.Unlock()
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := m.sweepHiddenLocked(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// sweepHidden finishes every deletion under way, until none is left or
// ctx ends.
func (m *Manager) sweepHidden(ctx context.Context) error {
	m.sweeping.Lock()
	defer m.sweeping.Unlock()
	return m.sweepHiddenLocked(ctx)
}

func (m *Manager) sweepHiddenLocked(ctx context.Context) error {
	building := map[uint64]bool{} // tables whose builder is at work
	for {
		var hidden []meta.Hidden
		if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
			hidden, err = tx.HiddenRecords(sweepHiddenBatch + len(building))
			return err
		}); err != nil {
			return err
		}
		swept := false
		for _, h := range hidden {
			if h.Kind == meta.FileTableObject && building[h.ID] {
				continue
			}
			var err error
			switch h.Kind {
			case meta.FileTableObject:
				var left bool
				left, err = m.sweepGarbageTable(ctx, h.ID)
				building[h.ID] = left
			case meta.DownloadSessionObject:
				err = m.sweepPins(ctx, h.ID)
			case meta.ItemObject:
				err = m.sweepItem(ctx, h.ID)
			default:
				err = m.sweepLibrary(ctx, h.ID)
			}
			if err != nil {
				return err
			}
			swept = true
		}
		if !swept {
			return nil
		}
	}
}

// sweepItem removes a hidden item's files, sweepFiles per transaction,
// and then the item.
func (m *Manager) sweepItem(ctx context.Context, id uint64) error {
	var table uint64
	if err := m.store.View(ctx, func(tx *meta.Tx) error {
		it, err := tx.Item(id)
		if err == nil {
			table = it.Table()
		}
		return err
	}); errors.Is(err, meta.ErrNotFound) {
		return nil // another node finished it
	} else if err != nil {
		return err
	}
	return m.sweepTable(ctx, table, func(tx *meta.Tx) (bool, error) {
		_, err := tx.Item(id)
		if errors.Is(err, meta.ErrNotFound) {
			return true, nil
		}
		return false, err
	}, func(tx *meta.Tx) error {
		return tx.DeleteItem(id) // and its hidden mark, and its table's stamp
	})
}

// sweepGarbageTable removes a file table no item uses (bigcommit.go):
// one whose build was given up, or an item's before it switched. A table
// whose builder is still at work is left alone, and so reported.
func (m *Manager) sweepGarbageTable(ctx context.Context, table uint64) (left bool, err error) {
	err = m.sweepTable(ctx, table, func(tx *meta.Tx) (bool, error) {
		left = false
		builder, hidden, err := tx.HiddenTable(table)
		if err != nil || !hidden {
			return true, err // swept by another node, or given to an item
		}
		if builder == 0 {
			return false, nil
		}
		s, err := tx.UpdateSession(builder)
		if errors.Is(err, meta.ErrNotFound) {
			return false, nil
		}
		left = err == nil && !updateState(s).Terminal()
		return left, err
	}, func(tx *meta.Tx) error {
		return tx.DeleteTableStamp(table) // and its hidden mark
	})
	return left, err
}

// sweepPins drops the pins of a download session that ended with more
// than one transaction can drop (download.go's unpin), pinBatch at a
// time, and then its files if the session itself is deleted.
func (m *Manager) sweepPins(ctx context.Context, id uint64) error {
	after := ""
	for {
		var drop []meta.ContentKey
		done, last := false, after
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			drop, done, last = nil, false, after
			pins, err := tx.DownloadSessionFilesAfter(id, after, pinBatch)
			if err != nil {
				return err
			}
			if drop, err = unpinFiles(tx, pins, true); err != nil {
				return err
			}
			if len(pins) == pinBatch {
				last = pins[len(pins)-1].Name
				return nil
			}
			done = true
			return tx.DonePins(id)
		})
		if err != nil {
			return err
		}
		after = last
		m.dropUnreferenced(ctx, drop)
		if done {
			return nil
		}
		if m.afterSweepBatch != nil {
			m.afterSweepBatch()
		}
	}
}

// sweepTable removes a table's files, sweepFiles per transaction, and
// ends with finish in the transaction that finds none left. Each batch
// first asks leave whether to stop (the owner gone, or not garbage).
func (m *Manager) sweepTable(ctx context.Context, table uint64, leave func(*meta.Tx) (bool, error), finish func(*meta.Tx) error) error {
	after := "" // each batch goes on after the last (meta's FilesAfter)
	for {
		var drop []meta.ContentKey
		done, last := false, ""
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			drop, done, last = nil, false, ""
			if stop, err := leave(tx); err != nil || stop {
				done = stop
				return err
			}
			files, err := tx.TableFilesAfter(table, after, sweepFiles)
			if err != nil {
				return err
			}
			if drop, err = deleteFilesTx(tx, table, files); err != nil {
				return err
			}
			if len(files) == sweepFiles {
				last = files[len(files)-1].Name
				return nil
			}
			// The end of the names after the cursor; one look from the
			// first for any before it (another node's sweep of the
			// same table skips ahead of this one's cursor too).
			if rest, err := tx.TableFilesAfter(table, "", 1); err != nil || len(rest) > 0 {
				return err
			}
			done = true
			return finish(tx)
		})
		if err != nil {
			return err
		}
		after = last
		m.dropUnreferenced(ctx, drop)
		if done {
			return nil
		}
		if m.afterSweepBatch != nil {
			m.afterSweepBatch()
		}
	}
}

// sweepLibrary deletes a hidden library's items one per transaction (an
// item too large for one is hidden in turn and swept), then the library.
func (m *Manager) sweepLibrary(ctx context.Context, id uint64) error {
	after := "" // the last item's name: the next goes on from there
	for {
		var (
			drop   []meta.ContentKey
			ended  []endedSession
			hidden uint64
			done   bool
			last   string
		)
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			drop, ended, hidden, done, last = nil, nil, 0, false, ""
			if _, err := tx.Library(id); errors.Is(err, meta.ErrNotFound) {
				done = true
				return nil
			} else if err != nil {
				return err
			}
			ids, err := tx.ItemIDsAfter(id, after, 1)
			if err == nil && len(ids) == 0 && after != "" {
				ids, err = tx.FirstItemIDs(id, 1) // any before the cursor
			}
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				done = true
				return tx.DeleteLibrary(id) // and its hidden mark
			}
			it, err := tx.Item(ids[0])
			if err != nil {
				return err
			}
			last = it.Name
			var large bool
			if drop, ended, large, err = m.deleteItemTx(tx, it); err != nil {
				return err
			}
			if large {
				hidden = it.ID
			}
			return nil
		})
		if err != nil {
			return err
		}
		after = last
		m.afterEnd(ctx, ended)
		m.dropUnreferenced(ctx, drop)
		if hidden != 0 {
			if err := m.sweepItem(ctx, hidden); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// deleteFilesTx removes files from a file table and drops their content
// references, returning the content no file references any more.
func deleteFilesTx(tx *meta.Tx, table uint64, files []meta.File) ([]meta.ContentKey, error) {
	var drop []meta.ContentKey
	for i := range files {
		f := &files[i]
		d, err := dropRef(tx, f)
		if err != nil {
			return nil, err
		}
		drop = append(drop, d...)
		if err := tx.DeleteTableFile(table, f.Name); err != nil {
			return nil, err
		}
	}
	return drop, nil
}
