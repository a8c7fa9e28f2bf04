package api

import (
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clfs/sessionmgr"
)

const benchAPISize = 1 << 30

// BenchmarkAPITransfer1GiB pushes 1 GiB through an update session's
// upload endpoint (PUT, size declared, then complete) and reads it back
// through a download session's endpoint (GET), over HTTPS on loopback,
// client and server in this process. It reports both rates and the peak
// heap of the two together, which must stay flat: the bytes are streamed,
// never held.
//
//	go test -run '^$' -bench APITransfer -benchtime 3x ./mount/
func BenchmarkAPITransfer1GiB(b *testing.B) {
	e := newAPIEnvLogging(b, envOptions{}, slog.New(slog.DiscardHandler))
	itemID := e.newItem("bench", "big")
	peak := watchHeapInuse()
	var putTime, getTime time.Duration
	b.SetBytes(2 * benchAPISize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sid := e.newUpdateSession(itemID)
		uri := e.addFile(sid, map[string]any{"name": "disk.vmdk", "source_type": "PUSH", "size": benchAPISize})
		start := time.Now()
		req, err := http.NewRequest(http.MethodPut, uri, &patternReader{left: benchAPISize, seed: byte(i)})
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = benchAPISize
		req.Header.Set(APISessionHeader, e.token)
		if status, body := e.do(req); status != http.StatusOK {
			b.Fatalf("PUT: HTTP %d %s", status, body)
		}
		e.value("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=complete", nil, nil)
		putTime += time.Since(start)

		var did string
		e.value("POST", restContent+"/library/item/download-session", map[string]any{"create_spec": map[string]any{"library_item_id": itemID}}, &did)
		var df sessionmgr.DownloadSessionFile
		e.value("POST", restContent+"/library/item/downloadsession/file/id:"+did+"?~action=prepare", map[string]any{"file_name": "disk.vmdk"}, &df)
		start = time.Now()
		req, _ = http.NewRequest(http.MethodGet, df.DownloadEndpoint.URI, nil)
		req.Header.Set(APISessionHeader, e.token)
		res, err := e.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || n != benchAPISize {
			b.Fatalf("GET: %d bytes, %v", n, err)
		}
		getTime += time.Since(start)
		e.value("DELETE", restContent+"/library/item/download-session/id:"+did, nil, nil)
	}
	b.StopTimer()
	mb := float64(benchAPISize) * float64(b.N) / 1e6
	b.ReportMetric(mb/putTime.Seconds(), "put-MB/s")
	b.ReportMetric(mb/getTime.Seconds(), "get-MB/s")
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
}

// patternReader yields n bytes of a pattern that differs per run, so that
// no run is deduplicated against the one before.
type patternReader struct {
	left int64
	seed byte
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range p[:n] {
		p[i] = byte(i) ^ r.seed
	}
	r.left -= n
	return int(n), nil
}

// watchHeapInuse samples the heap in use until the returned func is
// called, which gives the peak.
func watchHeapInuse() func() uint64 {
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
			peak.Store(max(peak.Load(), ms.HeapInuse))
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
