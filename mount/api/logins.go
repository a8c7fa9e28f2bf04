package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"clfs/mount/api/soap"
)

// errBadLogin is the one answer to a wrong user name or password; the
// /sdk endpoint tells it from a failure of the store by this sentinel.
var errBadLogin = soap.ErrBadLogin

// DefaultLoginIdle is how long an API login lives without a request,
// vCenter's default.
const DefaultLoginIdle = 30 * time.Minute

// maxLogins bounds the logins kept; the oldest idle one goes first.
// A script that logs in per call and never logs out must not grow the
// daemon without bound.
const maxLogins = 10000

// Credentials is the one account of the API listener.
type Credentials struct {
	User     string
	Password string
}

// Logins are the logins of the HTTPS API: the token a client got from
// POST /rest/com/vmware/cis/session (or the SOAP Login), what it sends back
// in vmware-api-session-id. They live in memory only: a restart logs every
// client out, as a vCenter restart does.
type Logins struct {
	// constant after NewLogins
	user     string
	password [sha256.Size]byte // compared in constant time
	idle     time.Duration
	now      func() time.Time

	mu       sync.Mutex
	sessions map[string]*login // GUARDED_BY(mu); by token
}

type login struct {
	user         string
	created      time.Time
	lastAccessed time.Time
}

func NewLogins(cred Credentials, idle time.Duration, now func() time.Time) (*Logins, error) {
	if cred.User == "" || cred.Password == "" {
		return nil, errors.New("the API needs a user and a password (--user, --password-file or CLFS_USER, CLFS_PASSWORD); there is no default")
	}
	if idle <= 0 {
		idle = DefaultLoginIdle
	}
	if now == nil {
		now = time.Now
	}
	return &Logins{
		user: cred.User, password: sha256.Sum256([]byte(cred.Password)),
		idle: idle, now: now, sessions: map[string]*login{},
	}, nil
}

// Login checks user and password and starts a session.
func (a *Logins) Login(user, password string) (string, error) {
	// Hashing first makes the comparison's time independent of the
	// password's length, and ConstantTimeCompare of the user's as well
	// as possible; both are always compared.
	pw := sha256.Sum256([]byte(password))
	okPassword := subtle.ConstantTimeCompare(pw[:], a.password[:])
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte(a.user))
	if okPassword&okUser != 1 {
		return "", errBadLogin
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("new session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sessions) >= maxLogins {
		// Expired logins are dropped only now (or when looked up):
		// the table is bounded either way, and a login stays O(1).
		a.expireLocked(now)
		if len(a.sessions) >= maxLogins {
			a.evictOldestLocked()
		}
	}
	a.sessions[token] = &login{user: user, created: now, lastAccessed: now}
	return token, nil
}

// Lookup finds the session of token; a hit counts as activity.
func (a *Logins) Lookup(token string) (user string, created, lastAccessed time.Time, ok bool) {
	if token == "" {
		return "", time.Time{}, time.Time{}, false
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[token]
	if s == nil {
		return "", time.Time{}, time.Time{}, false
	}
	if now.Sub(s.lastAccessed) > a.idle {
		delete(a.sessions, token)
		return "", time.Time{}, time.Time{}, false
	}
	s.lastAccessed = now
	return s.user, s.created, s.lastAccessed, true
}

// Logout ends the session of token, if any.
func (a *Logins) Logout(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sessions, token)
}

func (a *Logins) expireLocked(now time.Time) {
	for t, s := range a.sessions {
		if now.Sub(s.lastAccessed) > a.idle {
			delete(a.sessions, t)
		}
	}
}

func (a *Logins) evictOldestLocked() {
	var oldest string
	var at time.Time
	for t, s := range a.sessions {
		if oldest == "" || s.lastAccessed.Before(at) {
			oldest, at = t, s.lastAccessed
		}
	}
	delete(a.sessions, oldest)
}
