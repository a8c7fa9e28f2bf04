package meta

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcdEngine keeps the catalog under one key prefix of an etcd cluster
// ("PREFIX/": catalogs under a/ and a/b/ would overlap, so prefixes must
// not nest).
//
// Transactions are optimistic, in the client: reads are at one revision
// (the first read's), from the node's cache of keys where it knows them
// at that revision (kv_etcd_cache.go), else from the cluster; each key
// read is remembered with its ModRevision (0 when absent) and each range
// scanned with that revision; writes are buffered. Commit is one etcd
// Txn: if every key read still has its ModRevision and no key in a
// scanned range changed since, apply the writes; else it is a conflict
// and runTxn runs the body again. So transactions are serializable, and
// a commit is all or nothing. A read-only transaction whose revision came
// from the cache is checked the same way before it answers, so that it
// is never older than its call.
//
// etcd bounds a Txn (by default 128 compared keys, 128 operations and
// 1.5 MiB per request: --max-txn-ops, --max-request-bytes). A
// transaction beyond the bounds fails with ErrTooLarge before anything
// is sent; it is never split, because a split commit would not be
// atomic. The client assumes the defaults; the URL's max-txn-ops and
// max-request-bytes parameters match a cluster configured otherwise.
//
// Every commit is durable on a quorum when it returns: sync does nothing.
type etcdEngine struct {
	cli       *clientv3.Client
	endpoints []string
	prefix    string // "PREFIX/": prepended to every key

	maxOps   int
	maxBytes int
	// timeout bounds one attempt of a transaction, so that a cluster
	// that lost its quorum is an error, not a hang.
	timeout time.Duration

	own ownRevisions // this process's commits, which watch leaves out

	cache      etcdCache // keys read and seen changing (kv_etcd_cache.go)
	stopFollow context.CancelFunc
	followDone chan struct{}
}

const (
	etcdScanPage        = 512
	etcdDefaultMaxOps   = 128
	etcdDefaultMaxBytes = 1536 * 1024
	// etcdRequestSlack is kept free of a request's byte budget for the
	// framing of its operations, which the estimate does not count.
	etcdRequestSlack = 16 << 10
)

var errEtcdConflict = errors.New("etcd: transaction conflict")

// openEtcd opens etcd://HOST:PORT[,HOST:PORT...]/PREFIX. Query
// parameters, each with the etcdctl environment variable it falls back
// to:
//
//	user, password   ETCDCTL_USER ("user" or "user:password"), ETCDCTL_PASSWORD
//	                 (also as etcd://user:password@hosts/prefix)
//	cacert           ETCDCTL_CACERT   CA bundle; implies TLS
//	cert, key        ETCDCTL_CERT, ETCDCTL_KEY   client certificate; implies TLS
//	tls=true         TLS with the system's roots
//	dial-timeout     how long to wait for the cluster at open (default 5s)
//	request-timeout  how long one attempt of a transaction may take (default 10s)
//	max-txn-ops, max-request-bytes   the cluster's limits, if not the defaults
func openEtcd(ctx context.Context, u *url.URL) (*etcdEngine, error) {
	e, cfg, err := parseEtcdURL(u, os.Getenv)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %v", Redact(u.String()), err)
	}
	// Fail at open, with one line, when the cluster is unreachable or
	// refuses the credentials, rather than at the first operation.
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, e.prefix, clientv3.WithCountOnly()); err != nil {
		cli.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v", cfg.DialTimeout)
		}
		return nil, fmt.Errorf("catalog %s: %v", Redact(u.String()), err)
	}
	e.cli = cli
	e.own.init()
	fctx, stop := context.WithCancel(context.Background())
	e.stopFollow, e.followDone = stop, make(chan struct{})
	go func() {
		defer close(e.followDone)
		e.follow(fctx)
	}()
	return e, nil
}

// parseEtcdURL reads an etcd catalog URL (see openEtcd) into the engine,
// without its client, and the client's configuration.
func parseEtcdURL(u *url.URL, getenv func(string) string) (*etcdEngine, clientv3.Config, error) {
	q := u.Query()
	param := func(name, env string) string {
		if v := q.Get(name); v != "" {
			return v
		}
		if env != "" {
			return getenv(env)
		}
		return ""
	}
	redacted := Redact(u.String())
	bad := func(format string, args ...any) error {
		return fmt.Errorf("catalog %s: %s", redacted, fmt.Sprintf(format, args...))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "" {
		return nil, clientv3.Config{}, bad("no key prefix (etcd://HOST:PORT/PREFIX)")
	}
	var endpoints []string
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			endpoints = append(endpoints, h)
		}
	}
	if len(endpoints) == 0 {
		return nil, clientv3.Config{}, bad("no endpoints (etcd://HOST:PORT[,HOST:PORT...]/PREFIX)")
	}
	// The client's own log (gRPC retries, a cancelled request) is noise
	// next to the errors it returns, which say the same.
	cfg := clientv3.Config{DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if v := q.Get("dial-timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, clientv3.Config{}, bad("dial-timeout: %v", err)
		}
		cfg.DialTimeout = d
	}
	cfg.Username = param("user", "ETCDCTL_USER")
	cfg.Password = param("password", "ETCDCTL_PASSWORD")
	if u.User != nil {
		cfg.Username = u.User.Username()
		if p, ok := u.User.Password(); ok {
			cfg.Password = p
		}
	}
	if user, pass, ok := strings.Cut(cfg.Username, ":"); ok && cfg.Password == "" {
		cfg.Username, cfg.Password = user, pass
	}
	tlsInfo := transport.TLSInfo{
		TrustedCAFile: param("cacert", "ETCDCTL_CACERT"),
		CertFile:      param("cert", "ETCDCTL_CERT"),
		KeyFile:       param("key", "ETCDCTL_KEY"),
	}
	useTLS := tlsInfo.TrustedCAFile != "" || tlsInfo.CertFile != ""
	if v := q.Get("tls"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, clientv3.Config{}, bad("tls: %v", err)
		}
		useTLS = useTLS || b
	}
	if useTLS {
		var tc *tls.Config
		var err error
		if tlsInfo.Empty() && tlsInfo.TrustedCAFile == "" {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		} else if tc, err = tlsInfo.ClientConfig(); err != nil {
			return nil, clientv3.Config{}, bad("TLS: %v", err)
		}
		cfg.TLS = tc
	}
	e := &etcdEngine{endpoints: endpoints, prefix: prefix + "/", maxOps: etcdDefaultMaxOps, maxBytes: etcdDefaultMaxBytes, timeout: 10 * time.Second}
	if v := q.Get("request-timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, clientv3.Config{}, bad("request-timeout: want a duration, not %q", v)
		}
		e.timeout = d
	}
	for name, p := range map[string]*int{"max-txn-ops": &e.maxOps, "max-request-bytes": &e.maxBytes} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, clientv3.Config{}, bad("%s: want a positive integer, not %q", name, v)
			}
			*p = n
		}
	}
	cfg.Endpoints = endpoints
	return e, cfg, nil
}

func (e *etcdEngine) String() string {
	return "etcd://" + strings.Join(e.endpoints, ",") + "/" + strings.TrimSuffix(e.prefix, "/")
}
func (e *etcdEngine) idBatch() uint64 { return 1024 }

func (e *etcdEngine) shared() bool { return true }
func (e *etcdEngine) sync() error  { return nil }
func (e *etcdEngine) close() error {
	e.stopFollow()
	<-e.followDone
	return e.cli.Close()
}

func (e *etcdEngine) dropAll(ctx context.Context) error {
	_, err := e.cli.Delete(ctx, e.prefix, clientv3.WithRange(e.rangeEnd(nil)))
	return err
}

func (e *etcdEngine) conflict(err error) bool {
	return errors.Is(err, errEtcdConflict) || errors.Is(err, rpctypes.ErrCompacted)
}

// key is the etcd key of a catalog key; rangeEnd that of a range's end
// (nil: the end of the prefix).
func (e *etcdEngine) key(k []byte) string { return e.prefix + string(k) }
func (e *etcdEngine) rangeEnd(end []byte) string {
	if end == nil {
		return string(prefixEnd([]byte(e.prefix)))
	}
	return e.key(end)
}

type etcdWrite struct {
	val []byte
	del bool
}

type etcdRange struct{ from, to string }

type etcdRead struct {
	val    []byte
	modRev int64 // 0: absent
}

type etcdTxn struct {
	e    *etcdEngine
	ctx  context.Context
	mode txnMode
	// rev is the revision the transaction reads the catalog at, from
	// the cluster or from the cache; 0 until its first read. It comes
	// from the cluster's answer to that read, or, when the first read
	// finds its key in the cache, from the cache (how far its watch
	// got): then it may be a little behind the cluster, and stale says
	// so until a read from the cluster checks everything read so far
	// unchanged and moves rev up to its own revision.
	rev   int64
	stale bool
	// cached lists the keys taken from the cache: a lost commit or
	// check drops them from it.
	cached []string

	reads    map[string]etcdRead // etcd key → what get read, so it is read once
	observed map[string]int64    // etcd key → ModRevision read (0: absent)
	ranges   []etcdRange         // scanned; checked unchanged since rev
	writes   map[string]etcdWrite
	// deleted are delRange's ranges: one delete operation each.
	deleted []etcdRange
}

func (e *etcdEngine) txn(ctx context.Context, mode txnMode, fn func(kvTxn) error) error {
	actx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	err := e.attempt(actx, mode, fn)
	if err != nil && ctx.Err() == nil && (actx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("catalog %s: no answer within %v: %w", e, e.timeout, err)
	}
	return err
}

func (e *etcdEngine) attempt(ctx context.Context, mode txnMode, fn func(kvTxn) error) error {
	t := &etcdTxn{e: e, ctx: ctx, mode: mode, reads: map[string]etcdRead{}, observed: map[string]int64{}, writes: map[string]etcdWrite{}}
	if err := fn(t); err != nil {
		if errors.Is(err, errEtcdConflict) { // fetch found a read changed
			return errEtcdConflict
		}
		// An error read at a revision the cache had (a name looked up
		// and not found, most often) stands only if that state is
		// still the cluster's: the check says so, or it is a
		// conflict, and the next attempt reads further on.
		if t.stale && mode != readRecent {
			// Unchecked (the cluster gone, the caller too), the
			// error may be a stale one: the check's own error is true.
			if cerr := t.commit(ctx, false); cerr != nil {
				return cerr
			}
		}
		return err
	}
	if len(t.writes) == 0 && len(t.deleted) == 0 && (mode == readRecent || !t.stale) {
		return nil
	}
	// The caller's ctx may stop the transaction up to here, and not
	// once the commit is sent: etcd may apply a commit whose answer
	// never arrives, and the caller would take it for one that failed
	// (and, say, delete the blobs it just made referenced). The commit
	// keeps the attempt's deadline.
	if err := ctx.Err(); err != nil {
		return err
	}
	cctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadline(cctx, d)
		defer cancel()
	}
	return t.commit(cctx, true)
}

func (t *etcdTxn) readOpts(opts ...clientv3.OpOption) []clientv3.OpOption {
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	return opts
}

func (t *etcdTxn) get(key []byte) ([]byte, uint64, error) {
	k := t.e.key(key)
	if w, ok := t.writes[k]; ok {
		if w.del {
			return nil, 0, ErrNotFound
		}
		return append([]byte(nil), w.val...), 0, nil
	}
	if t.inDeleted(k) {
		return nil, 0, ErrNotFound
	}
	r, ok := t.reads[k] // read once: the same again
	// While rev is the cache's, what the transaction read must fit in
	// the one request that checks it (fetch, commit).
	if !ok && !(t.stale && len(t.observed)+len(t.ranges) >= t.e.maxOps-1) {
		rev := t.rev
		if rev == 0 {
			rev = t.e.cache.revision()
		}
		if r, ok = t.e.cache.lookup(k, rev); ok {
			if t.rev == 0 {
				t.rev, t.stale = rev, true
			}
			t.observe(k, r.modRev)
			t.reads[k] = r
			t.cached = append(t.cached, k)
		}
	}
	if ok {
		if r.modRev == 0 {
			return nil, 0, ErrNotFound
		}
		return append([]byte(nil), r.val...), uint64(r.modRev), nil
	}
	resp, err := t.fetch(k)
	if err != nil {
		return nil, 0, fmt.Errorf("etcd get: %w", err)
	}
	if len(resp.Kvs) == 0 {
		t.observe(k, 0)
		t.reads[k] = etcdRead{}
		t.e.cache.offer(k, etcdRead{}, t.rev)
		return nil, 0, ErrNotFound
	}
	kv := resp.Kvs[0]
	t.observe(k, kv.ModRevision)
	r = etcdRead{val: kv.Value, modRev: kv.ModRevision}
	t.reads[k] = r
	t.e.cache.offer(k, r, t.rev)
	return append([]byte(nil), kv.Value...), uint64(kv.ModRevision), nil
}

// observe remembers the ModRevision a key was read at, for the commit
// or the check. A read-only transaction that takes nothing from the
// cache needs no check (every read is at t.rev) and so never uses them.
// fetch reads from the cluster at t.rev. While t.rev is the cache's
// (stale), it reads at the cluster's latest revision instead, in one Txn
// that also checks every key and range read so far unchanged: then they
// are the latest too, and t.rev moves up to the Txn's revision. A
// read-only transaction that did so needs no check at its end: it rode
// along with the read it needed anyway.
func (t *etcdTxn) fetch(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.stale && len(t.observed)+len(t.ranges) <= t.e.maxOps {
		cmps := t.compares()
		resp, err := t.e.readTxn(t.ctx, func() (*clientv3.TxnResponse, error) {
			return t.e.cli.Txn(t.ctx).If(cmps...).Then(clientv3.OpGet(key, opts...)).Commit()
		})
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			t.e.cache.drop(t.cached)
			return nil, errEtcdConflict
		}
		t.rev, t.stale = resp.Header.Revision, false
		return (*clientv3.GetResponse)(resp.Responses[0].GetResponseRange()), nil
	}
	resp, err := t.e.cli.Get(t.ctx, key, t.readOpts(opts...)...)
	if err == nil && t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, err
}

// readTxn runs a Txn that writes nothing, and again while the cluster
// answers that it cannot now (a leader election under way, a member
// going away), until ctx ends: etcd's client does so for plain reads,
// which the transactions used before the cache, but not for a Txn, since
// it cannot tell one that writes nothing.
func (e *etcdEngine) readTxn(ctx context.Context, txn func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	pause := 10 * time.Millisecond
	for {
		resp, err := txn()
		if err == nil || !unavailable(err) {
			return resp, err
		}
		if sleepCtx(ctx, pause) != nil {
			return nil, err
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// unavailable reports an answer that a request could not be served now
// (gRPC's Unavailable: no leader, leader changed, member unreachable).
func unavailable(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// compares are the conditions of a commit: every key read has the
// ModRevision it was read with, and no key of a scanned range changed
// after t.rev.
func (t *etcdTxn) compares() []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, 0, len(t.observed)+len(t.ranges))
	for k, rev := range t.observed {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
	}
	for _, r := range t.ranges {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.from), "<", t.rev+1).WithRange(r.to))
	}
	return cmps
}

func (t *etcdTxn) observe(k string, modRev int64) {
	t.observed[k] = modRev
}

func (t *etcdTxn) scan(begin, end []byte, keysOnly bool, fn func(key []byte, version uint64, value func() ([]byte, error)) error) error {
	from, to := t.e.key(begin), t.e.rangeEnd(end)
	// This transaction's own writes in the range, merged in key order.
	var pending []string
	for k := range t.writes {
		if k >= from && k < to {
			pending = append(pending, k)
		}
	}
	sort.Strings(pending)
	emitPending := func(k string) error {
		w := t.writes[k]
		if w.del {
			return nil
		}
		var v []byte
		if !keysOnly {
			v = append([]byte(nil), w.val...)
		}
		return fn([]byte(k[len(t.e.prefix):]), 0, func() ([]byte, error) { return v, nil })
	}
	opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithLimit(etcdScanPage)}
	if keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	// The range is checked unchanged from the revision its first page is
	// read at (t.rev; the later pages are read there too), up to where
	// the caller stopped reading: a sweep reads one item of 10,000 at a
	// time, and etcd walks every key of a compared range, so checking the
	// rest of it made deleting a large library quadratic.
	rangeFrom, scanned, checkedTo := from, false, to
	defer func() {
		if scanned {
			t.ranges = append(t.ranges, etcdRange{rangeFrom, checkedTo})
		}
	}()
	stop := func(k string, err error) error {
		checkedTo = k + "\x00"
		return err
	}
	for {
		resp, err := t.fetch(from, opts...)
		if err != nil {
			return fmt.Errorf("etcd scan: %w", err)
		}
		scanned = true
		for _, kv := range resp.Kvs {
			k := string(kv.Key)
			if t.inDeleted(k) {
				continue
			}
			for len(pending) > 0 && pending[0] < k {
				if err := emitPending(pending[0]); err != nil {
					return stop(pending[0], err)
				}
				pending = pending[1:]
			}
			t.observe(k, kv.ModRevision)
			if len(pending) > 0 && pending[0] == k {
				pending = pending[1:]
				if err := emitPending(k); err != nil {
					return stop(k, err)
				}
				continue
			}
			if !keysOnly { // a copy: the value handed out is the caller's
				t.e.cache.offer(k, etcdRead{val: bytes.Clone(kv.Value), modRev: kv.ModRevision}, t.rev)
			}
			if err := fn(kv.Key[len(t.e.prefix):], uint64(kv.ModRevision), func() ([]byte, error) { return kv.Value, nil }); err != nil {
				return stop(k, err)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	for _, k := range pending {
		if err := emitPending(k); err != nil {
			return stop(k, err)
		}
	}
	return nil
}

func (t *etcdTxn) absent(key []byte) {
	k := t.e.key(key)
	if _, ok := t.reads[k]; !ok {
		t.observe(k, 0)
		t.reads[k] = etcdRead{}
	}
}

// count asks the cluster for the number alone: one round trip whatever
// the range holds (statfs counts every file of the catalog).
func (t *etcdTxn) count(begin, end []byte) (int64, error) {
	from, to := t.e.key(begin), t.e.rangeEnd(end)
	resp, err := t.fetch(from, clientv3.WithRange(to), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd count: %w", err)
	}
	t.ranges = append(t.ranges, etcdRange{from, to})
	return resp.Count, nil
}

func (t *etcdTxn) set(key, val []byte) error {
	if t.mode != readWrite {
		return errors.New("meta: write in a read-only transaction")
	}
	if t.inDeleted(t.e.key(key)) {
		// etcd refuses a Txn that puts a key inside a range it deletes.
		return fmt.Errorf("meta: write of %q into a range this transaction deleted", key)
	}
	t.writes[t.e.key(key)] = etcdWrite{val: append([]byte(nil), val...)}
	return nil
}

// delRange drops this transaction's own writes in the range, which the
// range's deletion replaces (etcd refuses a Txn whose operations
// overlap).
func (t *etcdTxn) delRange(begin, end []byte) error {
	if t.mode != readWrite {
		return errors.New("meta: write in a read-only transaction")
	}
	from, to := t.e.key(begin), t.e.rangeEnd(end)
	for k := range t.writes {
		if k >= from && k < to {
			delete(t.writes, k)
		}
	}
	t.deleted = append(t.deleted, etcdRange{from, to})
	return nil
}

func (t *etcdTxn) inDeleted(k string) bool {
	for _, r := range t.deleted {
		if k >= r.from && k < r.to {
			return true
		}
	}
	return false
}

func (t *etcdTxn) del(key []byte) error {
	if t.mode != readWrite {
		return errors.New("meta: write in a read-only transaction")
	}
	k := t.e.key(key)
	if t.inDeleted(k) {
		return nil // gone with its range
	}
	t.writes[k] = etcdWrite{del: true}
	return nil
}

// commit commits the transaction's writes if every key and range it read
// is unchanged; without writes (a read-only transaction, or one whose
// body failed) it only checks that.
func (t *etcdTxn) commit(ctx context.Context, writes bool) error {
	cmps := t.compares()
	var ops []clientv3.Op
	size := 0
	for k := range t.observed {
		size += len(k) + 16
	}
	for _, r := range t.ranges {
		size += len(r.from) + len(r.to) + 16
	}
	for k, w := range t.writes {
		if !writes {
			break
		}
		if w.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.val)))
		}
		size += len(k) + len(w.val) + 16
	}
	for _, r := range t.deleted {
		if writes {
			ops = append(ops, clientv3.OpDelete(r.from, clientv3.WithRange(r.to)))
			size += len(r.from) + len(r.to) + 16
		}
	}
	switch {
	case len(ops) > t.e.maxOps:
		return fmt.Errorf("%w: %d keys written in one transaction; etcd allows %d", ErrTooLarge, len(ops), t.e.maxOps)
	case len(cmps) > t.e.maxOps:
		return fmt.Errorf("%w: %d keys and ranges read in one read-write transaction; etcd allows %d", ErrTooLarge, len(cmps), t.e.maxOps)
	case size > t.e.maxBytes-etcdRequestSlack:
		return fmt.Errorf("%w: a commit of about %d bytes; etcd allows %d per request", ErrTooLarge, size, t.e.maxBytes)
	}
	var resp *clientv3.TxnResponse
	var err error
	if len(ops) == 0 {
		// A read-only transaction's check: no revision of its own. etcd
		// answers a Txn without operations from whichever member got
		// it, which may lag; a (linearizable) read in it makes the
		// member catch up with the leader first.
		resp, err = t.e.readTxn(ctx, func() (*clientv3.TxnResponse, error) {
			return t.e.cli.Txn(ctx).If(cmps...).Then(clientv3.OpGet(t.e.prefix, clientv3.WithCountOnly())).Commit()
		})
	} else {
		seq := t.e.own.begin()
		resp, err = t.e.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		rev := int64(0)
		if err == nil && resp.Succeeded {
			rev = resp.Header.Revision
			for k, w := range t.writes { // the node's own commit: as of its revision
				if w.del {
					t.e.cache.offer(k, etcdRead{}, rev)
				} else {
					t.e.cache.offer(k, etcdRead{val: w.val, modRev: rev}, rev)
				}
			}
		}
		t.e.own.end(seq, rev)
	}
	if err != nil {
		if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
			return fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return fmt.Errorf("etcd commit: %w", err)
	}
	if !resp.Succeeded {
		t.e.cache.drop(t.cached)
		return errEtcdConflict
	}
	return nil
}

// ownRevisions remembers the revisions of this process's recent commits,
// so that watch can leave them out. The event of a commit can reach the
// watch before the commit's own answer reaches its caller, so the watch
// first waits for the commits that were under way when the event came
// (settle).
type ownRevisions struct {
	mu       sync.Mutex
	answered *sync.Cond          // broadcast when a commit ends
	started  uint64              // GUARDED_BY(mu); commits begun
	underway map[uint64]struct{} // GUARDED_BY(mu); begun, not answered
	set      map[int64]struct{}  // GUARDED_BY(mu)
	ring     []int64             // GUARDED_BY(mu); oldest first, at most ownRevisionsKept
}

const ownRevisionsKept = 8192

func (o *ownRevisions) init() {
	o.answered = sync.NewCond(&o.mu)
	o.underway = map[uint64]struct{}{}
	o.set = map[int64]struct{}{}
}

// begin is called before a commit is sent; end with its number and
// revision (0: not applied) when its answer came, or it failed.
func (o *ownRevisions) begin() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started++
	o.underway[o.started] = struct{}{}
	return o.started
}

func (o *ownRevisions) end(seq uint64, rev int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.underway, seq)
	if rev != 0 {
		if len(o.ring) == ownRevisionsKept {
			delete(o.set, o.ring[0])
			o.ring = o.ring[1:]
		}
		o.ring = append(o.ring, rev)
		o.set[rev] = struct{}{}
	}
	o.answered.Broadcast()
}

// settle waits until every commit begun so far has its answer. Commits
// end by their deadline (the engine's request timeout), so this does
// too.
func (o *ownRevisions) settle() {
	o.mu.Lock()
	defer o.mu.Unlock()
	upTo := o.started
	for {
		waiting := false
		for seq := range o.underway {
			if seq <= upTo {
				waiting = true
				break
			}
		}
		if !waiting {
			return
		}
		o.answered.Wait()
	}
}

func (o *ownRevisions) has(rev int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.set[rev]
	return ok
}

// watch follows the keys of kinds [fromKind, toKind) from the current
// revision on. A broken watch (a member gone, the cluster without quorum
// for a while) is taken up again from the last revision seen, so no
// event is lost unless the cluster compacted it meanwhile: then resync.
func (e *etcdEngine) watch(ctx context.Context, fromKind, toKind byte, fn func(events []kvEvent, resync bool)) error {
	from, to := e.key([]byte{fromKind}), e.key([]byte{toKind})
	rev := int64(0) // last revision seen; 0: not known yet
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		if rev == 0 {
			resp, err := e.cli.Get(ctx, from, clientv3.WithCountOnly())
			if err != nil {
				sleepCtx(ctx, pause)
				pause = min(2*pause, 5*time.Second)
				continue
			}
			rev = resp.Header.Revision
		}
		// WithRequireLeader: a member cut off from the others ends the
		// watch instead of keeping it silently stale.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := e.cli.Watch(wctx, from, clientv3.WithRange(to), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
		for resp := range ch {
			if resp.CompactRevision != 0 {
				fn(nil, true)
				rev = 0
				break
			}
			if resp.Err() != nil || resp.Canceled {
				break
			}
			pause = 100 * time.Millisecond
			e.own.settle()
			var events []kvEvent
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision > rev {
					rev = ev.Kv.ModRevision
				}
				if e.own.has(ev.Kv.ModRevision) {
					continue
				}
				ke := kvEvent{key: []byte(ev.Kv.Key[len(e.prefix):]), deleted: ev.Type == clientv3.EventTypeDelete}
				if !ke.deleted {
					ke.value = ev.Kv.Value
				}
				if ev.PrevKv != nil {
					ke.prev = ev.PrevKv.Value
				}
				events = append(events, ke)
			}
			if len(events) > 0 {
				fn(events, false)
			}
		}
		cancel()
		sleepCtx(ctx, pause)
		pause = min(2*pause, 5*time.Second)
	}
	return nil
}
