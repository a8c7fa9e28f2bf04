package sessionmgr

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"
)

// Checksum algorithms of the API (ChecksumAlgorithm).
const (
	AlgSHA1   = "SHA1"
	AlgMD5    = "MD5"
	AlgSHA256 = "SHA256"
	AlgSHA512 = "SHA512"
)

var checksumAlgorithms = map[string]struct {
	new  func() hash.Hash
	size int
}{
	AlgSHA1:   {sha1.New, sha1.Size},
	AlgMD5:    {md5.New, md5.Size},
	AlgSHA256: {sha256.New, sha256.Size},
	AlgSHA512: {sha512.New, sha512.Size},
}

// normalizeChecksum validates a client's ChecksumInfo: the algorithm
// defaults to SHA1 (spec §3.2), unknown algorithms and malformed digests
// are InvalidArgument, and the digest is kept as lowercase hex.
func normalizeChecksum(c *ChecksumInfo) (*ChecksumInfo, error) {
	if c == nil {
		return nil, nil
	}
	alg := strings.ToUpper(c.Algorithm)
	if alg == "" {
		alg = AlgSHA1
	}
	a, ok := checksumAlgorithms[alg]
	if !ok {
		return nil, errorf(KindInvalidArgument, "unknown checksum algorithm %q (want SHA1, MD5, SHA256 or SHA512)", c.Algorithm)
	}
	sum := strings.ToLower(c.Checksum)
	if b, err := hex.DecodeString(sum); err != nil || len(b) != a.size {
		return nil, errorf(KindInvalidArgument, "checksum %q is not a %s digest in hex", c.Checksum, alg)
	}
	return &ChecksumInfo{Algorithm: alg, Checksum: sum}, nil
}
