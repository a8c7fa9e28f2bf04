package sessionmgr

import (
	"context"
	"errors"

	"clfs/meta"
)

// A download session over an item of many files. The session pins every
// file when it is created (spec §12 #12), two keys a file, and etcd takes
// 128 per transaction; so for an item of more than pinBatch files the
// session is made in steps:
//
//  1. its record is stored marked Pinning: no client sees it yet (get,
//     list and every call by its id answer not found), while it holds
//     the item's content version and the stamp of its file table;
//  2. the files are pinned pinBatch per transaction, each checking that
//     the session is still there and ACTIVE and the table unchanged;
//  3. one transaction checks the same once more, shows the session and
//     remembers its client token.
//
// The item changing meanwhile starts it over (a few times, then the item
// is busy); anything else that stops it ends the session, whose pins the
// sweep drops as for any session with many (download.go's unpin), and
// deletes it. A crash leaves a session no one sees that expires as any
// other.

// pinTries is how often a large download session starts over because
// its item changed under it.
const pinTries = 3

func (m *Manager) createLargeDownloadSession(ctx context.Context, spec DownloadSessionCreateSpec, clientToken, owner string) (string, error) {
	for try := 1; ; try++ {
		out, err := m.tryLargeDownloadSession(ctx, spec, clientToken, owner)
		if !errors.Is(err, errTableChanged) {
			return out, err
		}
		if try == pinTries {
			return "", errorf(KindResourceBusy, "cannot create a download session: library item %s kept changing while its files were pinned; try again", spec.LibraryItemID)
		}
	}
}

// largePin is one attempt's session and what it checks.
type largePin struct {
	id    uint64
	table uint64
	stamp uint64
}

func (m *Manager) tryLargeDownloadSession(ctx context.Context, spec DownloadSessionCreateSpec, clientToken, owner string) (out string, err error) {
	id, err := m.store.NextID(ctx)
	if err != nil {
		return "", err
	}
	p := &largePin{id: id}
	var uuid string
	err = m.store.Update(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, spec.LibraryItemID)
		if err != nil {
			return err
		}
		s := &meta.DownloadSession{SessionHeader: m.newSessionHeader(id, newUUID(), it, owner), Pinned: true, Pinning: true}
		uuid = s.UUID
		p.table = it.Table()
		if p.stamp, err = tx.TableStamp(p.table); err != nil {
			return err
		}
		return downloadSessions.createTx(tx, s)
	})
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			m.dropLargePin(ctx, p)
		}
	}()
	for after, done := "", false; !done; {
		last := after
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			last = after // the body may run again
			s, err := p.still(tx)
			if err != nil {
				return err
			}
			files, err := tx.TableFilesAfter(p.table, after, pinBatch)
			if err != nil {
				return err
			}
			done = len(files) < pinBatch
			for i := range files {
				if _, err := pinTx(tx, s, &files[i]); err != nil {
					return err
				}
			}
			if len(files) > 0 {
				last = files[len(files)-1].Name
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		after = last
		if m.afterBuildBatch != nil {
			m.afterBuildBatch()
		}
	}
	err = m.store.Update(ctx, func(tx *meta.Tx) error {
		out = uuid
		s, err := p.still(tx)
		if err != nil {
			return err
		}
		prev, specHash, err := replayToken(tx, tokenDownload, clientToken, spec)
		if err != nil {
			return err
		}
		if prev != "" {
			// Another call with the same token made its session
			// meanwhile: that one is the answer, this one goes.
			out = prev
			return errReplayed
		}
		s.Pinning = false
		if err := tx.PutDownloadSession(s); err != nil {
			return err
		}
		return rememberToken(tx, tokenDownload, clientToken, specHash, uuid)
	})
	if errors.Is(err, errReplayed) {
		m.dropLargePin(ctx, p)
		return out, nil
	}
	return out, err
}

var errReplayed = errors.New("client token replayed")

// still checks, in each transaction, that the session is still pinning
// and its item's file table unchanged.
func (p *largePin) still(tx *meta.Tx) (*meta.DownloadSession, error) {
	s, err := tx.DownloadSession(p.id)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, errorf(KindNotAllowedInCurrentState, "the download session being created was deleted")
	}
	if err != nil {
		return nil, err
	}
	if State(s.State) != StateActive {
		return nil, errorf(KindNotAllowedInCurrentState, "the download session being created ended: %s", s.ErrorMessage)
	}
	it, err := tx.Item(s.ItemID)
	if err != nil {
		return nil, err
	}
	if deleting(tx, it) {
		return nil, errorf(KindNotFound, "library item %s not found", it.UUID)
	}
	stamp, err := tx.TableStamp(p.table)
	if err != nil {
		return nil, err
	}
	if it.Table() != p.table || stamp != p.stamp || it.ContentVersion != s.ItemContentVersion {
		return nil, errTableChanged
	}
	return s, nil
}

// dropLargePin ends and deletes a session given up before it was shown;
// the sweep drops its pins. It runs whether or not the caller is still
// there.
func (m *Manager) dropLargePin(ctx context.Context, p *largePin) {
	ctx = context.WithoutCancel(ctx)
	var drop []meta.ContentKey
	err := m.store.Update(ctx, func(tx *meta.Tx) error {
		s, err := tx.DownloadSession(p.id)
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		drop, err = deleteDownloadTx(tx, s)
		return err
	})
	if err != nil {
		m.log.Warn("drop a download session not created", "session", p.id, "err", err)
		return
	}
	m.dropUnreferenced(ctx, drop)
	m.finishDeleting(ctx)
}
