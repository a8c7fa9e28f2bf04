package sessionmgr

import (
	"bytes"
	"context"
	"io"
	"testing"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	m, err := Open(Options{Home: t.TempDir(), ReapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lib, err := m.CreateLibrary(ctx, LibraryCreateSpec{Name: "lib"}, "")
	if err != nil {
		t.Fatal(err)
	}
	item, err := m.CreateItem(ctx, ItemCreateSpec{LibraryID: lib, Name: "iso"}, "")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := m.CreateUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddFile(ctx, sid, FileAddSpec{Name: "a.iso", SourceType: SourcePush}); err != nil {
		t.Fatal(err)
	}
	up, err := m.OpenUpload(ctx, sid, "a.iso", UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("hello"), 100000)
	if _, err := up.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	up.Close()
	if err := m.CompleteUpdateSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	files, err := m.ListFiles(ctx, item)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", files)
	d, err := m.CreateDownloadSession(ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.OpenDownload(ctx, d, "a.iso")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("mismatch", err)
	}
	r.Close()
	ds, _ := m.GetDownloadSession(ctx, d)
	t.Logf("%+v", ds)
	rep, err := m.Fsck(ctx, nil)
	t.Logf("%+v %v", rep, err)
}
