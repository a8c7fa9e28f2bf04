package sessionmgr

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const benchImportSize = 1 << 30

// BenchmarkImport1GiB streams 1 GiB through an update session (staging,
// hashing on the fly, fsync, complete) and, in the same run, hashes the
// same bytes with plain SHA-256. It reports both rates, their ratio (the
// target is >= 0.8) and the peak heap during the import (target: flat,
// < 64 MiB).
func BenchmarkImport1GiB(b *testing.B) {
	ctx := context.Background()
	m, err := Open(Options{Home: b.TempDir(), ReapInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	lib, err := m.CreateLibrary(ctx, LibraryCreateSpec{Name: "bench"}, "")
	if err != nil {
		b.Fatal(err)
	}
	item, err := m.CreateItem(ctx, ItemCreateSpec{LibraryID: lib, Name: "big"}, "")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)

	shaStart := time.Now()
	h := sha256.New()
	for i := 0; i < benchImportSize/len(chunk); i++ {
		h.Write(chunk)
	}
	h.Sum(nil)
	shaRate := float64(benchImportSize) / time.Since(shaStart).Seconds() / 1e6

	peak := watchHeap()
	b.SetBytes(benchImportSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// New bytes every time, as a real import has: identical ones would
		// be deduplicated at commit and skew the figure.
		chunk[0], chunk[1] = byte(i), byte(i>>8)
		importOnce(b, m, item, chunk)
		b.StopTimer()
		removeAll(b, m, item)
		b.StartTimer()
	}
	b.StopTimer()
	importRate := float64(benchImportSize) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	b.ReportMetric(shaRate, "sha256-MB/s")
	b.ReportMetric(importRate/shaRate, "ratio")
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
}

func importOnce(b *testing.B, m *Manager, item string, chunk []byte) {
	ctx := context.Background()
	sid, err := m.CreateUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	if err != nil {
		b.Fatal(err)
	}
	size := int64(benchImportSize)
	if _, err := m.AddFile(ctx, sid, FileAddSpec{Name: "disk.vmdk", SourceType: SourcePush, Size: &size}); err != nil {
		b.Fatal(err)
	}
	up, err := m.OpenUpload(ctx, sid, "disk.vmdk", UploadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := up.WriteAt(chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := up.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	up.Close()
	if err := m.CompleteUpdateSession(ctx, sid); err != nil {
		b.Fatal(err)
	}
}

// removeAll empties the item, so the next import's blob is new and the
// disk does not fill up; it runs outside the timer.
func removeAll(b *testing.B, m *Manager, item string) {
	ctx := context.Background()
	sid, err := m.CreateUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	if err != nil {
		b.Fatal(err)
	}
	if err := m.RemoveSessionFile(ctx, sid, "disk.vmdk"); err != nil {
		b.Fatal(err)
	}
	if err := m.CompleteUpdateSession(ctx, sid); err != nil {
		b.Fatal(err)
	}
}

// watchHeap samples the heap until the returned function is called, which
// reports the peak in bytes.
func watchHeap() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak.Load()
	}
}
