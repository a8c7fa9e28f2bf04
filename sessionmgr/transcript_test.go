package sessionmgr

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// Transcript tests (STYLE rule 12): each testdata/transcripts/*.txt is a
// script of session lifecycles with the expected output of every step, in
// the style of pebble's datadriven files:
//
//	# comment
//	command args...
//	----
//	expected output
//	(blank line)
//
// A block may hold several command lines; its output is theirs, in order.
// Run with -rewrite to regenerate the expected output after a deliberate
// change (then read the diff!).
//
// Objects are named, never shown by id: libraries by name, items as
// LIB/ITEM, sessions and readers by the alias given at creation ("as s1").
// Ids in error messages are replaced by <alias>, the home by $HOME, and
// times are printed relative to the fake clock's start (+5m0s).
//
// Commands:
//
//	library create NAME [token=T]       library delete NAME
//	item create LIB/ITEM [token=T]      item delete LIB/ITEM
//	item LIB/ITEM                       content_version and size
//	item rename LIB/ITEM NEWNAME
//	files LIB/ITEM | S | D              committed files / session view / pinned files
//	update create LIB/ITEM as S [token=T]
//	download create LIB/ITEM as D [token=T]
//	get S|D                             session status
//	file S NAME                         one file of the session's view
//	keepalive S|D [progress=N]
//	update S ignore=WARNING
//	add S NAME [size=N] [checksum=ALG:HEX | checksum=ALG("TEXT")]
//	remove S NAME
//	upload S NAME [from-committed]      open the staged file (write opens it too)
//	write S NAME "TEXT" [at=N]          append, or write at offset N
//	truncate S NAME N
//	close S NAME                        close the upload handle
//	finish S NAME                       end the transfer: READY or ERROR
//	validate S
//	complete S | cancel S|D | fail S|D "MESSAGE" | delete S|D
//	prepare D NAME
//	reader D NAME as R                  open a download reader
//	read R                              read the reader's whole file
//	close R
//	advance DURATION                    move the fake clock
//	expire                              run the reaper once
//	staging S                           does the session's staging dir exist
//	staged S                            how many staged files it holds
//	blobs                               committed blobs on disk (short sha)
//	fsck
//
// NAME arguments may be Go-quoted strings ("a b", "\xff").

var rewrite = flag.Bool("rewrite", false, "rewrite transcript expectations with actual output")

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("../testdata/transcripts/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in ../testdata/transcripts")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			t.Parallel()
			runTranscript(t, path)
		})
	}
}

// block is one command group of a transcript and its expected output.
type block struct {
	pre      []string // comment and blank lines before the commands, verbatim
	cmds     []string
	cmdLines []int
	want     string
}

func parseTranscript(t *testing.T, path string) (blocks []block, trailer []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	var cur block
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case len(cur.cmds) == 0 && (strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#")):
			cur.pre = append(cur.pre, text)
		case text == "----":
			if len(cur.cmds) == 0 {
				t.Fatalf("%s:%d: ---- without a command", path, line)
			}
			var out []string
			for sc.Scan() {
				line++
				if sc.Text() == "" {
					break
				}
				out = append(out, sc.Text())
			}
			cur.want = strings.Join(out, "\n")
			blocks = append(blocks, cur)
			cur = block{}
		default:
			cur.cmds = append(cur.cmds, text)
			cur.cmdLines = append(cur.cmdLines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cur.cmds) > 0 {
		t.Fatalf("%s:%d: commands without ----", path, cur.cmdLines[0])
	}
	return blocks, cur.pre
}

func runTranscript(t *testing.T, path string) {
	blocks, trailer := parseTranscript(t, path)
	r := newTranscriptRunner(t)
	var out strings.Builder
	for _, b := range blocks {
		var got []string
		for i, cmd := range b.cmds {
			res, err := r.run(cmd)
			if err != nil {
				// A mistake in the script or an unexpected failure:
				// shown in place (so -rewrite shows it too), and fatal
				// to the test.
				t.Errorf("%s:%d: %s: %v", path, b.cmdLines[i], cmd, err)
				res = "test error: " + err.Error()
			}
			if res != "" {
				got = append(got, res)
			}
		}
		gotText := r.scrub(strings.Join(got, "\n"))
		if !*rewrite && gotText != b.want {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, b.cmdLines[0], strings.Join(b.cmds, "\n"), gotText, b.want)
		}
		for _, l := range b.pre {
			out.WriteString(l + "\n")
		}
		for _, c := range b.cmds {
			out.WriteString(c + "\n")
		}
		out.WriteString("----\n")
		if gotText != "" {
			out.WriteString(gotText + "\n")
		}
		out.WriteString("\n")
	}
	if *rewrite {
		text := strings.TrimRight(out.String(), "\n") + "\n"
		for _, l := range trailer {
			if strings.TrimSpace(l) != "" {
				text += l + "\n"
			}
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.close()
}

type transcriptRunner struct {
	e       *testEnv
	aliases map[string]string // API id → alias
	ids     map[string]string // alias → API id (sessions and readers)
	kinds   map[string]byte   // alias → 'U' update session, 'D' download session
	uploads map[string]*StagedFile
	readers map[string]*DownloadReader
}

func newTranscriptRunner(t *testing.T) *transcriptRunner {
	return &transcriptRunner{
		e:       newTestEnvInline(t, -1), // the transcripts show staging and blob files on disk,
		aliases: map[string]string{},
		ids:     map[string]string{},
		kinds:   map[string]byte{},
		uploads: map[string]*StagedFile{},
		readers: map[string]*DownloadReader{},
	}
}

func (r *transcriptRunner) close() {
	for _, u := range r.uploads {
		u.Close()
	}
	for _, rd := range r.readers {
		rd.Close()
	}
}

// scrub replaces ids and paths by names, so output is deterministic.
func (r *transcriptRunner) scrub(s string) string {
	for id, alias := range r.aliases {
		s = strings.ReplaceAll(s, id, "<"+alias+">")
	}
	return strings.ReplaceAll(s, r.e.m.Home(), "$HOME")
}

// remember names an id; it reports the alias the id already had, if any,
// which is how a client-token replay shows.
func (r *transcriptRunner) remember(id, alias string) string {
	if prev, ok := r.aliases[id]; ok {
		return "same as " + prev
	}
	r.aliases[id] = alias
	return "ok"
}

// splitArgs splits a command line on spaces, keeping "quoted strings"
// (Go syntax) together; key="quoted" works too.
func splitArgs(line string) ([]string, error) {
	var args []string
	for {
		line = strings.TrimLeftFunc(line, unicode.IsSpace)
		if line == "" {
			return args, nil
		}
		end := 0
		for end < len(line) && line[end] != ' ' {
			if line[end] == '"' {
				q, err := strconv.QuotedPrefix(line[end:])
				if err != nil {
					return nil, fmt.Errorf("bad quoted string in %q", line)
				}
				end += len(q)
				continue
			}
			end++
		}
		args = append(args, line[:end])
		line = line[end:]
	}
}

// unquote returns a Go-quoted argument's value, or the argument.
func unquote(s string) string {
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
	}
	return s
}

// options splits key=value arguments from positional ones.
func options(args []string) (pos []string, opts map[string]string) {
	opts = map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && !strings.HasPrefix(a, `"`) {
			opts[k] = unquote(v)
		} else {
			pos = append(pos, a)
		}
	}
	return pos, opts
}

func (r *transcriptRunner) run(line string) (string, error) {
	args, err := splitArgs(line)
	if err != nil {
		return "", err
	}
	pos, opts := options(args)
	out, err := r.dispatch(pos, opts)
	var api *Error
	var se *StateError
	if err != nil && (errors.As(err, &api) || errors.As(err, &se)) {
		return "error: " + err.Error(), nil
	}
	return out, err
}

// need checks the number of positional arguments.
func need(pos []string, n int, usage string) error {
	if len(pos) != n {
		return fmt.Errorf("usage: %s", usage)
	}
	return nil
}

func (r *transcriptRunner) dispatch(pos []string, opts map[string]string) (string, error) {
	e, m, ctx := r.e, r.e.m, r.e.ctx
	verb := pos[0]
	if len(pos) > 1 && slices.Contains([]string{"library", "item", "update", "download"}, verb) &&
		slices.Contains([]string{"create", "delete", "rename"}, pos[1]) {
		verb += " " + pos[1]
	}
	switch verb {
	case "library create":
		if err := need(pos, 3, "library create NAME"); err != nil {
			return "", err
		}
		name := unquote(pos[2])
		id, err := m.CreateLibrary(ctx, LibraryCreateSpec{Name: name}, opts["token"])
		if err != nil {
			return "", err
		}
		return r.remember(id, name), nil
	case "library delete":
		lib, err := m.LibraryByName(ctx, unquote(pos[2]))
		if err != nil {
			return "", err
		}
		return "ok", m.DeleteLibrary(ctx, lib.ID)
	case "item create":
		lib, name, err := r.itemPath(pos[2:])
		if err != nil {
			return "", err
		}
		id, err := m.CreateItem(ctx, ItemCreateSpec{LibraryID: lib.ID, Name: name}, opts["token"])
		if err != nil {
			return "", err
		}
		return r.remember(id, lib.Name+"/"+name), nil
	case "item delete":
		it, err := r.item(pos[2:])
		if err != nil {
			return "", err
		}
		return "ok", m.DeleteItem(ctx, it.ID)
	case "item rename":
		it, err := r.item(pos[2:3])
		if err != nil {
			return "", err
		}
		name := unquote(pos[3])
		return "ok", m.UpdateItem(ctx, it.ID, ItemUpdateSpec{Name: &name})
	case "item":
		it, err := r.item(pos[1:])
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("content_version=%s size=%d", it.ContentVersion, it.Size), nil
	case "update create", "download create":
		if len(pos) != 5 || pos[3] != "as" {
			return "", fmt.Errorf("usage: %s LIB/ITEM as ALIAS", verb)
		}
		it, err := r.item(pos[2:3])
		if err != nil {
			return "", err
		}
		var id string
		if verb == "update create" {
			id, err = m.CreateUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: it.ID}, opts["token"])
		} else {
			id, err = m.CreateDownloadSession(ctx, DownloadSessionCreateSpec{LibraryItemID: it.ID}, opts["token"])
		}
		if err != nil {
			return "", err
		}
		alias := pos[4]
		res := r.remember(id, alias)
		if res == "ok" {
			r.ids[alias] = id
			r.kinds[alias] = verb[0] - 'a' + 'A'
		}
		return res, nil
	case "files":
		return r.files(pos)
	case "get":
		id, kind, err := r.session(pos, 2, "get S")
		if err != nil {
			return "", err
		}
		if kind == 'U' {
			s, err := m.GetUpdateSession(ctx, id)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s content_version=%s progress=%d expires=%s transferred=%d%s",
				s.State, s.LibraryItemContentVersion, s.ClientProgress, r.when(s.ExpirationTime), s.BytesTransferred, msgOpt(s.ErrorMessage)), nil
		}
		s, err := m.GetDownloadSession(ctx, id)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s content_version=%s progress=%d expires=%s transferred=%d%s",
			s.State, s.LibraryItemContentVersion, s.ClientProgress, r.when(s.ExpirationTime), s.BytesTransferred, msgOpt(s.ErrorMessage)), nil
	case "file":
		id, _, err := r.session(pos, 3, "file S NAME")
		if err != nil {
			return "", err
		}
		f, err := m.GetSessionFile(ctx, id, unquote(pos[2]))
		if err != nil {
			return "", err
		}
		return sessionFileLine(f), nil
	case "keepalive":
		id, kind, err := r.session(pos, 2, "keepalive S [progress=N]")
		if err != nil {
			return "", err
		}
		var p *int64
		if v, ok := opts["progress"]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", err
			}
			p = &n
		}
		if kind == 'U' {
			return "ok", m.KeepAliveUpdateSession(ctx, id, p)
		}
		return "ok", m.KeepAliveDownloadSession(ctx, id, p)
	case "update":
		id, _, err := r.session(pos, 2, "update S ignore=WARNING")
		if err != nil {
			return "", err
		}
		return "ok", m.UpdateUpdateSession(ctx, id, UpdateSessionUpdateSpec{
			WarningBehavior: []WarningBehavior{{Type: opts["ignore"], Ignored: true}},
		})
	case "add":
		id, _, err := r.session(pos, 3, "add S NAME [size=N] [checksum=...]")
		if err != nil {
			return "", err
		}
		spec := FileAddSpec{Name: unquote(pos[2]), SourceType: SourcePush}
		if v, ok := opts["source"]; ok {
			spec.SourceType = v
		}
		if v, ok := opts["size"]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", err
			}
			spec.Size = &n
		}
		if v, ok := opts["checksum"]; ok {
			c, err := parseChecksum(v)
			if err != nil {
				return "", err
			}
			spec.ChecksumInfo = c
		}
		// A re-add invalidates the handle the transcript held.
		r.dropUpload(pos[1], spec.Name)
		f, err := m.AddFile(ctx, id, spec)
		if err != nil {
			return "", err
		}
		return sessionFileLine(f), nil
	case "remove":
		id, _, err := r.session(pos, 3, "remove S NAME")
		if err != nil {
			return "", err
		}
		return "ok", m.RemoveSessionFile(ctx, id, unquote(pos[2]))
	case "upload":
		_, _, err := r.session(pos[:min(len(pos), 3)], 3, "upload S NAME [from-committed]")
		if err != nil {
			return "", err
		}
		_, err = r.upload(pos[1], unquote(pos[2]), UploadOptions{FromCommitted: slices.Contains(pos[3:], "from-committed")})
		return "ok", err
	case "write":
		if err := need(pos, 4, `write S NAME "TEXT" [at=N]`); err != nil {
			return "", err
		}
		sf, err := r.upload(pos[1], unquote(pos[2]), UploadOptions{})
		if err != nil {
			return "", err
		}
		data := []byte(unquote(pos[3]))
		if v, ok := opts["at"]; ok {
			off, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", err
			}
			_, err = sf.WriteAt(data, off)
			return "ok", err
		}
		_, err = sf.Write(data)
		return "ok", err
	case "truncate":
		if err := need(pos, 4, "truncate S NAME N"); err != nil {
			return "", err
		}
		sf, err := r.upload(pos[1], unquote(pos[2]), UploadOptions{})
		if err != nil {
			return "", err
		}
		n, err := strconv.ParseInt(pos[3], 10, 64)
		if err != nil {
			return "", err
		}
		return "ok", sf.Truncate(n)
	case "close":
		if len(pos) == 2 {
			rd, ok := r.readers[pos[1]]
			if !ok {
				return "", fmt.Errorf("no reader %s", pos[1])
			}
			delete(r.readers, pos[1])
			return "ok", rd.Close()
		}
		key := pos[1] + "/" + unquote(pos[2])
		sf, ok := r.uploads[key]
		if !ok {
			return "", fmt.Errorf("no upload %s", key)
		}
		delete(r.uploads, key)
		return "ok", sf.Close()
	case "finish":
		if err := need(pos, 3, "finish S NAME"); err != nil {
			return "", err
		}
		key := pos[1] + "/" + unquote(pos[2])
		sf, ok := r.uploads[key]
		if !ok {
			return "", fmt.Errorf("no upload %s", key)
		}
		delete(r.uploads, key)
		defer sf.Close()
		info, err := sf.Finish(ctx)
		if info == nil {
			return "", err
		}
		return sessionFileLine(info), nil
	case "validate":
		id, _, err := r.session(pos, 2, "validate S")
		if err != nil {
			return "", err
		}
		res, err := m.ValidateUpdateSession(ctx, id)
		if err != nil {
			return "", err
		}
		lines := []string{fmt.Sprintf("has_errors=%v", res.HasErrors)}
		if len(res.MissingFiles) > 0 {
			lines = append(lines, "missing: "+strings.Join(res.MissingFiles, ", "))
		}
		for _, f := range res.InvalidFiles {
			lines = append(lines, fmt.Sprintf("invalid: %s: %s", f.Name, f.ErrorMessage.DefaultMessage))
		}
		return strings.Join(lines, "\n"), nil
	case "complete":
		id, _, err := r.session(pos, 2, "complete S")
		if err != nil {
			return "", err
		}
		return "ok", m.CompleteUpdateSession(ctx, id)
	case "cancel", "fail", "delete":
		id, kind, err := r.session(pos[:min(len(pos), 2)], 2, verb+" S|D")
		if err != nil {
			return "", err
		}
		msg := ""
		if verb == "fail" {
			if len(pos) != 3 {
				return "", errors.New(`usage: fail S|D "MESSAGE"`)
			}
			msg = unquote(pos[2])
		}
		switch {
		case verb == "cancel" && kind == 'U':
			err = m.CancelUpdateSession(ctx, id)
		case verb == "cancel":
			err = m.CancelDownloadSession(ctx, id)
		case verb == "fail" && kind == 'U':
			err = m.FailUpdateSession(ctx, id, msg)
		case verb == "fail":
			err = m.FailDownloadSession(ctx, id, msg)
		case kind == 'U':
			err = m.DeleteUpdateSession(ctx, id)
		default:
			err = m.DeleteDownloadSession(ctx, id)
		}
		return "ok", err
	case "prepare":
		id, _, err := r.session(pos, 3, "prepare D NAME")
		if err != nil {
			return "", err
		}
		f, err := m.PrepareDownloadFile(ctx, id, unquote(pos[2]), "")
		if err != nil {
			return "", err
		}
		return downloadFileLine(f), nil
	case "reader":
		if len(pos) != 5 || pos[3] != "as" {
			return "", errors.New("usage: reader D NAME as R")
		}
		id, _, err := r.session(pos[:3], 3, "reader D NAME as R")
		if err != nil {
			return "", err
		}
		rd, err := m.OpenDownload(ctx, id, unquote(pos[2]))
		if err != nil {
			return "", err
		}
		r.readers[pos[4]] = rd
		return "ok", nil
	case "read":
		rd, ok := r.readers[pos[1]]
		if !ok {
			return "", fmt.Errorf("no reader %s", pos[1])
		}
		got, err := e.readAll(rd)
		if err != nil {
			return "", err
		}
		return strconv.Quote(got), nil
	case "advance":
		d, err := time.ParseDuration(pos[1])
		if err != nil {
			return "", err
		}
		e.clock.Advance(d)
		return "now " + r.when(e.clock.Now()), nil
	case "expire":
		n, err := m.ExpireDue(ctx)
		return fmt.Sprintf("expired %d", n), err
	case "staging":
		id, _, err := r.session(pos, 2, "staging S")
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(stagingDir(filepath.Join(m.Home(), "storage"), id)); err == nil {
			return "present", nil
		}
		return "absent", nil
	case "staged":
		id, _, err := r.session(pos, 2, "staged S")
		if err != nil {
			return "", err
		}
		entries, err := os.ReadDir(stagingDir(filepath.Join(m.Home(), "storage"), id))
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		return fmt.Sprintf("%d staged files", len(entries)), nil
	case "blobs":
		if m.shared { // as the leader would after the grace period
			if err := m.deleteFreedContent(ctx, math.MaxInt64); err != nil {
				return "", err
			}
		}
		blobs, err := listBlobs(filepath.Join(m.Home(), "storage"))
		if err != nil {
			return "", err
		}
		if len(blobs) == 0 {
			return "(none)", nil
		}
		var out []string
		for _, b := range blobs {
			out = append(out, hex.EncodeToString(b)[:12])
		}
		slices.Sort(out)
		return strings.Join(out, "\n"), nil
	case "fsck":
		rep, err := m.Fsck(ctx, nil)
		if err != nil {
			return "", err
		}
		if len(rep.Problems) == 0 {
			return fmt.Sprintf("clean: %d files, %d blobs", rep.FilesChecked, rep.BlobsChecked), nil
		}
		var out []string
		for _, p := range rep.Problems {
			out = append(out, fmt.Sprintf("problem: %s: %s", p.File, p.Msg))
		}
		return strings.Join(out, "\n"), nil
	}
	return "", fmt.Errorf("unknown command %q", strings.Join(pos, " "))
}

// itemPath parses LIB/ITEM (or LIB "ITEM" for names with odd bytes) and
// returns the library and the item name.
func (r *transcriptRunner) itemPath(args []string) (*Library, string, error) {
	var libName, name string
	switch len(args) {
	case 1:
		var ok bool
		libName, name, ok = strings.Cut(args[0], "/")
		if !ok {
			return nil, "", fmt.Errorf("want LIB/ITEM, got %q", args[0])
		}
	case 2:
		libName, name = unquote(args[0]), unquote(args[1])
	default:
		return nil, "", errors.New("want LIB/ITEM")
	}
	lib, err := r.e.m.LibraryByName(r.e.ctx, libName)
	return lib, name, err
}

func (r *transcriptRunner) item(args []string) (*Item, error) {
	lib, name, err := r.itemPath(args)
	if err != nil {
		return nil, err
	}
	return r.e.m.ItemByName(r.e.ctx, lib.ID, name)
}

// session resolves the session alias in pos[1]. A deleted session keeps its
// alias, so transcripts can show NotFound.
func (r *transcriptRunner) session(pos []string, n int, usage string) (string, byte, error) {
	if err := need(pos, n, usage); err != nil {
		return "", 0, err
	}
	id, ok := r.ids[pos[1]]
	if !ok {
		return "", 0, fmt.Errorf("unknown session alias %s", pos[1])
	}
	return id, r.kinds[pos[1]], nil
}

func (r *transcriptRunner) upload(alias, name string, opts UploadOptions) (*StagedFile, error) {
	key := alias + "/" + name
	if sf, ok := r.uploads[key]; ok {
		return sf, nil
	}
	sf, err := r.e.m.OpenUpload(r.e.ctx, r.ids[alias], name, opts)
	if err != nil {
		return nil, err
	}
	r.uploads[key] = sf
	return sf, nil
}

func (r *transcriptRunner) dropUpload(alias, name string) {
	key := alias + "/" + name
	if sf, ok := r.uploads[key]; ok {
		sf.Close()
		delete(r.uploads, key)
	}
}

func (r *transcriptRunner) files(pos []string) (string, error) {
	m, ctx := r.e.m, r.e.ctx
	if len(pos) != 2 && len(pos) != 3 {
		return "", errors.New("usage: files LIB/ITEM | S | D")
	}
	var lines []string
	if id, ok := r.ids[pos[1]]; ok {
		if r.kinds[pos[1]] == 'U' {
			files, err := m.ListSessionFiles(ctx, id)
			if err != nil {
				return "", err
			}
			for i := range files {
				lines = append(lines, sessionFileLine(&files[i]))
			}
		} else {
			files, err := m.ListDownloadFiles(ctx, id)
			if err != nil {
				return "", err
			}
			for i := range files {
				lines = append(lines, downloadFileLine(&files[i]))
			}
		}
	} else {
		it, err := r.item(pos[1:])
		if err != nil {
			return "", err
		}
		files, err := m.ListFiles(ctx, it.ID)
		if err != nil {
			return "", err
		}
		for _, f := range files {
			lines = append(lines, fmt.Sprintf("%s size=%d version=%s sha256=%s", f.Name, f.Size, f.Version, f.ChecksumInfo.Checksum[:12]))
		}
	}
	if len(lines) == 0 {
		return "(none)", nil
	}
	return strings.Join(lines, "\n"), nil
}

func (r *transcriptRunner) when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return "+" + t.Sub(testEpoch).String()
}

func msgOpt(m *Message) string {
	if m == nil {
		return ""
	}
	return fmt.Sprintf(" error=%q", m.DefaultMessage)
}

func sessionFileLine(f *UpdateSessionFile) string {
	s := fmt.Sprintf("%s %s %s transferred=%d", f.Name, f.SourceType, f.Status, f.BytesTransferred)
	if f.Size != nil {
		s += fmt.Sprintf(" size=%d", *f.Size)
	}
	return s + msgOpt(f.ErrorMessage)
}

func downloadFileLine(f *DownloadSessionFile) string {
	return fmt.Sprintf("%s %s size=%d version=%s transferred=%d sha256=%s%s",
		f.Name, f.Status, f.Size, f.Version, f.BytesTransferred, f.ChecksumInfo.Checksum[:12], msgOpt(f.ErrorMessage))
}

// parseChecksum reads ALG:HEX, or ALG(TEXT) for the digest of TEXT.
func parseChecksum(v string) (*ChecksumInfo, error) {
	if alg, rest, ok := strings.Cut(v, "("); ok && strings.HasSuffix(rest, ")") {
		var h hash.Hash
		switch strings.ToUpper(alg) {
		case "MD5":
			h = md5.New()
		case "SHA1":
			h = sha1.New()
		case "SHA256":
			h = sha256.New()
		case "SHA512":
			h = sha512.New()
		default:
			return nil, fmt.Errorf("unknown algorithm %q", alg)
		}
		h.Write([]byte(unquote(strings.TrimSuffix(rest, ")"))))
		return &ChecksumInfo{Algorithm: alg, Checksum: hex.EncodeToString(h.Sum(nil))}, nil
	}
	alg, sum, ok := strings.Cut(v, ":")
	if !ok {
		return &ChecksumInfo{Checksum: v}, nil
	}
	return &ChecksumInfo{Algorithm: alg, Checksum: sum}, nil
}
