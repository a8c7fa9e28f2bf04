package sessionmgr

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"clfs/meta"
)

// The mount's update session on an item: at most one, shared by the
// item's drafts, created by the first change and carried on by successors.
// The mount never writes into a session another client holds.

// mountItem coordinates the drafts of one item.
type mountItem struct {
	id string // API id of the item

	mu      sync.Mutex // serializes the mount's session on the item
	session string     // GUARDED_BY(mu); the mount's ACTIVE update session, if any

	drafts map[uint64]*Draft // GUARDED_BY(Manager.mu); by inode number
}

func (m *Manager) mountItem(itemID string) *mountItem {
	m.mu.Lock()
	defer m.mu.Unlock()
	mi := m.items[itemID]
	if mi == nil {
		mi = &mountItem{id: itemID, drafts: map[uint64]*Draft{}}
		m.items[itemID] = mi
	}
	return mi
}

// draftByName finds the live draft of an item's name. It must not hold
// Manager.mu while it takes a Draft.mu (the lock order is Draft.mu first):
// a commit holds its draft's lock and then takes Manager.mu.
func (m *Manager) draftByName(mi *mountItem, name string) *Draft {
	m.mu.Lock()
	drafts := make([]*Draft, 0, len(mi.drafts))
	for _, d := range mi.drafts {
		drafts = append(drafts, d)
	}
	m.mu.Unlock()
	for _, d := range drafts {
		if d.nameIs(name) {
			return d
		}
	}
	return nil
}

func (d *Draft) nameIs(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name == name && !d.removed
}

// mountSessionTx returns the item's ACTIVE update session if the mount
// holds it, nil if there is none, and ResourceBusy if another client
// (the API) holds it: the mount never writes into a client's session.
//
// Every change the mount makes to an item's files goes through here, so
// a read-only manager refuses them here too, whatever the entry point
// (RenameFile has no check of its own).
func (m *Manager) mountSessionTx(tx *meta.Tx, it *meta.Item) (*meta.UpdateSession, error) {
	if m.readOnly {
		return nil, m.refuseIfReadOnly("change the files of item " + itemLabel(tx, it))
	}
	n, err := tx.ActiveUpdate(it.ID)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := tx.UpdateSession(n)
	if err != nil {
		return nil, err
	}
	if s.Owner != m.owner {
		if strings.HasPrefix(s.Owner, ownerMountPrefix) && s.Node != m.nodeID {
			return nil, wrapf(KindResourceBusy, errPeerMountWriting, "item %s is being written through node %d's mount (update session %s)", itemLabel(tx, it), s.Node, s.UUID)
		}
		return nil, errorf(KindResourceBusy, "item %s has an active update session %s of another client", itemLabel(tx, it), s.UUID)
	}
	return s, nil
}

// errPeerMountWriting is the cause of ResourceBusy when the session in
// the way is another node's mount's: that one ends as soon as its files
// of the item are closed, so waitForPeerMount waits for it. A session of
// an API client may be held for hours: that fails at once.
var errPeerMountWriting = errors.New("another node's mount is writing the item")

// waitForPeerMount runs change until it is no longer refused because
// another node's mount is writing the item, for at most the manager's
// PeerWriteWait, polling with a growing pause.
func (m *Manager) waitForPeerMount(ctx context.Context, change func() error) error {
	deadline := time.Now().Add(m.peerWait)
	pause := 5 * time.Millisecond
	for {
		err := change()
		left := time.Until(deadline)
		if !errors.Is(err, errPeerMountWriting) || left <= 0 {
			return err
		}
		if err := sleepCtx(ctx, min(pause, left)); err != nil {
			return err
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// itemSession returns the mount's ACTIVE session on the item, creating it.
// Caller holds mi.mu.
func (m *Manager) itemSession(ctx context.Context, mi *mountItem) (string, error) {
	if mi.session != "" {
		if s, err := m.GetUpdateSession(ctx, mi.session); err == nil && s.State == StateActive {
			return mi.session, nil
		}
		mi.session = ""
	}
	var held *meta.UpdateSession
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, mi.id)
		if err != nil {
			return err
		}
		held, err = m.mountSessionTx(tx, it)
		return err
	})
	if err != nil {
		return "", err
	}
	if held != nil {
		mi.session = held.UUID
		return mi.session, nil
	}
	sid, err := m.createUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: mi.id}, "", m.owner)
	if err != nil {
		return "", err
	}
	mi.session = sid
	return sid, nil
}

// beginUpload starts a change of a file of the item in one catalog
// transaction: it joins the mount's ACTIVE update session on the item or
// creates one, adds the file as a PUSH transfer in progress and opens its
// staged file, seeded with the committed content if fromCommitted. A new
// name (isNew) must not exist in the item. It returns the committed file,
// if there is one. Caller holds mi.mu.
//
// This is AddFile and OpenUpload for the mount, whose every file write
// starts one: one transaction instead of five.
func (m *Manager) beginUpload(ctx context.Context, mi *mountItem, name string, isNew, fromCommitted bool) (*StagedFile, *meta.File, error) {
	ids, err := m.nextIDs(ctx, 2) // a session, if one is needed, and a staging name
	if err != nil {
		return nil, nil, err
	}
	var (
		s                      *meta.UpdateSession
		committed              *meta.File
		path, oldStaging, from string
		inline                 []byte
		isInline               bool
	)
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		committed, inline, isInline, oldStaging, from = nil, nil, false, "", ""
		it, err := m.itemRec(tx, mi.id)
		if err != nil {
			return err
		}
		f, err := tx.File(it, name)
		switch {
		case err == nil && isNew:
			return errorf(KindAlreadyExists, "file %q already exists", name)
		case err == nil:
			committed = f
		case !errors.Is(err, meta.ErrNotFound):
			return err
		}
		if s, err = m.mountSessionTx(tx, it); err != nil {
			return err
		}
		if s != nil {
			if err := m.extendTx(tx, s); err != nil {
				return err
			}
			if old, err := tx.UpdateSessionFile(s.ID, name); err == nil {
				oldStaging = old.Staging
			}
		} else if s, err = m.newUpdateSessionTx(tx, it, ids[0], m.owner); err != nil {
			return err
		}
		lib, err := tx.Library(it.LibraryID)
		if err != nil {
			return err
		}
		root, err := m.backingRoot(tx, lib.BackingID)
		if err != nil {
			return err
		}
		path = filepath.Join(stagingDir(root, s.UUID), strconv.FormatUint(ids[1], 10))
		rec := &meta.UpdateSessionFile{SessionID: s.ID, Name: name, SourceType: SourcePush, Staging: path}
		if err := setTransferStatus(rec, TransferTransferring); err != nil {
			return err
		}
		if err := tx.PutUpdateSessionFile(rec); err != nil {
			return err
		}
		if !fromCommitted || committed == nil {
			return nil
		}
		k := meta.ContentKey{BackingID: committed.BackingID, SHA256: committed.SHA256}
		if inline, err = tx.InlineContent(k); err == nil {
			isInline = true
			return nil
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		r, err := m.backingRoot(tx, committed.BackingID)
		from = contentPath(r, committed.SHA256)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	mi.session = s.UUID
	if oldStaging != "" {
		// A change of the name the session had: this one replaces it.
		m.discardUpload(s.ID, name)
		removeQuietly(oldStaging)
	}
	if isInline && inline == nil {
		inline = []byte{}
	}
	ls := m.liveFor(s.ID)
	sf, err := m.newStagedFile(ls, s.ID, name, path, nil, from, inline)
	if err != nil {
		return nil, nil, err
	}
	if other, err := m.registerUpload(ls, s.UUID, sf); err != nil {
		return nil, nil, err
	} else if other != nil {
		// Only the draft, under mi.mu, opens uploads in the mount's
		// session; another means the API added the same name.
		return nil, nil, errorf(KindResourceBusy, "file %q is being uploaded by another client", name)
	}
	return sf, committed, nil
}
