package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"clfs/meta"
)

// fill commits n files to an item, a few per update session (an etcd
// commit holds about thirty), each with its own content.
func (e *testEnv) fill(item, prefix string, n int) {
	e.t.Helper()
	for i := 0; i < n; i += 10 {
		var nameData []string
		for j := i; j < min(i+10, n); j++ {
			nameData = append(nameData, fmt.Sprintf("%s%03d", prefix, j), fmt.Sprintf("content of %s %d", prefix, j))
		}
		e.commit(item, nameData...)
	}
}

// hidden lists the libraries and items being deleted.
func (e *testEnv) hidden() []meta.Hidden {
	e.t.Helper()
	var out []meta.Hidden
	e.must(e.m.store.View(e.ctx, func(tx *meta.Tx) (err error) {
		out, err = tx.HiddenRecords(100)
		return err
	}))
	return out
}

// An item with more files than one transaction takes is deleted all the
// same (on etcd it failed with ErrTooLarge): gone at once, its name free,
// its sessions ended, every file and blob removed, fsck clean.
func TestDeleteLargeItem(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "big")
	e.fill(item, "f", 10)
	// A download session pins every file of its item when it is made,
	// in one transaction: on etcd, at most about sixty.
	reader := e.downloadSession(item)
	e.fill(item, "g", 3*sweepFiles)
	keep := e.item(lib, "keep")
	e.commit(keep, "k", "content of f 7") // shares a blob with big
	writer := e.updateSession(item)

	e.must(e.m.DeleteItem(e.ctx, item))

	if _, err := e.m.GetItem(e.ctx, item); KindOf(err) != KindNotFound {
		t.Fatalf("deleted item: %v, want not found", err)
	}
	if got := e.updateState(writer); got != StateFailed {
		t.Errorf("its update session: %s, want ERROR", got)
	}
	if got := e.downloadState(reader); got != StateFailed {
		t.Errorf("its download session: %s, want ERROR", got)
	}
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	again := e.item(lib, "big") // the name is free
	if files, err := e.m.ListFiles(e.ctx, again); err != nil || len(files) != 0 {
		t.Errorf("a new item of the same name: %d files, %v", len(files), err)
	}
	if got := e.fileContent(keep, "k"); got != "content of f 7" {
		t.Errorf("the other item's file: %q", got)
	}
	e.checkStorage()
}

// A library of many items goes in one call too, with a large item among
// them; none of its items is reachable from the moment it is hidden.
func TestDeleteLargeLibrary(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	var items []string
	for i := range 5 {
		it := e.item(lib, fmt.Sprintf("item%d", i))
		items = append(items, it)
		e.fill(it, fmt.Sprintf("i%d-", i), 3)
	}
	e.fill(items[2], "many", 2*sweepFiles)
	other := e.library("other")
	e.commit(e.item(other, "x"), "x", "x")

	e.must(e.m.DeleteLibrary(e.ctx, lib))

	if _, err := e.m.GetLibrary(e.ctx, lib); KindOf(err) != KindNotFound {
		t.Fatalf("deleted library: %v, want not found", err)
	}
	for _, it := range items {
		if _, err := e.m.GetItem(e.ctx, it); KindOf(err) != KindNotFound {
			t.Errorf("item of the deleted library: %v, want not found", err)
		}
	}
	libs, err := e.m.ListLibraries(e.ctx)
	e.must(err)
	if len(libs) != 1 || libs[0].Name != "other" {
		t.Errorf("libraries left: %+v", libs)
	}
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	e.library("lib") // the name is free
	e.checkStorage()
}

// Hidden and not swept (the node stopped between the two steps): the
// library and item are gone for every client, and the next sweep (the
// leader's, or the reaper's on Badger) removes what is left; fsck is
// clean in between and after.
func TestHiddenIsSweptLater(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "big")
	e.fill(item, "f", sweepFiles+3)
	lib2 := e.library("lib2")
	for i := range 3 {
		e.fill(e.item(lib2, fmt.Sprintf("i%d", i)), "g", 2)
	}
	ids := map[string]uint64{}
	e.must(e.m.store.Update(e.ctx, func(tx *meta.Tx) error {
		it, err := e.m.itemRec(tx, item)
		if err != nil {
			return err
		}
		l2, err := e.m.libraryRec(tx, lib2)
		if err != nil {
			return err
		}
		ids["item"], ids["lib2"] = it.ID, l2.ID
		if err := tx.HideItem(it.ID); err != nil {
			return err
		}
		return tx.HideLibrary(l2.ID)
	}))
	if _, err := e.m.GetItem(e.ctx, item); KindOf(err) != KindNotFound {
		t.Errorf("hidden item: %v, want not found", err)
	}
	if _, err := e.m.ItemByName(e.ctx, lib, "big"); KindOf(err) != KindNotFound {
		t.Errorf("hidden item by name: %v, want not found", err)
	}
	if _, err := e.m.LibraryByName(e.ctx, "lib2"); KindOf(err) != KindNotFound {
		t.Errorf("hidden library by name: %v, want not found", err)
	}
	found, err := e.m.FindItems(e.ctx, ItemFindSpec{Name: ptr("i1")})
	e.must(err)
	if len(found) != 0 {
		t.Errorf("find finds an item of a hidden library: %v", found)
	}
	if rep, err := e.m.Fsck(e.ctx, nil); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck while hidden: %+v, %v", rep, err)
	}
	if got := len(e.hidden()); got != 2 {
		t.Fatalf("%d hidden, want 2", got)
	}

	e.close()
	e.open()
	e.must(e.m.sweepHidden(e.ctx))
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	e.must(e.m.store.View(e.ctx, func(tx *meta.Tx) error {
		if _, err := tx.Item(ids["item"]); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("swept item's record: %v", err)
		}
		if _, err := tx.Library(ids["lib2"]); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("swept library's record: %v", err)
		}
		files, err := tx.TableFilesAfter(ids["item"], "", 1000)
		if len(files) != 0 {
			t.Errorf("swept item's files: %d left, %v", len(files), err)
		}
		return nil
	}))
	e.checkStorage()
}

// A sweep cut short by its caller's context leaves a consistent state
// that the next sweep finishes.
func TestSweepResumes(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "big")
	e.fill(item, "f", 4*sweepFiles)
	e.must(e.m.store.Update(e.ctx, func(tx *meta.Tx) error {
		it, err := e.m.itemRec(tx, item)
		if err != nil {
			return err
		}
		return tx.HideItem(it.ID)
	}))
	ctx, cancel := context.WithCancel(e.ctx)
	batches := 0
	e.m.afterSweepBatch = func() {
		if batches++; batches == 2 {
			cancel()
		}
	}
	if err := e.m.sweepHidden(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cut-short sweep: %v, want context.Canceled", err)
	}
	if rep, err := e.m.Fsck(e.ctx, nil); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck after a cut-short sweep: %+v, %v", rep, err)
	}
	e.m.afterSweepBatch = nil
	e.must(e.m.sweepHidden(e.ctx))
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	e.checkStorage()
}

// On a shared catalog a deletion another node left half done (hidden,
// not swept: it stopped between the two steps) is finished by the
// leader's tick; the other nodes already do not see it.
func TestLeaderFinishesDeletion(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, _ := c.node("")
	c.must(a.NodeTick(c.ctx)) // a leads
	c.must(b.NodeTick(c.ctx))
	item := c.item(b)
	for i := range sweepFiles + 2 {
		c.write(b, item, fmt.Sprintf("f%02d", i), fmt.Sprintf("content %d", i))
	}
	var id uint64
	c.must(b.store.Update(c.ctx, func(tx *meta.Tx) error {
		it, err := b.itemRec(tx, item)
		if err != nil {
			return err
		}
		id = it.ID
		return tx.HideItem(id)
	}))
	c.must(b.Close()) // b stops before it sweeps
	if _, err := a.GetItem(c.ctx, item); KindOf(err) != KindNotFound {
		t.Fatalf("hidden item on the other node: %v, want not found", err)
	}
	c.must(a.NodeTick(c.ctx))
	c.must(a.store.View(c.ctx, func(tx *meta.Tx) error {
		if _, err := tx.Item(id); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("the leader's tick left the item: %v", err)
		}
		if files, err := tx.TableFilesAfter(id, "", 1000); len(files) != 0 || err != nil {
			t.Errorf("the leader's tick left %d files: %v", len(files), err)
		}
		hidden, err := tx.HiddenRecords(10)
		if len(hidden) != 0 || err != nil {
			t.Errorf("still hidden: %v, %v", hidden, err)
		}
		return nil
	}))
	rep, err := a.Fsck(c.ctx, nil)
	c.must(err)
	if len(rep.Problems) != 0 {
		t.Errorf("fsck: %+v", rep.Problems)
	}
}
