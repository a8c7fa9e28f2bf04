package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"clfs/sessionmgr"
)

// router finds the operation of a request in one dialect. It is built
// from the table, so a route cannot exist without its operation.
//
// Not http.ServeMux: the /api paths …/item/{id}/file and
// …/item/update-session/{id} both match …/item/update-session/file, which
// ServeMux refuses to choose between. Here the route with a literal
// segment where the other has a parameter, first from the left, wins; and
// several operations may share a path, told apart by the action and by
// the presence of a query parameter (Route.Has).
type router struct {
	dialect dialect
	prefix  string // of paths that are not absolute
	routes  []route
}

type route struct {
	op       Operation
	r        Route
	segments []string // of the full path; "{name}" for a parameter
}

func newRouter(d dialect, prefix string, ops []Operation) *router {
	rt := &router{dialect: d, prefix: prefix}
	for _, op := range ops {
		spellings := []Route{op.Rest()}
		if d == apiDialect {
			spellings = op.API()
		}
		for _, r := range spellings {
			p := r.Path
			if !strings.HasPrefix(p, "/") {
				p = prefix + "/" + p
			}
			rt.routes = append(rt.routes, route{op: op, r: r, segments: strings.Split(p, "/")})
		}
	}
	return rt
}

// match is the operation of r and its path parameters, or the error to
// answer: no operation at this path and method (not found), or none with
// this action (invalid argument).
func (rt *router) match(r *http.Request) (Operation, map[string]string, error) {
	segments := strings.Split(r.URL.EscapedPath(), "/")
	for i, s := range segments {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, nil, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("path %q: %v", r.URL.EscapedPath(), err)}
		}
		segments[i] = u
	}
	var best []route // of the most specific path matching
	for _, c := range rt.routes {
		if c.r.Method != r.Method || !c.matches(segments) {
			continue
		}
		switch {
		case best == nil || c.moreSpecific(best[0]):
			best = []route{c}
		case !best[0].moreSpecific(c):
			best = append(best, c)
		}
	}
	if best == nil {
		return nil, nil, &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: fmt.Sprintf("no operation %s %s", r.Method, r.URL.Path)}
	}
	q := r.URL.Query()
	action := q.Get(rt.dialect.actionParam())
	var chosen *route
	for i, c := range best {
		if c.r.Action != action || (c.r.Has != "" && !q.Has(c.r.Has)) {
			continue
		}
		if chosen == nil || (c.r.Has != "" && chosen.r.Has == "") {
			chosen = &best[i]
		}
	}
	if chosen == nil {
		return nil, nil, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("no action %q on %s %s", action, r.Method, r.URL.Path)}
	}
	params := map[string]string{}
	for i, s := range chosen.segments {
		if name, ok := paramName(s); ok {
			params[name] = segments[i]
		}
	}
	return chosen.op, params, nil
}

func (c route) matches(segments []string) bool {
	if len(segments) != len(c.segments) {
		return false
	}
	for i, s := range c.segments {
		if _, ok := paramName(s); ok {
			if segments[i] == "" {
				return false
			}
			continue
		}
		if s != segments[i] {
			return false
		}
	}
	return true
}

// moreSpecific reports whether c has a literal segment where o has a
// parameter, first from the left.
func (c route) moreSpecific(o route) bool {
	for i := range c.segments {
		_, cp := paramName(c.segments[i])
		_, op := paramName(o.segments[i])
		if cp != op {
			return op
		}
	}
	return false
}

func paramName(segment string) (string, bool) {
	if len(segment) > 2 && segment[0] == '{' && segment[len(segment)-1] == '}' {
		return segment[1 : len(segment)-1], true
	}
	return "", false
}

func (d dialect) actionParam() string {
	if d == restDialect {
		return actionParam
	}
	return "action"
}
