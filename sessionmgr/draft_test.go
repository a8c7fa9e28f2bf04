package sessionmgr

import (
	"sync"
	"testing"
	"time"
)

// TestDraftLastCloseKeepsTheNextWritersTruncation: the last close of one
// writer (its RELEASE, which comes after its FLUSH committed) and the next
// writer's open with O_TRUNC can interleave. The close must not commit
// the truncation, or every reader would see an empty version of the file
// between the two writers' versions (found by TestConcWriterAndReaders
// under load).
func TestDraftLastCloseKeepsTheNextWritersTruncation(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	d, err := e.m.CreateFile(e.ctx, item, "f", Posix{Mode: 0o644})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("version 1"), 0)
	e.must(err)
	e.must(d.Commit(e.ctx)) // the first writer's FLUSH

	var wg sync.WaitGroup
	truncated := make(chan struct{}, 1)
	goOn := make(chan struct{})
	e.m.afterLastClose = func() {
		e.m.afterLastClose = nil
		wg.Add(1)
		go func() { // the next writer: open(O_TRUNC) ... write, close
			defer wg.Done()
			d2, err := e.m.OpenDraft(e.ctx, item, "f")
			if err != nil {
				t.Error(err)
				return
			}
			if err := d2.Truncate(e.ctx, 0); err != nil {
				t.Error(err)
			}
			truncated <- struct{}{}
			<-goOn
			if _, err := d2.WriteAt(e.ctx, []byte("version 2"), 0); err != nil {
				t.Error(err)
			}
			if err := d2.Commit(e.ctx); err != nil {
				t.Error(err)
			}
			if err := d2.Close(e.ctx); err != nil {
				t.Error(err)
			}
		}()
		// The truncation lands before the close's commit if the close
		// lets go of the draft in between; otherwise it waits for it.
		select {
		case <-truncated:
		case <-time.After(200 * time.Millisecond):
		}
	}
	e.must(d.Close(e.ctx)) // the first writer's RELEASE
	close(goOn)
	wg.Wait()

	f, err := e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	// Versions 1 and 2 are the writers'; an empty version 2 and the
	// second writer's version 3 are the bug.
	if f.Version != "2" || f.Size != int64(len("version 2")) {
		t.Errorf("file after two writers: version %s, %d bytes; want version 2 of %d bytes", f.Version, f.Size, len("version 2"))
	}
}
