package clfs_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The layers point down only: cmd → mount → fs → sessionmgr → meta, and only
// sessionmgr imports meta, so nothing can bypass the API's rules. Inside
// mount, the daemon uses the control socket, which uses the API's
// operation table, which serves the SOAP endpoint; and neither the API
// nor the socket knows the filesystem.
var layerRank = map[string]int{
	"clfs/cmd/clfs":       9,
	"clfs/mount":          8,
	"clfs/mount/control":  7,
	"clfs/mount/api":      6,
	"clfs/mount/api/soap": 5,
	"clfs/fs":             4,
	"clfs/sessionmgr":     1,
	"clfs/meta":           0,
}

// apartFrom are pairs of layers that must not depend on each other at
// all, though their ranks would allow one way.
var apartFrom = map[string][]string{
	"clfs/mount/control":  {"clfs/fs"},
	"clfs/mount/api":      {"clfs/fs"},
	"clfs/mount/api/soap": {"clfs/fs", "clfs/sessionmgr"},
}

func TestLayersPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Deps,TestImports,XTestImports", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath                string
			Imports, Deps             []string
			TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rank, layered := layerRank[layerOf(p.ImportPath)]
		if !layered {
			continue
		}
		seen++
		for _, d := range p.Deps {
			if r, ok := layerRank[layerOf(d)]; ok && r >= rank && layerOf(d) != layerOf(p.ImportPath) {
				t.Errorf("%s depends on %s, which is not below it", p.ImportPath, d)
			}
			if slices.Contains(apartFrom[layerOf(p.ImportPath)], layerOf(d)) {
				t.Errorf("%s depends on %s, which it must not know", p.ImportPath, d)
			}
		}
		imports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		if layerOf(p.ImportPath) != "clfs/sessionmgr" && layerOf(p.ImportPath) != "clfs/meta" && slices.Contains(imports, "clfs/meta") {
			t.Errorf("%s imports clfs/meta; only sessionmgr may", p.ImportPath)
		}
	}
	if seen < len(layerRank) {
		t.Fatalf("only %d layered packages found; is go list working?", seen)
	}
}

// layerOf maps a package to its layer: the longest layer it is, or is a
// sub-package of.
func layerOf(pkg string) string {
	best := pkg
	found := false
	for l := range layerRank {
		if (pkg == l || strings.HasPrefix(pkg, l+"/")) && (!found || len(l) > len(best)) {
			best, found = l, true
		}
	}
	return best
}
