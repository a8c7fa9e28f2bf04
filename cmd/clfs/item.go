package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

func cmdItem() *cli.Command {
	return &cli.Command{
		Name:  "item",
		Usage: "create, list, show, delete, import and export library items",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create an empty item",
				ArgsUsage: "LIB/ITEM",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "type", Usage: "item `TYPE` (e.g. iso, ovf)"},
					&cli.StringFlag{Name: "description", Usage: "description `TEXT`"},
				},
				Action: func(c *cli.Context) error {
					opts := itemCreateOptions{Type: c.String("type"), Description: c.String("description")}
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runItemCreate(ctx, g, opts, args)
					})
				},
			},
			{
				Name:      "ls",
				Usage:     "list the items of a library",
				ArgsUsage: "LIB",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runItemLs),
			},
			{
				Name:      "info",
				Usage:     "show an item",
				ArgsUsage: "LIB/ITEM",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runItemInfo),
			},
			{
				Name:      "rm",
				Usage:     "delete an item and its files",
				ArgsUsage: "LIB/ITEM",
				Action: func(c *cli.Context) error {
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runItemRm(ctx, g, args)
					})
				},
			},
			{
				Name:      "import",
				Usage:     "upload files into an item (created if needed) in one update session",
				ArgsUsage: "LIB/ITEM FILE...",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "checksum", Usage: "expected `ALG:HEX` of a FILE (SHA1, MD5, SHA256, SHA512); once per FILE, in order"},
					&cli.StringFlag{Name: "client-token", Usage: "client token `UUID`: a retry with the same token reuses the update session"},
				},
				Action: func(c *cli.Context) error {
					opts := itemImportOptions{Checksums: c.StringSlice("checksum"), ClientToken: c.String("client-token")}
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runItemImport(ctx, g, opts, args)
					})
				},
			},
			{
				Name:      "export",
				Usage:     "download an item's files into a directory",
				ArgsUsage: "LIB/ITEM DIR",
				Action: func(c *cli.Context) error {
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runItemExport(ctx, g, args)
					})
				},
			},
		},
	}
}

// parseItemPath splits LIB/ITEM. Names themselves are the API's to
// validate; here only the shape is checked.
func parseItemPath(arg string) (lib, item string, err error) {
	lib, item, ok := strings.Cut(strings.TrimSuffix(arg, "/"), "/")
	if !ok || lib == "" || item == "" || strings.Contains(item, "/") {
		return "", "", usagef("%q is not LIB/ITEM", arg)
	}
	return lib, item, nil
}

// resolveItem finds the item LIB/ITEM names.
func resolveItem(ctx context.Context, a service, arg string) (*sessionmgr.Library, *sessionmgr.Item, error) {
	libName, itemName, err := parseItemPath(arg)
	if err != nil {
		return nil, nil, err
	}
	lib, err := api.Call(ctx, a, api.LibraryByName, api.LibraryName{Name: libName})
	if err != nil {
		return nil, nil, err
	}
	it, err := api.Call(ctx, a, api.ItemByName, api.ItemName{LibraryID: lib.ID, Name: itemName})
	if err != nil {
		return nil, nil, err
	}
	return lib, it, nil
}

// itemArg takes a command's one LIB/ITEM argument: checked before the API
// is opened, so a usage error never touches the home, then resolved.
func itemArg(ctx context.Context, g *globals, args []string) (service, *sessionmgr.Library, *sessionmgr.Item, error) {
	if err := wantArgs(args, "LIB/ITEM"); err != nil {
		return nil, nil, nil, err
	}
	if _, _, err := parseItemPath(args[0]); err != nil {
		return nil, nil, nil, err
	}
	a, err := g.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	lib, it, err := resolveItem(ctx, a, args[0])
	return a, lib, it, err
}

type itemCreateOptions struct {
	Type        string
	Description string
}

func runItemCreate(ctx context.Context, g *globals, opts itemCreateOptions, args []string) error {
	if err := wantArgs(args, "LIB/ITEM"); err != nil {
		return err
	}
	libName, itemName, err := parseItemPath(args[0])
	if err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	lib, err := api.Call(ctx, a, api.LibraryByName, api.LibraryName{Name: libName})
	if err != nil {
		return err
	}
	id, err := api.Call(ctx, a, api.CreateItem, api.ItemCreate{Spec: sessionmgr.ItemCreateSpec{
		LibraryID: lib.ID, Name: itemName, Type: opts.Type, Description: opts.Description,
	}})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(g.stdout, id)
	return err
}

func runItemLs(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args, "LIB"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	lib, err := api.Call(ctx, a, api.LibraryByName, api.LibraryName{Name: args[0]})
	if err != nil {
		return err
	}
	items, err := api.Call(ctx, a, api.ListItems, api.ItemsOf{LibraryID: lib.ID})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, nonNil(items))
	}
	t := newTable(g.stdout, "NAME", "TYPE", "SIZE", "CONTENT VERSION", "MODIFIED", "ID")
	for _, it := range items {
		t.row(it.Name, it.Type, fmtInt(it.Size), it.ContentVersion, fmtTime(it.LastModifiedTime), it.ID)
	}
	return t.flush()
}

func runItemInfo(ctx context.Context, g *globals, opts listOptions, args []string) error {
	_, lib, it, err := itemArg(ctx, g, args)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, it)
	}
	return printFields(g.stdout, [][2]string{
		{"Library", lib.Name},
		{"Name", it.Name},
		{"ID", it.ID},
		{"Type", it.Type},
		{"Description", it.Description},
		{"Size", fmtInt(it.Size)},
		{"Content version", it.ContentVersion},
		{"Metadata version", it.MetadataVersion},
		{"Version", it.Version},
		{"Created", fmtTime(it.CreationTime)},
		{"Modified", fmtTime(it.LastModifiedTime)},
		{"Mode", fmtMode(it.Posix.Mode)},
	})
}

func runItemRm(ctx context.Context, g *globals, args []string) error {
	a, _, it, err := itemArg(ctx, g, args)
	if err != nil {
		return err
	}
	return api.Run(ctx, a, api.DeleteItem, api.ByID{ID: it.ID})
}

// ---- import

type itemImportOptions struct {
	Checksums   []string // ALG:HEX, one per file in order
	ClientToken string
}

// importSource is one FILE of item import.
type importSource struct {
	path     string
	name     string // in the item: the base name
	info     os.FileInfo
	checksum *sessionmgr.ChecksumInfo
}

// runItemImport uploads files into an item through one update session,
// the way any API client would: add, stream, finish, then complete. The
// item changes all at once or not at all: on any error the session is
// failed, and an item this run created is deleted again.
func runItemImport(ctx context.Context, g *globals, opts itemImportOptions, args []string) (err error) {
	if len(args) < 2 {
		return wantArgs(args, "LIB/ITEM", "FILE...")
	}
	libName, itemName, err := parseItemPath(args[0])
	if err != nil {
		return err
	}
	sources, err := importSources(args[1:], opts.Checksums)
	if err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	lib, err := api.Call(ctx, a, api.LibraryByName, api.LibraryName{Name: libName})
	if err != nil {
		return err
	}
	var itemID string
	created := false
	it, err := api.Call(ctx, a, api.ItemByName, api.ItemName{LibraryID: lib.ID, Name: itemName})
	switch {
	case err == nil:
		itemID = it.ID
	case errors.Is(err, sessionmgr.ErrNotFound):
		itemID, err = api.Call(ctx, a, api.CreateItem, api.ItemCreate{Spec: sessionmgr.ItemCreateSpec{LibraryID: lib.ID, Name: itemName}})
		if err != nil {
			return err
		}
		created = true
	default:
		return err
	}
	// Clean-up runs even after an interrupt cancelled ctx.
	cleanup := context.WithoutCancel(ctx)
	defer func() {
		if err != nil && created {
			if derr := api.Run(cleanup, a, api.DeleteItem, api.ByID{ID: itemID}); derr != nil {
				err = errors.Join(err, fmt.Errorf("remove the item created for the import: %w", derr))
			}
		}
	}()
	sid, err := api.Call(ctx, a, api.CreateUpdateSession, api.UpdateSessionCreate{Spec: sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}, ClientToken: opts.ClientToken})
	if err != nil {
		return err
	}
	for _, src := range sources {
		if err = importFile(ctx, g, a, sid, src); err != nil {
			break
		}
	}
	if err == nil {
		err = api.Run(ctx, a, api.CompleteUpdateSession, api.ByID{ID: sid})
	}
	if err != nil {
		// A failed commit may already have put the session in ERROR;
		// then this fails too and the first error is the one to report.
		_ = api.Run(cleanup, a, api.FailUpdateSession, api.SessionFail{ID: sid, Message: "clfs item import: " + err.Error()})
		return err
	}
	return nil
}

// importSources checks every FILE and --checksum before anything is
// created, so that a typo costs nothing.
func importSources(paths, checksums []string) ([]importSource, error) {
	if len(checksums) > 0 && len(checksums) != len(paths) {
		return nil, usagef("%d --checksum given for %d files: give one per FILE, in order", len(checksums), len(paths))
	}
	var out []importSource
	seen := map[string]string{}
	for i, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", p)
		}
		name := filepath.Base(p)
		if other, ok := seen[name]; ok {
			return nil, fmt.Errorf("%s and %s would both be %q in the item", other, p, name)
		}
		seen[name] = p
		src := importSource{path: p, name: name, info: info}
		if len(checksums) > 0 {
			if src.checksum, err = parseChecksum(checksums[i]); err != nil {
				return nil, err
			}
		}
		out = append(out, src)
	}
	return out, nil
}

// digestSizes are the checksum algorithms of the API and their digest
// lengths in bytes.
var digestSizes = map[string]int{
	sessionmgr.AlgSHA1: 20, sessionmgr.AlgMD5: 16, sessionmgr.AlgSHA256: 32, sessionmgr.AlgSHA512: 64,
}

// parseChecksum parses ALG:HEX; the algorithm is case-insensitive.
func parseChecksum(s string) (*sessionmgr.ChecksumInfo, error) {
	alg, sum, ok := strings.Cut(s, ":")
	alg = strings.ToUpper(strings.TrimSpace(alg))
	size, known := digestSizes[alg]
	if !ok || !known {
		return nil, usagef("--checksum %q: want ALG:HEX with ALG one of SHA1, MD5, SHA256, SHA512", s)
	}
	sum = strings.ToLower(strings.TrimSpace(sum))
	if b, err := hex.DecodeString(sum); err != nil || len(b) != size {
		return nil, usagef("--checksum %q: %q is not a %s checksum (%d hex digits)", s, sum, alg, 2*size)
	}
	return &sessionmgr.ChecksumInfo{Algorithm: alg, Checksum: sum}, nil
}

// importFile adds one file to the session and streams its bytes; Finish
// checks them against the size and checksum declared in AddFile.
func importFile(ctx context.Context, g *globals, a service, sid string, src importSource) error {
	size := src.info.Size()
	_, err := api.Call(ctx, a, api.AddFile, api.FileAdd{SessionID: sid, Spec: sessionmgr.FileAddSpec{
		Name:         src.name,
		SourceType:   sessionmgr.SourcePush,
		Size:         &size,
		ChecksumInfo: src.checksum,
		Posix:        &sessionmgr.Posix{Mode: posixMode(src.info.Mode()), Mtime: src.info.ModTime()},
	}})
	if err != nil {
		return err
	}
	f, err := os.Open(src.path)
	if err != nil {
		return err
	}
	defer f.Close()
	up, err := a.OpenUpload(ctx, sid, src.name, sessionmgr.UploadOptions{})
	if err != nil {
		return err
	}
	defer up.Close()
	bar := newProgress(g, size, src.name)
	if _, err := up.ReadFrom(io.TeeReader(ctxReader{ctx, f}, progressWriter{bar})); err != nil {
		return err
	}
	finishProgress(bar)
	_, err = up.Finish(ctx)
	return err
}

// ctxReader stops a copy when ctx is cancelled (Ctrl-C), so that the
// session is failed instead of left to expire.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// ---- export

// runItemExport copies an item's files into dir through a download
// session, so that what is written is one content version even while
// uploads go on. Each file is written under a temporary name, given the
// committed mode and mtime, then renamed into place.
func runItemExport(ctx context.Context, g *globals, args []string) (err error) {
	if err := wantArgs(args, "LIB/ITEM", "DIR"); err != nil {
		return err
	}
	if _, _, err := parseItemPath(args[0]); err != nil {
		return err
	}
	dir := args[1]
	a, err := g.connect()
	if err != nil {
		return err
	}
	_, it, err := resolveItem(ctx, a, args[0])
	if err != nil {
		return err
	}
	sid, err := api.Call(ctx, a, api.CreateDownloadSession, api.DownloadSessionCreate{Spec: sessionmgr.DownloadSessionCreateSpec{LibraryItemID: it.ID}})
	if err != nil {
		return err
	}
	defer func() {
		if derr := api.Run(context.WithoutCancel(ctx), a, api.DeleteDownloadSession, api.ByID{ID: sid}); err == nil {
			err = derr
		}
	}()
	files, err := api.Call(ctx, a, api.ListDownloadSessionFiles, api.DownloadSessionFilesOf{SessionID: sid})
	if err != nil {
		return err
	}
	// Mode and mtime are not part of the download session's file info;
	// take them from the committed file if it is still the pinned version.
	committed, err := api.Call(ctx, a, api.ListFiles, api.FilesOf{ItemID: it.ID})
	if err != nil {
		return err
	}
	posix := map[string]*sessionmgr.Posix{}
	for i := range committed {
		posix[committed[i].Name+"\x00"+committed[i].Version] = &committed[i].Posix
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	for _, f := range files {
		if err := exportFile(ctx, g, a, sid, dir, f.Name, posix[f.Name+"\x00"+f.Version]); err != nil {
			return err
		}
	}
	return nil
}

func exportFile(ctx context.Context, g *globals, a service, sid, dir, name string, posix *sessionmgr.Posix) (err error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return fmt.Errorf("file name %q cannot be written into %s", name, dir)
	}
	r, err := a.OpenDownload(ctx, sid, name)
	if err != nil {
		return err
	}
	defer r.Close()
	tmp, err := os.CreateTemp(dir, "."+name+".clfs-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bar := newProgress(g, r.Size(), name)
	src := ctxReader{ctx, io.NewSectionReader(r, 0, r.Size())}
	n, err := io.CopyBuffer(io.MultiWriter(tmp, progressWriter{bar}), src, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	if n != r.Size() {
		return fmt.Errorf("export %s: read %d bytes of %d", name, n, r.Size())
	}
	finishProgress(bar)
	mode, mtime := fileMode(0o644), time.Time{}
	if posix != nil {
		mode, mtime = fileMode(posix.Mode), posix.Mtime
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp.Name(), time.Time{}, mtime); err != nil {
			return err
		}
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}
