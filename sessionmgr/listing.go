package sessionmgr

import "context"

// What the mount lists of an item: its committed files, plus the new
// names of drafts whose first commit has not happened.

// FileEntry is a file of an item as the mount shows it.
type FileEntry struct {
	Name    string
	Size    int64
	Version string
	SHA256  string // hex; empty for a new name not committed yet
	Posix   Posix
	// Pending is true for a new name whose first commit has not happened.
	Pending bool
	// Unlinked is true for a file whose name is gone (unlinked, renamed
	// over) and that lives on through the handles still open on it.
	Unlinked bool
}

// ItemEntries lists an item as the mount shows it: committed files plus
// new names not committed yet (empty until their first commit).
func (m *Manager) ItemEntries(ctx context.Context, itemID string) ([]FileEntry, error) {
	// New names first, then the catalog: a name whose first commit runs
	// in between is then in the catalog (see ItemEntry).
	pending := m.pendingNames(itemID)
	files, err := m.ListFiles(ctx, itemID)
	if err != nil {
		return nil, err
	}
	out := make([]FileEntry, 0, len(files))
	seen := map[string]bool{}
	for i := range files {
		out = append(out, entryOf(&files[i]))
		seen[files[i].Name] = true
	}
	for _, e := range pending {
		if !seen[e.Name] {
			out = append(out, e)
		}
	}
	sortBy(out, func(e FileEntry) string { return e.Name })
	return out, nil
}

// ItemEntry is one name of an item as the mount shows it.
//
// A new name is looked for among the drafts before the catalog: its first
// commit holds the draft's lock until the catalog has it, so a name is
// always found in one or the other. The other order loses it when the
// commit lands between the two looks (rsync's stat of a new empty file
// racing its commit at RELEASE got ENOENT).
func (m *Manager) ItemEntry(ctx context.Context, itemID, name string) (*FileEntry, error) {
	for _, e := range m.pendingNames(itemID) {
		if e.Name == name {
			return &e, nil
		}
	}
	f, err := m.GetFile(ctx, itemID, name)
	if err != nil {
		return nil, err
	}
	e := entryOf(f)
	return &e, nil
}

// pendingNames are an item's new names not committed yet.
func (m *Manager) pendingNames(itemID string) []FileEntry {
	m.mu.Lock()
	mi := m.items[itemID]
	var drafts []*Draft
	if mi != nil {
		for _, d := range mi.drafts {
			drafts = append(drafts, d)
		}
	}
	m.mu.Unlock()
	var out []FileEntry
	for _, d := range drafts {
		d.mu.Lock()
		if d.pending && !d.committed && !d.removed {
			out = append(out, FileEntry{Name: d.name, Posix: posixOf(d.ino, d.attr), Pending: true})
		}
		d.mu.Unlock()
	}
	return out
}

func entryOf(f *File) FileEntry {
	e := FileEntry{Name: f.Name, Size: f.Size, Version: f.Version, Posix: f.Posix}
	if f.ChecksumInfo != nil {
		e.SHA256 = f.ChecksumInfo.Checksum
	}
	return e
}
