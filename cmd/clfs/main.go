// Command clfs manages a clfs home: libraries, items, their files and
// storage, update and download sessions, and fsck. Every sub-command is a
// client of the session manager's API (package sessionmgr); it parses,
// calls the API and prints, nothing more.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := Main(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, errorLine(err))
		os.Exit(1)
	}
}
