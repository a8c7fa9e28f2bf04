package api_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"clfs/mount/api"
	"clfs/mount/control"
	"clfs/sessionmgr"
)

// TestOperationTable walks the table: every operation is reached, with
// its input intact, through the client of the control socket, through a
// /rest request and through each of its /api spellings. The /rest and
// /api requests are spelled here from the routes and tags, independently
// of the server's decoding, so a route that another shadows, a parameter
// that is lost on the way, or an operation missing from the client fails
// here.
func TestOperationTable(t *testing.T) {
	home := t.TempDir()
	cred := api.Credentials{User: "u", Password: "p"}
	l, err := api.Listen(home, api.ListenOptions{Listen: "127.0.0.1:0", Credentials: cred})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, Logger: log, Endpoints: l.Endpoints(), ReapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	var mu sync.Mutex
	var calls []call
	onCall := func(op api.Operation, in any, err error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{op.Name(), reflect.ValueOf(in).Elem().Interface()})
	}
	last := func() (call, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) == 0 {
			return call{}, false
		}
		c := calls[len(calls)-1]
		calls = nil
		return c, true
	}

	ctl, err := control.Serve(m, control.SocketPath(home), api.Options{Logger: log, OnCall: onCall})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	https := api.ServeHTTPS(m, l, api.Options{Logger: log, OnCall: onCall})
	defer https.Close()
	c, err := control.Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	token := login(t, hc, l.URL(), cred)

	if len(api.Operations) < 40 {
		t.Fatalf("only %d operations in the table", len(api.Operations))
	}
	names := map[string]bool{}
	for _, op := range api.Operations {
		if names[op.Name()] {
			t.Errorf("two operations are named %s", op.Name())
		}
		names[op.Name()] = true
		t.Run(op.Name(), func(t *testing.T) {
			in := sampleInput(t, op)
			want := reflect.ValueOf(in).Elem().Interface()
			check := func(how string) {
				t.Helper()
				got, ok := last()
				if !ok {
					t.Errorf("%s: no operation ran", how)
					return
				}
				if got.name != op.Name() {
					t.Errorf("%s: ran %s", how, got.name)
				}
				if !reflect.DeepEqual(got.in, want) {
					t.Errorf("%s: input\n got %+v\nwant %+v", how, got.in, want)
				}
			}

			c.Do(t.Context(), op, in)
			check("client")

			req := api.EncodeRest(op, in)
			send(t, hc, token, req.Method, l.URL()+req.Path, req.Query, nil, req.Body)
			check("/rest " + req.Method + " " + req.Path)

			for _, r := range op.API() {
				method, target, header, body := spellAPI(t, r, in)
				send(t, hc, token, method, l.URL()+target, nil, header, body)
				check("/api " + method + " " + target)
			}
		})
	}
}

type call struct {
	name string
	in   any
}

// sampleInput is an input of op whose every parameter has a distinct,
// non-empty value, so that a parameter lost or put in another's place
// shows.
func sampleInput(t *testing.T, op api.Operation) any {
	in := reflect.New(inputType(t, op))
	v := in.Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v-" + strings.ToLower(v.Type().Field(i).Name))
		case reflect.Pointer:
			if f.Type().Elem().Kind() == reflect.Int64 {
				n := int64(40 + i)
				f.Set(reflect.ValueOf(&n))
			}
		case reflect.Struct:
			// A spec: one string field set, when it has one, so that
			// the body's wrapping is checked too.
			for j := range f.NumField() {
				if sf := f.Field(j); sf.Kind() == reflect.String && f.Type().Field(j).IsExported() {
					sf.SetString("s-" + strings.ToLower(f.Type().Field(j).Name))
					break
				}
			}
		}
	}
	return in.Interface()
}

// inputType is the type of op's input, from its Call method.
func inputType(t *testing.T, op api.Operation) reflect.Type {
	m, ok := reflect.TypeOf(op).MethodByName("Call")
	if !ok {
		t.Fatalf("%s has no Call", op.Name())
	}
	return m.Type.In(3)
}

// spellAPI spells in as the /api route r has it, from the route and the
// input's api tags: path parameters, query parameters, headers, and the
// body (the api:"body" field, or the fields without an api tag).
func spellAPI(t *testing.T, r api.Route, in any) (method, target string, header http.Header, body any) {
	v := reflect.ValueOf(in).Elem()
	path := "/api/content/" + r.Path
	q := url.Values{}
	if r.Action != "" {
		q.Set("action", r.Action)
	}
	header = http.Header{}
	fields := map[string]any{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		tag, located := f.Tag.Lookup("api")
		if !located {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields[name] = v.Field(i).Interface()
			continue
		}
		if tag == "body" {
			body = v.Field(i).Interface()
			continue
		}
		placed := false
		for _, alt := range strings.Split(tag, "|") {
			where, name, _ := strings.Cut(alt, "=")
			value := v.Field(i).String()
			switch {
			case where == "path" && strings.Contains(path, "{"+name+"}"):
				path = strings.Replace(path, "{"+name+"}", url.PathEscape(value), 1)
				placed = true
			case where == "query" && !placed:
				q.Set(name, value)
				placed = true
			case where == "header":
				header.Set(name, value)
				placed = true
			}
			if placed {
				break
			}
		}
	}
	if len(fields) > 0 {
		body = fields
	}
	if strings.Contains(path, "{") {
		t.Fatalf("/api path %s: a parameter has no field", path)
	}
	if r.Has != "" && !q.Has(r.Has) {
		t.Fatalf("/api %s: no field for the query parameter %s", path, r.Has)
	}
	target = path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return r.Method, target, header, body
}

func send(t *testing.T, hc *http.Client, token, method, target string, q url.Values, header http.Header, body any) {
	t.Helper()
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("vmware-api-session-id", token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func login(t *testing.T, hc *http.Client, base string, cred api.Credentials) string {
	req, _ := http.NewRequest("POST", base+"/rest/com/vmware/cis/session", nil)
	req.SetBasicAuth(cred.User, cred.Password)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Value string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Value == "" {
		t.Fatalf("login: HTTP %d %v", resp.StatusCode, err)
	}
	return v.Value
}
