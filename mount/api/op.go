package api

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"clfs/sessionmgr"
)

// Op is one operation of the API: how each dialect spells it, its input
// and output types, and the session manager call that does it. The table
// (Operations) is the only place an operation is described; the /rest and
// /api routes and the client's requests are all derived from it.
//
// In is a struct whose fields say where each parameter travels, by tags:
//
//	json:"name"        a field of the request body (both dialects), under
//	                   the vAPI parameter's name
//	rest:"id"          the /id:{id} segment of the /rest path
//	rest:"query=NAME"  a query parameter of the /rest request
//	api:"path=NAME"    the {NAME} segment of the /api path
//	api:"query=NAME"   a query parameter of the /api request
//	api:"header=NAME"  a header of the /api request (Client-Token)
//	api:"body"         the whole /api body (the spec, not wrapped)
//
// A place may name alternatives, first found wins: api:"path=name|query=file_name".
//
// A field with a rest (api) tag is not in the /rest (/api) body.
type Op[In, Out any] struct {
	name string
	rest Route
	api  []Route // empty: no /api form (a clfs extension)
	call func(ctx context.Context, m *sessionmgr.Manager, in *In) (Out, error)
	// listsModels: Out is a list of models with an ID, answered as ids
	// where the listener lists ids (vSphere's list operations).
	listsModels bool
	// creates: the /api form answers 201 Created.
	creates bool

	restIn, apiIn binding
}

// Route is how one dialect spells an operation.
type Route struct {
	Method string
	// Path is under the dialect's prefix, or absolute for a clfs
	// extension (/clfs/info); {NAME} is a parameter segment.
	Path string
	// Action is the ~action (/rest) or action (/api) query parameter.
	Action string
	// Has, when set, is a query parameter whose presence selects this
	// operation among those of the same method, path and action
	// (library?name=N is LibraryByName, library is the list).
	Has string
}

// Operation is an Op of any types: what the table holds and handlers and
// clients work with.
type Operation interface {
	// Name is the operation's vAPI name, service.operation.
	Name() string
	// Rest is the operation's /rest route.
	Rest() Route
	// API are the /api spellings of the operation; none for a clfs
	// extension.
	API() []Route

	newInput() any // a *In
	invoke(ctx context.Context, m *sessionmgr.Manager, in any) (any, error)
	output() reflect.Type
	lists() bool
	createsResource() bool
	binding(d dialect) *binding
}

func (o *Op[In, Out]) Name() string  { return o.name }
func (o *Op[In, Out]) Rest() Route   { return o.rest }
func (o *Op[In, Out]) API() []Route  { return o.api }
func (o *Op[In, Out]) newInput() any { return new(In) }
func (o *Op[In, Out]) invoke(ctx context.Context, m *sessionmgr.Manager, in any) (any, error) {
	out, err := o.call(ctx, m, in.(*In))
	if err != nil {
		return nil, err
	}
	return out, nil
}
func (o *Op[In, Out]) output() reflect.Type  { return reflect.TypeFor[Out]() }
func (o *Op[In, Out]) lists() bool           { return o.listsModels }
func (o *Op[In, Out]) createsResource() bool { return o.creates }
func (o *Op[In, Out]) binding(d dialect) *binding {
	if d == restDialect {
		return &o.restIn
	}
	return &o.apiIn
}

// Call runs op in this process, on m.
func (o *Op[In, Out]) Call(ctx context.Context, m *sessionmgr.Manager, in In) (Out, error) {
	return o.call(ctx, m, &in)
}

// NoResult is the output of an operation that returns nothing: /rest
// answers 200 with no body, /api 204.
type NoResult struct{}

// Caller runs operations: the session manager in this process (Local), or
// a daemon over its control socket (control.Client).
type Caller interface {
	Do(ctx context.Context, op Operation, in any) (any, error)
}

// Call runs op through c, typed.
func Call[In, Out any](ctx context.Context, c Caller, op *Op[In, Out], in In) (Out, error) {
	v, err := c.Do(ctx, op, &in)
	if err != nil {
		var zero Out
		return zero, err
	}
	return v.(Out), nil
}

// Run runs op, which returns nothing, through c.
func Run[In any](ctx context.Context, c Caller, op *Op[In, NoResult], in In) error {
	_, err := c.Do(ctx, op, &in)
	return err
}

// Local runs operations on a session manager in this process.
type Local struct{ M *sessionmgr.Manager }

func (l Local) Do(ctx context.Context, op Operation, in any) (any, error) {
	return op.invoke(ctx, l.M, in)
}

// define makes an operation of the table.
func define[In, Out any](name string, rest Route, call func(ctx context.Context, m *sessionmgr.Manager, in *In) (Out, error), api ...Route) *Op[In, Out] {
	o := &Op[In, Out]{name: name, rest: rest, api: api, call: call}
	t := reflect.TypeFor[In]()
	o.restIn = bind(t, restDialect)
	o.apiIn = bind(t, apiDialect)
	return o
}

// listing marks an operation whose output is a list of models with ids.
func (o *Op[In, Out]) listing() *Op[In, Out] { o.listsModels = true; return o }

// creating marks an operation whose /api form answers 201 Created.
func (o *Op[In, Out]) creating() *Op[In, Out] { o.creates = true; return o }

// ---- parameter binding

type dialect int

const (
	restDialect dialect = iota
	apiDialect
)

func (d dialect) String() string {
	if d == restDialect {
		return "/rest"
	}
	return "/api"
}

// A place is where a parameter travels outside the body.
type place struct {
	field int    // index in In
	where string // "id", "path", "query" or "header"
	name  string
	or    *place // an alternative, when this one is absent (api only)
}

// binding is where each field of an operation's input travels in one
// dialect.
type binding struct {
	places []place
	// body is a struct type of the fields that travel in the body, in
	// In's order, with their json tags; nil for none.
	body       reflect.Type
	bodyFields []int // index in In of each field of body
	whole      int   // the api:"body" field, or -1
}

func bind(t reflect.Type, d dialect) binding {
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("api: input %s is not a struct", t))
	}
	b := binding{whole: -1}
	var bodyFields []reflect.StructField
	key := "rest"
	if d == apiDialect {
		key = "api"
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, located := f.Tag.Lookup(key)
		switch {
		case !located:
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || name == "" {
				panic(fmt.Sprintf("api: %s.%s has no json name and no %s place", t, f.Name, key))
			}
			bodyFields = append(bodyFields, reflect.StructField{Name: f.Name, Type: f.Type, Tag: reflect.StructTag(`json:"` + f.Tag.Get("json") + `"`)})
			b.bodyFields = append(b.bodyFields, i)
		case tag == "id" && d == restDialect:
			b.places = append(b.places, place{field: i, where: "id", name: "id"})
		case tag == "body" && d == apiDialect:
			b.whole = i
		default:
			if f.Type.Kind() != reflect.String {
				panic(fmt.Sprintf("api: %s.%s: a parameter outside the body must be a string", t, f.Name))
			}
			var first *place
			alts := strings.Split(tag, "|")
			for j := len(alts) - 1; j >= 0; j-- {
				where, name, ok := strings.Cut(alts[j], "=")
				if !ok || (where != "path" && where != "query" && where != "header") || (where == "path" && d == restDialect) || (len(alts) > 1 && d == restDialect) {
					panic(fmt.Sprintf("api: %s.%s: bad %s tag %q", t, f.Name, key, tag))
				}
				first = &place{field: i, where: where, name: name, or: first}
			}
			b.places = append(b.places, *first)
		}
	}
	if b.whole >= 0 && len(bodyFields) > 0 {
		panic(fmt.Sprintf("api: %s: an api:\"body\" field and body fields", t))
	}
	if len(bodyFields) > 0 {
		b.body = reflect.StructOf(bodyFields)
	}
	return b
}

// hasBody reports whether requests of this binding carry a body.
func (b *binding) hasBody() bool { return b.body != nil || b.whole >= 0 }

// encodeBody is the body of in (a *In), or nil for none.
func (b *binding) encodeBody(in any) any {
	v := reflect.ValueOf(in).Elem()
	if b.whole >= 0 {
		return v.Field(b.whole).Interface()
	}
	if b.body == nil {
		return nil
	}
	body := reflect.New(b.body).Elem()
	for i, f := range b.bodyFields {
		body.Field(i).Set(v.Field(f))
	}
	return body.Addr().Interface()
}

// bodyTarget is what a request's body decodes into, and a function that
// then copies it into in (a *In).
func (b *binding) bodyTarget(in any) (target any, apply func()) {
	v := reflect.ValueOf(in).Elem()
	if b.whole >= 0 {
		return v.Field(b.whole).Addr().Interface(), func() {}
	}
	if b.body == nil {
		return nil, func() {}
	}
	body := reflect.New(b.body)
	return body.Interface(), func() {
		for i, f := range b.bodyFields {
			v.Field(f).Set(body.Elem().Field(i))
		}
	}
}

// setPlaced sets in's located fields with get(where, name), which
// reports whether the request has the parameter at all.
func (b *binding) setPlaced(in any, get func(where, name string) (string, bool)) {
	v := reflect.ValueOf(in).Elem()
	for _, p := range b.places {
		for alt := &p; alt != nil; alt = alt.or {
			if value, ok := get(alt.where, alt.name); ok {
				v.Field(p.field).SetString(value)
				break
			}
		}
	}
}

// placed calls fn for each located field of in with its value.
func (b *binding) placed(in any, fn func(where, name, value string)) {
	v := reflect.ValueOf(in).Elem()
	for _, p := range b.places {
		fn(p.where, p.name, v.Field(p.field).String())
	}
}

// RestRequest is how a client sends an operation over /rest.
type RestRequest struct {
	Method string
	// Path is the escaped path.
	Path  string
	Query url.Values
	// Body is the value to send as JSON, or nil.
	Body any
}

// EncodeRest spells op with input in (a *In) as a /rest request.
func EncodeRest(op Operation, in any) RestRequest {
	b := op.binding(restDialect)
	r := op.Rest()
	q := url.Values{}
	if r.Action != "" {
		q.Set(actionParam, r.Action)
	}
	if r.Has != "" {
		q.Set(r.Has, "")
	}
	var id string
	b.placed(in, func(where, name, value string) {
		switch where {
		case "id":
			id = value
		case "query":
			if value != "" || name == r.Has {
				q.Set(name, value)
			}
		}
	})
	path := r.Path
	if !strings.HasPrefix(path, "/") {
		path = restPrefix + "/" + path
	}
	if strings.HasSuffix(path, "/{id}") {
		path = strings.TrimSuffix(path, "{id}") + "id:" + escapeSegment(id)
	}
	return RestRequest{Method: r.Method, Path: path, Query: q, Body: b.encodeBody(in)}
}
