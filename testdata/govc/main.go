// Command govc is govc with only the commands clfs serves: library.*,
// library.session.*, session.* and about. govmomi v0.56.0's module has
// no govc main package (govc is a module of its own there), so this is
// one; the mount tests build it, and so can anyone trying clfs:
//
//	go build -o /tmp/govc ./testdata/govc
//
// testdata is outside ./..., so go build ./... and go vet ./... pass it by.
package main

import (
	"os"

	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/about"
	_ "github.com/vmware/govmomi/cli/library"
	_ "github.com/vmware/govmomi/cli/library/session"
	_ "github.com/vmware/govmomi/cli/session"
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
