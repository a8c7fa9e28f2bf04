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
// sessionmgr imports meta, so nothing can bypass the API's rules.
var layerRank = map[string]int{
	"clfs/cmd/clfs":   4,
	"clfs/mount":      3,
	"clfs/fs":         2,
	"clfs/sessionmgr": 1,
	"clfs/meta":       0,
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
		}
		imports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		if layerOf(p.ImportPath) != "clfs/sessionmgr" && layerOf(p.ImportPath) != "clfs/meta" && slices.Contains(imports, "clfs/meta") {
			t.Errorf("%s imports clfs/meta; only sessionmgr may", p.ImportPath)
		}
	}
	if seen < 2 {
		t.Fatalf("only %d layered packages found; is go list working?", seen)
	}
}

// layerOf maps a package to its layer: sub-packages belong to their parent.
func layerOf(pkg string) string {
	for l := range layerRank {
		if pkg == l || strings.HasPrefix(pkg, l+"/") {
			return l
		}
	}
	return pkg
}
