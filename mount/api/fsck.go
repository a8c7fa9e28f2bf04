package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"clfs/sessionmgr"
)

// Fsck streams, so it is not an operation of the table:
//
//	POST /clfs/fsck[?x_progress=true]   the report; with progress, NDJSON lines

// fsckLine is one line of a streamed fsck: progress, the report, or an
// error (an errorBody).
type fsckLine struct {
	Progress *fsckProgress `json:"x_progress,omitempty"`
	Type     string        `json:"type,omitempty"`
	Value    any           `json:"value,omitempty"`
}

type fsckProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// fsck runs Fsck. With ?x_progress=true the answer is NDJSON: progress
// lines, at most ten a second, then the report or the error.
func (h *Handler) fsck(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get(progressParam) != "true" {
		rep, err := h.m.Fsck(r.Context(), nil)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, valueBody{rep})
		return
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	var last time.Time
	progress := func(done, total int64) {
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || done >= total {
			last = now
			if !started {
				w.Header().Set("Content-Type", ndjson)
				w.WriteHeader(http.StatusOK)
				started = true
			}
			enc.Encode(fsckLine{Progress: &fsckProgress{Done: done, Total: total}})
			rc.Flush()
		}
	}
	rep, err := h.m.Fsck(r.Context(), progress)
	switch {
	case !started && err != nil:
		h.fail(w, r, err)
	case !started:
		writeJSON(w, http.StatusOK, valueBody{rep})
	case err != nil:
		_, body := EncodeError(err)
		h.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		enc.Encode(fsckLine{Type: body.Type, Value: body.Value})
	default:
		enc.Encode(fsckLine{Value: rep})
	}
}

// FsckRequest is the request of fsck, with progress lines or without.
func FsckRequest(withProgress bool) RestRequest {
	q := url.Values{}
	if withProgress {
		q.Set(progressParam, "true")
	}
	return RestRequest{Method: http.MethodPost, Path: fsckPath, Query: q}
}

// ReadFsckAnswer reads fsck's answer: the report, after calling progress
// for each progress line, or the error.
func ReadFsckAnswer(resp *http.Response, progress func(done, total int64)) (*sessionmgr.FsckReport, error) {
	var rep sessionmgr.FsckReport
	if resp.Header.Get("Content-Type") != ndjson {
		if err := ReadAnswer(resp, &rep); err != nil {
			return nil, err
		}
		return &rep, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var line struct {
			Progress *fsckProgress   `json:"x_progress"`
			Type     string          `json:"type"`
			Value    json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("fsck: bad answer: %w", err)
		}
		switch {
		case line.Progress != nil:
			if progress != nil {
				progress(line.Progress.Done, line.Progress.Total)
			}
		case line.Type != "":
			var v errorValue
			if err := json.Unmarshal(line.Value, &v); err != nil {
				return nil, fmt.Errorf("fsck: bad answer: %w", err)
			}
			return nil, decodeError(errorBody{Type: line.Type, Value: v})
		default:
			if err := json.Unmarshal(line.Value, &rep); err != nil {
				return nil, fmt.Errorf("fsck: bad answer: %w", err)
			}
			return &rep, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	return nil, fmt.Errorf("fsck: the answer ended early")
}
