package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// Fuzz targets of the codec and the key parsers. Their seed corpora (the
// f.Add calls and testdata/fuzz/FuzzX/) run as ordinary tests;
// testdata/fuzz.sh at the repository root fuzzes each for a bounded time.

// records are one value of every record type the catalog stores.
func records() []any {
	size := int64(7)
	return []any{
		&Backing{ID: 1, Root: "/var/lib/clfs/storage"},
		&Library{ID: 2, UUID: "u-l", Name: "lib", Description: "d", BackingID: 1, CreationTime: 5, Version: 1, Attr: Attr{Mode: 0o755, Mtime: 1, Ctime: 2}},
		&Item{ID: 3, UUID: "u-i", LibraryID: 2, Name: "item", Type: "iso", ContentVersion: 4, Attr: Attr{Mode: 0o700, UID: 1000}},
		&File{ID: 4, ItemID: 3, Name: "f.iso", Size: 7, Version: 2, SHA256: bytes.Repeat([]byte{0xab}, 32), Requested: &Checksum{Algorithm: "SHA256", Value: "ab"}, BackingID: 1},
		&UpdateSession{SessionHeader: SessionHeader{ID: 5, UUID: "u-u", ItemID: 3, State: "ACTIVE", ErrorMessage: "e", ClientProgress: 50, ExpirationTime: -1}, WarningBehavior: []string{"w"}, WarningBehaviorIgnore: []bool{true}, CompletePending: true},
		&UpdateSessionFile{SessionID: 5, Name: "n", ExpectedSize: &size, Status: "READY", SHA256: []byte{1, 2}, Staging: "/s/1", Attr: &Attr{Mode: 0o644}},
		&UpdateSessionFile{SessionID: 5, Name: "p", SourceType: "PULL", Status: "TRANSFERRING", Source: &TransferEndpointRecord{URI: "https://h/p", Thumbprint: "AB:CD", CertificatePEM: "-----BEGIN CERTIFICATE-----\n"}},
		&DownloadSession{SessionHeader: SessionHeader{ID: 6, UUID: "u-d", ItemID: 3, State: "CANCELED"}, Pinned: true},
		&DownloadSessionFile{SessionID: 6, Name: "n", SHA256: []byte{3}, Status: "PREPARED"},
		&ClientToken{UUID: "u", SpecHash: "h"},
		&ContentRef{Refs: 2, Size: 9},
	}
}

// FuzzDecodeRecord: decoding arbitrary bytes into any record never panics
// and fails only with ErrCorrupt; what decodes re-encodes to a value that
// decodes to the same record (a record read, changed and written back
// keeps what it did not change).
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range records() {
		b, err := encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"id":1,"name":"x","sha256":"AQI="}`, `{`, "\xff\x00", ``, `null`, `[]`, `"x"`, `1e400`,
		`{"id":-1}`, `{"id":18446744073709551616}`, `{"sha256":"not base64"}`, `{"name":"\ud800"}`,
		`{"name":"a\u0000b","attr":{"mode":4294967296}}`, `{"expected_size":null,"attr":null}`,
		`{"warning_behavior":[1]}`, `{"source":null}`, `{"source":{}}`, `{"source":{"uri":1}}`, `{"complete_pending":"yes"}`, `{"id":1}{"id":2}`, `{"ID":7,"Name":"case"}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, proto := range records() {
			typ := reflect.TypeOf(proto).Elem()
			r := reflect.New(typ).Interface()
			if err := decode([]byte("k"), b, r); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: decode error not ErrCorrupt: %v", typ.Name(), err)
				}
				continue
			}
			again, err := encode(r)
			if err != nil {
				t.Fatalf("%s: %+v decoded but does not encode: %v", typ.Name(), r, err)
			}
			r2 := reflect.New(typ).Interface()
			if err := decode([]byte("k"), again, r2); err != nil {
				t.Fatalf("%s: re-encoded %q does not decode: %v", typ.Name(), again, err)
			}
			// Compared encoded: an empty and a nil byte slice are the
			// same record (omitempty drops both).
			if third, err := encode(r2); err != nil || !bytes.Equal(third, again) {
				t.Fatalf("%s: %+v came back as %+v (%s, then %s)", typ.Name(), r, r2, again, third)
			}
		}
	})
}

// FuzzParseKey: the key parsers take any bytes without panicking, accept
// exactly the keys their constructors build, and give back what was put in.
func FuzzParseKey(f *testing.F) {
	f.Add(expiryKey(255, UpdateSessionKind, 9))
	f.Add(expiryKey(-1, DownloadSessionKind, 1<<63))
	f.Add(contentRefKey(7, bytes.Repeat([]byte{0xff}, 32)))
	f.Add([]byte{})
	f.Add([]byte{kindExpiry})
	f.Add([]byte{kindContentRef, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, k []byte) {
		if at, kind, id, ok := parseExpiryKey(k); ok {
			if !bytes.Equal(expiryKey(at, kind, id), k) {
				t.Fatalf("expiry key %x parses to (%d, %c, %d), which builds %x", k, at, kind, id, expiryKey(at, kind, id))
			}
		} else if len(k) == 18 && k[0] == kindExpiry {
			t.Fatalf("well-formed expiry key %x refused", k)
		}
		if backing, sha, ok := parseContentRefKey(k); ok {
			if !bytes.Equal(contentRefKey(backing, sha), k) {
				t.Fatalf("content ref key %x parses to (%d, %x)", k, backing, sha)
			}
			if len(sha) > 0 && &sha[0] == &k[9] {
				t.Fatal("parseContentRefKey returns a slice of the key (Badger reuses key buffers)")
			}
		} else if len(k) == 41 && k[0] == kindContentRef {
			t.Fatalf("well-formed content ref key %x refused", k)
		}
		// The fixed-width IDs make prefixes unambiguous: a key built for
		// one item never falls under another item's file-table prefix.
		if len(k) >= 8 {
			id := binary.BigEndian.Uint64(k[:8])
			name := string(k[8:])
			fk := fileKey(id, name)
			if !bytes.HasPrefix(fk, fileTablePrefix(id)) || bytes.HasPrefix(fk, fileTablePrefix(id+1)) {
				t.Fatalf("file key %x of item %d is outside its prefix", fk, id)
			}
			if got := string(fk[len(fileTablePrefix(id)):]); got != name {
				t.Fatalf("file key %x: name %q, want %q", fk, got, name)
			}
		}
	})
}
