package main

import (
	"strings"
	"testing"
)

// FuzzParsePath: the LIB/ITEM and LIB/ITEM/FILE arguments split into
// non-empty parts without '/', which put back together give the argument
// (a trailing '/' after ITEM aside); FILE is the last component, so names
// with characters like '%', '#' or spaces survive.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"lib/item", "lib/item/", "lib/item/f", "lib//f", "/lib/item", "lib/item//", "a/b/c/d", "lib", "", "/", "lib/item/notes %41 #2.txt", "l/i/..", "é/\xff/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		if lib, item, err := parseItemPath(arg); err == nil {
			if lib == "" || item == "" || strings.Contains(lib, "/") || strings.Contains(item, "/") {
				t.Fatalf("parseItemPath(%q) = %q, %q", arg, lib, item)
			}
			if lib+"/"+item != strings.TrimSuffix(arg, "/") {
				t.Fatalf("parseItemPath(%q) = %q, %q: not the argument", arg, lib, item)
			}
		}
		if item, file, err := parseFilePath(arg); err == nil {
			lib, it, err := parseItemPath(item)
			if err != nil || file == "" || strings.Contains(file, "/") || lib+"/"+it+"/"+file != arg {
				t.Fatalf("parseFilePath(%q) = %q, %q (%q, %q, %v)", arg, item, file, lib, it, err)
			}
		}
	})
}
