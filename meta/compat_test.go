package meta

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// testdata/home-9ba9089 is the catalog (HOME/meta) of a home written by
// clfs at 9ba9089, the release before the engine interface, with its CLI:
//
//	clfs library create --description "fixture library" Templates
//	clfs library create Other
//	clfs item import Templates/Alpha small.txt big.bin       (14 and 200000 bytes)
//	clfs item import --client-token 5a0c6f4e-... Templates/Beta readme.txt same.txt
//	clfs item create Other/Empty
//	clfs item import Templates/Alpha readme.txt               (12 bytes)
//
// (same.txt has small.txt's bytes; Badger's DISCARD file, 1 MiB of
// zeros, is left out: Badger makes a new one.) It must open unchanged,
// with every record and index where that release put them.
func TestHomeOfEarlierReleaseOpens(t *testing.T) {
	dir := t.TempDir()
	ents, err := os.ReadDir("testdata/home-9ba9089")
	mustNo(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("testdata/home-9ba9089", e.Name()))
		mustNo(t, err)
		mustNo(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600))
	}
	s, err := Open(bg, Options{Dir: dir})
	mustNo(t, err)
	var maxID uint64
	seen := func(id uint64) { maxID = max(maxID, id) }
	mustNo(t, s.View(bg, func(tx *Tx) error {
		libs, err := tx.Libraries()
		if err != nil {
			return err
		}
		var names []string
		for _, l := range libs {
			seen(l.ID)
			names = append(names, l.Name)
			if id, err := tx.LibraryIDByName(l.Name); err != nil || id != l.ID {
				t.Errorf("library %q by name: %d %v", l.Name, id, err)
			}
			if id, err := tx.ResolveUUID(l.UUID, LibraryObject); err != nil || id != l.ID {
				t.Errorf("library %q by uuid: %d %v", l.Name, id, err)
			}
			if _, err := tx.Backing(l.BackingID); err != nil {
				t.Errorf("library %q backing: %v", l.Name, err)
			}
		}
		sort.Strings(names)
		if fmt.Sprint(names) != "[Other Templates]" {
			t.Errorf("libraries %v", names)
		}
		if id, err := tx.LibraryIDByName("templates"); err != nil || id == 0 {
			t.Errorf("folded library name: %d %v", id, err)
		}

		items, err := tx.Items()
		if err != nil {
			return err
		}
		wantFiles := map[string]string{"Alpha": "[big.bin readme.txt small.txt]", "Beta": "[readme.txt same.txt]", "Empty": "[]"}
		refs := map[string]int64{} // content key → files using it
		for _, it := range items {
			seen(it.ID)
			if id, err := tx.ItemIDByName(it.LibraryID, it.Name); err != nil || id != it.ID {
				t.Errorf("item %q by name: %d %v", it.Name, id, err)
			}
			if id, err := tx.ResolveUUID(it.UUID, ItemObject); err != nil || id != it.ID {
				t.Errorf("item %q by uuid: %d %v", it.Name, id, err)
			}
			ids, err := tx.ItemIDs(it.LibraryID)
			if err != nil || !containsID(ids, it.ID) {
				t.Errorf("item %q not listed in its library: %v %v", it.Name, ids, err)
			}
			files, err := tx.Files(&it)
			if err != nil {
				return err
			}
			var fnames []string
			var size int64
			for _, f := range files {
				seen(f.ID)
				fnames = append(fnames, f.Name)
				size += f.Size
				refs[ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}.String()]++
			}
			if got := fmt.Sprint(fnames); got != wantFiles[it.Name] {
				t.Errorf("item %q files %s, want %s", it.Name, got, wantFiles[it.Name])
			}
			if it.SizeKnown && it.Size != size {
				t.Errorf("item %q size %d, files sum to %d", it.Name, it.Size, size)
			}
			if _, err := tx.ActiveUpdate(it.ID); err == nil {
				t.Errorf("item %q has an active update session", it.Name)
			}
		}
		if len(items) != 3 {
			t.Errorf("%d items, want 3", len(items))
		}

		// fsck's invariant: every blob's count is the files using it
		// (no download session pins any here), inline blobs hash right.
		entries, err := tx.ContentRefs()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if got := refs[e.Key.String()]; got != e.Ref.Refs {
				t.Errorf("blob %s: %d refs, %d files use it", e.Key, e.Ref.Refs, got)
			}
			delete(refs, e.Key.String())
			if e.Ref.Inline {
				data, err := tx.InlineContent(e.Key)
				if sum := sha256.Sum256(data); err != nil || !bytes.Equal(sum[:], e.Key.SHA256) || int64(len(data)) != e.Ref.Size {
					t.Errorf("inline blob %s: %d bytes, %v", e.Key, len(data), err)
				}
			}
		}
		for k := range refs {
			t.Errorf("blob %s used by a file has no reference record", k)
		}
		if len(entries) != 3 { // small.txt = same.txt, readme.txt twice
			t.Errorf("%d blobs, want 3", len(entries))
		}

		sessions, err := tx.UpdateSessions()
		if err != nil {
			return err
		}
		for _, u := range sessions {
			seen(u.ID)
			if u.State != "DONE" {
				t.Errorf("session %d: %s", u.ID, u.State)
			}
		}
		if len(sessions) != 3 {
			t.Errorf("%d update sessions, want 3", len(sessions))
		}
		return nil
	}))
	// New IDs continue after the release's sequence, and the home takes
	// writes in the new format.
	id, err := s.NextID(bg)
	mustNo(t, err)
	if id <= maxID {
		t.Errorf("next id %d, not above %d", id, maxID)
	}
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.PutLibrary(&Library{ID: id, Name: "New"}); err != nil {
			return err
		}
		return tx.PutClientToken('L', "tok", &ClientToken{UUID: "u"})
	}))
	mustNo(t, s.Close())
	s, err = Open(bg, Options{URL: "badger://" + dir})
	mustNo(t, err)
	defer s.Close()
	mustNo(t, s.View(bg, func(tx *Tx) error {
		if _, err := tx.getRaw(formatKey("downloads-by-item")); err != nil {
			t.Errorf("upgrade not marked done: %v", err)
		}
		if _, err := tx.Library(id); err != nil {
			t.Errorf("library written after the upgrade: %v", err)
		}
		if _, err := tx.ClientToken('L', "tok"); err != nil {
			t.Errorf("client token written after the upgrade: %v", err)
		}
		return nil
	}))
	if id2, err := s.NextID(bg); err != nil || id2 <= id {
		t.Errorf("id after reopen %d %v, not above %d", id2, err, id)
	}
}

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
