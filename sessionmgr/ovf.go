package sessionmgr

import (
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"

	"clfs/meta"
)

// A small type adapter for OVF packages: validate reports the files an
// .ovf descriptor references (ovf:href) that the session's view lacks.
// complete does not enforce it, because the mount commits an OVF folder
// file by file and the descriptor usually arrives first.

// ovfHref matches ovf:href="..." and ovf:href='...': XML allows both.
var ovfHref = regexp.MustCompile(`ovf:href\s*=\s*(?:"([^"]+)"|'([^']+)')`)

const maxDescriptorBytes = 16 << 20

func (m *Manager) ovfReferences(ctx context.Context, s *meta.UpdateSession, view []UpdateSessionFile) []string {
	var refs []string
	for _, f := range view {
		if !strings.HasSuffix(strings.ToLower(f.Name), ".ovf") || f.Status != TransferReady {
			continue
		}
		b, ok := m.descriptor(ctx, s, f.Name)
		if !ok {
			continue
		}
		for _, mm := range ovfHref.FindAllSubmatch(b, -1) {
			ref := string(mm[1]) + string(mm[2]) // one of them is empty
			if ValidateName("file", ref) == nil {
				refs = append(refs, ref)
			}
		}
	}
	return refs
}

// descriptor reads the session's version of a file, up to
// maxDescriptorBytes: its staged bytes if the session added it, else the
// committed content.
func (m *Manager) descriptor(ctx context.Context, s *meta.UpdateSession, name string) ([]byte, bool) {
	var path string
	var inline []byte
	isInline := false
	_ = m.store.View(ctx, func(tx *meta.Tx) error {
		if c, err := tx.UpdateSessionFile(s.ID, name); err == nil && !c.Removed {
			if c.Inline {
				inline, err = tx.StagedBytes(s.ID, name)
				isInline = err == nil
				return err
			}
			path = c.Staging
			return nil
		}
		it, err := tx.Item(s.ItemID)
		if err != nil {
			return err
		}
		f, err := tx.File(it, name)
		if err != nil {
			return err
		}
		k := meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}
		if inline, err = tx.InlineContent(k); err == nil || !errors.Is(err, meta.ErrNotFound) {
			isInline = err == nil
			return err
		}
		root, err := m.backingRoot(tx, f.BackingID)
		if err == nil {
			path = contentPath(root, f.SHA256)
		}
		return err
	})
	if isInline {
		return inline[:min(len(inline), maxDescriptorBytes)], true
	}
	if path == "" {
		return nil, false
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxDescriptorBytes))
	return b, err == nil
}
