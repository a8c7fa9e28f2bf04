package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"clfs/meta"
)

// Successor sessions: the changes a partial commit leaves out move, in the
// commit's own transaction, to a new ACTIVE session that takes over the
// item's lock, with their staged bytes and open uploads.

// successor is the session that carries on with the changes a partial
// commit leaves out. A nil *successor means there is none.
type successor struct {
	id   uint64
	uuid string
}

func (s *successor) sessionID() string {
	if s == nil {
		return ""
	}
	return s.uuid
}

func (m *Manager) newSuccessor(ctx context.Context, p *commitPlan) (*successor, error) {
	if len(p.carry) == 0 {
		return nil, nil
	}
	id, err := m.store.NextID(ctx)
	if err != nil {
		return nil, err
	}
	return &successor{id: id, uuid: newUUID()}, nil
}

// movedStaging maps a carried file's old staging path to its new one.
type movedStaging map[string]movedFile

type movedFile struct {
	to string
	sf *StagedFile // the live upload whose path moved with it, if any
}

// moveStaging moves the carried files' staged bytes into the successor's
// staging directory, so that the ending session's directory can go. Bytes
// staged in memory or in the catalog have no file to move; their path
// moves all the same, so that a later spill lands in the successor's
// directory.
func (s *successor) moveStaging(m *Manager, p *commitPlan) (movedStaging, error) {
	if s == nil {
		return nil, nil
	}
	moved := movedStaging{}
	dir := stagingDir(p.root, s.uuid)
	for _, c := range p.carry {
		if c.Staging == "" {
			continue
		}
		to := filepath.Join(dir, filepath.Base(c.Staging))
		sf := m.liveUpload(p.s.ID, c.Name)
		if sf != nil {
			sf.mu.Lock() // no spill while the path moves
		}
		err := moveFile(c.Staging, to)
		if err == nil && sf != nil {
			sf.path = to
		}
		if sf != nil {
			sf.mu.Unlock()
		}
		if err != nil {
			s.undoStaging(moved)
			return nil, storageErr("move staging", err)
		}
		moved[c.Staging] = movedFile{to: to, sf: sf}
	}
	return moved, nil
}

// moveFile renames from to to, creating to's directory if needed; a from
// that does not exist is nothing to move.
func moveFile(from, to string) error {
	err := os.Rename(from, to)
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, serr := os.Lstat(from); errors.Is(serr, os.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.Rename(from, to)
}

func (s *successor) undoStaging(moved movedStaging) {
	for from, mv := range moved {
		if mv.sf != nil {
			mv.sf.mu.Lock()
		}
		os.Rename(mv.to, from)
		if mv.sf != nil {
			mv.sf.path = from
			mv.sf.mu.Unlock()
		}
	}
}

// createTx creates the successor with the carried changes and hands it the
// item's lock; the ending session has already released it.
func (s *successor) createTx(tx *meta.Tx, m *Manager, p *commitPlan, moved movedStaging) error {
	if s == nil {
		return nil
	}
	it, err := tx.Item(p.s.ItemID)
	if err != nil {
		return err
	}
	rec := &meta.UpdateSession{
		SessionHeader:   m.newSessionHeader(s.id, s.uuid, it, p.s.Owner),
		WarningBehavior: p.s.WarningBehavior, WarningBehaviorIgnore: p.s.WarningBehaviorIgnore,
	}
	for _, c := range p.carry {
		var inline []byte
		if c.Inline {
			var err error
			if inline, err = tx.StagedBytes(p.s.ID, c.Name); err != nil {
				return fmt.Errorf("file %q: staged bytes in the catalog: %w", c.Name, err)
			}
		}
		if err := tx.DeleteUpdateSessionFile(p.s.ID, c.Name); err != nil {
			return err
		}
		c.SessionID = s.id
		if mv, ok := moved[c.Staging]; ok {
			c.Staging = mv.to
		}
		if inline != nil {
			if err := tx.PutStagedBytes(s.id, c.Name, inline); err != nil {
				return err
			}
		}
		if err := tx.PutUpdateSessionFile(&c); err != nil {
			return err
		}
	}
	if err := updateSessions.createTx(tx, rec); err != nil {
		return err
	}
	return tx.SetActiveUpdate(it.ID, rec.ID)
}

// takeLive moves the carried files' open staged files to the successor.
func (s *successor) takeLive(m *Manager, p *commitPlan) {
	if s == nil {
		return
	}
	next := m.liveFor(s.id)
	m.mu.Lock()
	prev := m.live[p.s.ID]
	var moving []*StagedFile
	if prev != nil {
		for _, c := range p.carry {
			if sf := prev.uploads[c.Name]; sf != nil {
				delete(prev.uploads, c.Name)
				next.uploads[c.Name] = sf
				moving = append(moving, sf)
			}
		}
	}
	m.mu.Unlock()
	for _, sf := range moving {
		sf.mu.Lock()
		n := int32(sf.opens)
		sf.sessionID, sf.ls = s.id, next
		sf.mu.Unlock()
		prev.handles.Add(-n)
		next.handles.Add(n)
	}
	m.touch(next)
}
