package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"clfs/mount/control"
)

// The FUSE requests of a step: a clfs mount counts the requests the kernel
// sends it, by opcode, and serves the counts on its control socket. The
// harness reads them before and after each timed step and records the
// difference divided by the step's files (entries for W4), so that a change
// in round trips per file shows beside the change in time. Other systems,
// peers included, have no counters.

// dialCounters connects to the control socket of the clfs mount in; a
// daemon that serves no counters (an older --clfs) is a warning, not an
// error: its figures stand, without the requests.
func (h *harness) dialCounters(in *instance) {
	c, err := control.Dial(in.clfsHome)
	if err == nil {
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		_, err = c.Counters(ctx)
		cancel()
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		h.countersWarn.Do(func() {
			h.logf("clfsbench: WARNING: no FUSE request counters from clfs (%v): the requests per file are left out", err)
		})
		return
	}
	in.ctl = c
}

// settledCounts returns the mount's counters once they stop moving: the
// kernel sends RELEASE after close(2) has returned and FORGET when it
// drops inodes, both a moment after the tool that caused them, and they
// belong to its step. A clfs mount without counters gives nil.
func (h *harness) settledCounts(in *instance) (map[string]uint64, error) {
	if in.ctl == nil {
		return nil, nil
	}
	read := func() (map[string]uint64, error) {
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		defer cancel()
		c, err := in.ctl.Counters(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the FUSE request counters: %w", err)
		}
		return c, nil
	}
	prev, err := read()
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(30 * time.Millisecond)
		cur, err := read()
		if err != nil {
			return nil, err
		}
		if maps.Equal(cur, prev) {
			break
		}
		prev = cur
	}
	return prev, nil
}

// counted runs step and, on a clfs mount, records under key the FUSE
// requests it caused per unit (units: the files or entries it handled).
func (h *harness) counted(in *instance, key string, units int, step func() error) error {
	before, err := h.settledCounts(in)
	if err != nil {
		return err
	}
	if err := step(); err != nil {
		return err
	}
	if before == nil {
		return nil
	}
	after, err := h.settledCounts(in)
	if err != nil {
		return err
	}
	per := map[string]float64{}
	for op, n := range after {
		if n > before[op] {
			per[op] = float64(n-before[op]) / float64(units)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.requests[key] == nil {
		h.requests[key] = map[string][]map[string]float64{}
	}
	h.requests[key][in.system] = append(h.requests[key][in.system], per)
	return nil
}

// requestFigures are one system's requests per unit in one row: medians
// over the runs, the total's and each opcode's.
type requestFigures struct {
	Total    float64            `json:"total"`
	ByOpcode map[string]float64 `json:"by_opcode"`
	Runs     []float64          `json:"runs"` // each run's total
}

func summarizeRequests(runs []map[string]float64) requestFigures {
	f := requestFigures{ByOpcode: map[string]float64{}}
	ops := map[string]bool{}
	for _, r := range runs {
		total := 0.0
		for op, v := range r {
			total += v
			ops[op] = true
		}
		f.Runs = append(f.Runs, total)
	}
	f.Total = median(f.Runs)
	for op := range ops {
		var v []float64
		for _, r := range runs {
			v = append(v, r[op]) // 0 in a run that had none
		}
		f.ByOpcode[op] = median(v)
	}
	return f
}

// topOpcodes prints the largest counts first, "LOOKUP 2.0 CREATE 1.0 …",
// leaving out those under 0.0005 per unit and any beyond max.
func topOpcodes(byOp map[string]float64, max int) string {
	ops := slices.Collect(maps.Keys(byOp))
	slices.SortFunc(ops, func(a, b string) int {
		if c := cmp.Compare(byOp[b], byOp[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, op := range ops {
		if byOp[op] < 0.0005 {
			break
		}
		if i == max {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, op+" "+formatPerUnit(byOp[op]))
	}
	return strings.Join(parts, " ")
}

func formatPerUnit(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 0.95:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 0.095:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}
