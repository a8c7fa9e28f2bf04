// Package soap is the govc SOAP endpoint (/sdk) of the HTTPS API.
package soap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"text/template"
	"time"
)

// The /sdk stub: the smallest part of the vSphere Web Services API (vim25
// SOAP) that govc needs before it will run the library commands clfs
// serves over /rest.
//
// govc's library.info and library.import, and govc about, open a vim25
// client besides the /rest one (cli/flags ClientFlag.Client, through
// session/cache.Session.Login). library.import uses it only to open
// remote (http) sources; library.info hands it to a path finder that
// reads a Datastore's name for -l and -L on a library with storage
// backings, a call the stub refuses (ManagedObjectNotFound). So the stub
// answers exactly the calls of that login and its session cache, and
// refuses everything else with a fault naming the method:
//
//	RetrieveServiceContent   vim25.NewClient, at every new login; needs no session
//	Login                    cache.Session's loginSOAP, when GOVC_URL names a user
//	RetrievePropertiesEx     session.Manager.UserSession, when a cached session is
//	                         checked (GOVC_PERSIST_SESSION unset or true, the
//	                         default); SessionManager's currentSession only
//	Logout                   cli.Run's logout, with GOVC_PERSIST_SESSION=false
//	GET vimServiceVersions.xml  soap.Client.UseServiceVersion: govc -vim-version=-
//	                         and govc session.login
//
// # Sessions
//
// A login is a session of the REST server's store (Sessions), so one
// store, one expiry and one logout serve both front ends. The token goes
// to the client as the vmware_soap_session cookie, the name govmomi keeps
// and sends back (soap.SessionCookieName). A session's currentSession.key
// is a digest of the token, not the token: govc prints keys (session.ls)
// and the cookie is the credential.
//
// # Faults
//
// Every refusal is a vim25 fault whose detail carries the fault type as
// xsi:type, which is what govmomi's fault.Is matches: InvalidLogin for a
// wrong user or password, NotAuthenticated for a missing, unknown or
// expired session (govmomi's UserSession reads it as "no session", which
// makes govc log in again), MethodNotFound for a call not served,
// ManagedObjectNotFound for a call on an object the stub does not have,
// InvalidRequest for a body that is not a vim25 SOAP call. Faults go out
// with HTTP status 500, as SOAP 1.1 (§6.2) has it: govmomi reads a fault
// from a 500's body and takes any other non-200 status as a transport error.

// ErrBadLogin is the one answer to a wrong user name or password: which
// of the two was wrong is not told.
var ErrBadLogin = errors.New("incorrect user name or password")

// Sessions is what the /sdk stub needs from the API's login sessions
// (implemented by the REST server's login store, shared so one login
// serves both).
type Sessions interface {
	Login(user, password string) (token string, err error)                       // a wrong user/password returns an error wrapping ErrBadLogin
	Lookup(token string) (user string, created, lastAccessed time.Time, ok bool) // ok=false: unknown or expired; a hit refreshes lastAccessed
	Logout(token string)
}

const (
	// soapMaxBody bounds a request body. govc's largest call here, a
	// Login, is well under a kilobyte.
	soapMaxBody = 1 << 20

	soapEnvNS = "http://schemas.xmlsoap.org/soap/envelope/"
	vim25NS   = "urn:vim25"

	// soapAPIVersion is the vim25 version the stub claims: vSphere 8.0U3,
	// whose vCenter still serves the /rest form clfs implements. govc
	// sends its own version in SOAPAction, which the stub does not check.
	soapAPIVersion = "8.0.3.0"

	// soapSessionCookie is soap.SessionCookieName in govmomi.
	soapSessionCookie = "vmware_soap_session"
)

// moRef is a vim25 ManagedObjectReference.
type moRef struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

func (r moRef) String() string { return r.Type + ":" + r.Value }

// The stub's managed objects, with vCenter's own values, so that govc's
// debug traces and session cache read as they would against vCenter. The
// root folder is in ServiceContent because the field is required; no call
// on it is served.
var (
	serviceInstanceRef   = moRef{Type: "ServiceInstance", Value: "ServiceInstance"}
	sessionManagerRef    = moRef{Type: "SessionManager", Value: "SessionManager"}
	propertyCollectorRef = moRef{Type: "PropertyCollector", Value: "propertyCollector"}
	rootFolderRef        = moRef{Type: "Folder", Value: "group-d1"}
)

type soapHandler struct {
	sessions Sessions
	log      *slog.Logger
}

// NewHandler serves everything under /sdk: register it for both
// "/sdk" and "/sdk/". It sees full request paths, not paths with the
// prefix stripped.
func NewHandler(sessions Sessions, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return &soapHandler{sessions: sessions, log: log}
}

func (h *soapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/sdk":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "vim25 SOAP calls are POSTs", http.StatusMethodNotAllowed)
			return
		}
		h.serveCall(w, r)
	case "/sdk/vimServiceVersions.xml":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		io.WriteString(w, serviceVersionsXML)
	default:
		http.NotFound(w, r)
	}
}

// serviceVersionsXML is what soap.Client.UseServiceVersion reads: the
// namespace>name and namespace>version of the first namespace.
const serviceVersionsXML = xml.Header + `<namespaces version="1.0">
 <namespace>
  <name>` + vim25NS + `</name>
  <version>` + soapAPIVersion + `</version>
  <priorVersions>
   <version>8.0.2.0</version>
   <version>8.0.1.0</version>
   <version>8.0.0.0</version>
  </priorVersions>
 </namespace>
</namespaces>
`

// serveCall answers one SOAP call: a response, or a fault.
func (h *soapHandler) serveCall(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, soapMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, r, "", invalidRequest(fmt.Sprintf("request body is over %d bytes", soapMaxBody)))
			return
		}
		h.fail(w, r, "", invalidRequest("reading the request: "+err.Error()))
		return
	}
	call, err := parseCall(body)
	if err != nil {
		h.fail(w, r, "", invalidRequest("not a vim25 SOAP call: "+err.Error()))
		return
	}
	var res string
	var f *soapFault
	switch {
	case call.name.Space != vim25NS:
		f = h.unknown(call)
	case call.name.Local == "RetrieveServiceContent":
		res, f = h.retrieveServiceContent(call)
	case call.name.Local == "Login":
		res, f = h.login(w, r, call)
	case call.name.Local == "RetrievePropertiesEx":
		res, f = h.retrievePropertiesEx(r, call)
	case call.name.Local == "Logout":
		res, f = h.logout(w, r, call)
	default:
		f = h.unknown(call)
	}
	if f != nil {
		h.fail(w, r, call.name.Local, f)
		return
	}
	h.log.Debug("soap call", "method", call.name.Local)
	writeSOAP(w, http.StatusOK, res)
}

// ---- parsing

// soapCall is a request's method element, with the decoder left at it so
// that each method decodes only the arguments it takes. What follows the
// element in the body is not read.
type soapCall struct {
	name  xml.Name
	dec   *xml.Decoder
	start xml.StartElement
}

// args decodes the call's arguments into v; it may be called once.
func (c *soapCall) args(v any) error {
	if err := c.dec.DecodeElement(v, &c.start); err != nil {
		return fmt.Errorf("%s arguments: %w", c.name.Local, err)
	}
	return nil
}

var errElementEnd = errors.New("element ended")

// parseCall finds the first element of a SOAP 1.1 Envelope's Body,
// skipping a Header: the stub honours no header, as the vim25 calls it
// serves need none.
func parseCall(body []byte) (*soapCall, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	env, err := nextChild(dec)
	if err != nil {
		return nil, err
	}
	if env.Name != (xml.Name{Space: soapEnvNS, Local: "Envelope"}) {
		return nil, fmt.Errorf("root element is %s, not a SOAP 1.1 Envelope", fmtName(env.Name))
	}
	for {
		el, err := nextChild(dec)
		if err != nil {
			return nil, fmt.Errorf("no Body: %w", err)
		}
		if el.Name == (xml.Name{Space: soapEnvNS, Local: "Body"}) {
			break
		}
		if err := dec.Skip(); err != nil {
			return nil, err
		}
	}
	method, err := nextChild(dec)
	if err != nil {
		return nil, fmt.Errorf("no call in the Body: %w", err)
	}
	return &soapCall{name: method.Name, dec: dec, start: method}, nil
}

// nextChild returns the next element inside the one dec is in, passing
// over text and comments; errElementEnd when that element ends first.
func nextChild(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, errElementEnd
		}
	}
}

func fmtName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

// ---- methods

func (h *soapHandler) retrieveServiceContent(call *soapCall) (string, *soapFault) {
	var a struct {
		This moRef `xml:"_this"`
	}
	if err := call.args(&a); err != nil {
		return "", invalidRequest(err.Error())
	}
	if a.This != serviceInstanceRef {
		return "", managedObjectNotFound(a.This)
	}
	return render("serviceContent", serviceContent)
}

// serviceContent is the ServiceContent's data; it does not change.
var serviceContent = struct {
	Root, PC, SM moRef
	APIVersion   string
}{rootFolderRef, propertyCollectorRef, sessionManagerRef, soapAPIVersion}

func (h *soapHandler) login(w http.ResponseWriter, r *http.Request, call *soapCall) (string, *soapFault) {
	var a struct {
		This     moRef  `xml:"_this"`
		UserName string `xml:"userName"`
		Password string `xml:"password"`
	}
	if err := call.args(&a); err != nil {
		return "", invalidRequest(err.Error())
	}
	if a.This != sessionManagerRef {
		return "", managedObjectNotFound(a.This)
	}
	token, err := h.sessions.Login(a.UserName, a.Password)
	if errors.Is(err, ErrBadLogin) {
		return "", invalidLogin()
	}
	if err != nil {
		h.log.Error("soap login failed", "user", a.UserName, "err", err)
		return "", systemError("the session store failed; see the server log")
	}
	// A token net/http would have to alter to put in a cookie would come
	// back as a different one; better to refuse the login now.
	if !validCookieValue(token) {
		h.sessions.Logout(token)
		h.log.Error("soap login: session token is not a valid cookie value", "user", a.UserName)
		return "", systemError("the session store made a token that cannot be a cookie")
	}
	user, created, last, ok := h.sessions.Lookup(token)
	if !ok {
		h.log.Error("soap login: new session not found", "user", a.UserName)
		return "", systemError("the new session ended at once")
	}
	http.SetCookie(w, &http.Cookie{
		Name:     soapSessionCookie,
		Value:    token,
		Path:     "/sdk",
		HttpOnly: true,
		// Go's cookie jar keeps a Secure cookie from sending over plain
		// HTTP; only a TLS server can ask for that.
		Secure: r.TLS != nil,
	})
	return render("login", newUserSession(r, token, user, created, last))
}

func (h *soapHandler) retrievePropertiesEx(r *http.Request, call *soapCall) (string, *soapFault) {
	var a struct {
		This    moRef `xml:"_this"`
		SpecSet []struct {
			PropSet []struct {
				Type    string   `xml:"type"`
				All     bool     `xml:"all"`
				PathSet []string `xml:"pathSet"`
			} `xml:"propSet"`
			ObjectSet []struct {
				Obj       moRef    `xml:"obj"`
				Skip      bool     `xml:"skip"`
				SelectSet []string `xml:"selectSet"`
			} `xml:"objectSet"`
		} `xml:"specSet"`
	}
	if err := call.args(&a); err != nil {
		return "", invalidRequest(err.Error())
	}
	token, user, created, last, f := h.session(r, a.This)
	if f != nil {
		return "", f
	}
	if a.This != propertyCollectorRef {
		return "", managedObjectNotFound(a.This)
	}
	// The one property the stub has is SessionManager.currentSession;
	// traversal and "all properties" would promise more than that.
	var report, current bool
	for _, spec := range a.SpecSet {
		for _, o := range spec.ObjectSet {
			if o.Obj != sessionManagerRef {
				return "", managedObjectNotFound(o.Obj)
			}
			if len(o.SelectSet) != 0 {
				return "", notSupported("clfs serves no property collector traversal")
			}
			report = report || !o.Skip
		}
		for _, p := range spec.PropSet {
			if p.Type != sessionManagerRef.Type {
				return "", invalidType(p.Type)
			}
			if p.All {
				return "", notSupported("clfs serves SessionManager.currentSession only, not all properties")
			}
			for _, path := range p.PathSet {
				if path != "currentSession" {
					return "", invalidProperty(path)
				}
				current = true
			}
		}
	}
	if !report {
		return render("retrievePropertiesExEmpty", nil)
	}
	var us *userSession
	if current {
		us = newUserSession(r, token, user, created, last)
	}
	return render("retrievePropertiesEx", us)
}

func (h *soapHandler) logout(w http.ResponseWriter, r *http.Request, call *soapCall) (string, *soapFault) {
	var a struct {
		This moRef `xml:"_this"`
	}
	if err := call.args(&a); err != nil {
		return "", invalidRequest(err.Error())
	}
	token, _, _, _, f := h.session(r, a.This)
	if f != nil {
		return "", f
	}
	if a.This != sessionManagerRef {
		return "", managedObjectNotFound(a.This)
	}
	h.sessions.Logout(token)
	http.SetCookie(w, &http.Cookie{Name: soapSessionCookie, Path: "/sdk", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil})
	return render("logout", nil)
}

func (h *soapHandler) unknown(call *soapCall) *soapFault {
	var a struct {
		This moRef `xml:"_this"`
	}
	// The receiver only makes the fault more precise: a call that does
	// not decode is still an unknown method.
	call.args(&a)
	return methodNotFound(a.This, fmtName(call.name))
}

// session is the caller's login, from its cookie; NotAuthenticated (on
// obj, the call's receiver) when there is none.
func (h *soapHandler) session(r *http.Request, obj moRef) (token, user string, created, last time.Time, f *soapFault) {
	c, err := r.Cookie(soapSessionCookie)
	if err != nil || c.Value == "" {
		return "", "", time.Time{}, time.Time{}, notAuthenticated(obj)
	}
	user, created, last, ok := h.sessions.Lookup(c.Value)
	if !ok {
		return "", "", time.Time{}, time.Time{}, notAuthenticated(obj)
	}
	return c.Value, user, created, last, nil
}

// validCookieValue reports whether net/http sends v as a cookie value
// unchanged: RFC 6265 cookie-octets, and not empty.
func validCookieValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b <= 0x20 || b >= 0x7f || b == '"' || b == ',' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// userSession is a vim25 UserSession. The store keeps neither the client's
// address nor its user agent, so they are the current request's.
type userSession struct {
	Key, UserName         string
	LoginTime, LastActive string
	IPAddress, UserAgent  string
}

func newUserSession(r *http.Request, token, user string, created, last time.Time) *userSession {
	sum := sha256.Sum256([]byte(token))
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return &userSession{
		Key:        hex.EncodeToString(sum[:16]),
		UserName:   user,
		LoginTime:  created.UTC().Format(time.RFC3339Nano),
		LastActive: last.UTC().Format(time.RFC3339Nano),
		IPAddress:  ip,
		UserAgent:  r.UserAgent(),
	}
}

// ---- faults

// soapFault is a vim25 fault: Kind is its type (the detail's xsi:type,
// which is what clients match), Msg the faultstring, Fields the detail's
// elements, already XML.
type soapFault struct {
	Kind, Msg string
	Fields    string
}

func (f *soapFault) String() string { return f.Kind + ": " + f.Msg }

func invalidLogin() *soapFault {
	return &soapFault{Kind: "InvalidLogin", Msg: "Cannot complete login due to an incorrect user name or password."}
}

func notAuthenticated(obj moRef) *soapFault {
	return &soapFault{Kind: "NotAuthenticated", Msg: "The session is not authenticated.",
		Fields: fields("notAuthenticated", obj)}
}

func methodNotFound(receiver moRef, method string) *soapFault {
	return &soapFault{Kind: "MethodNotFound", Msg: "clfs does not serve the vim25 method " + method,
		Fields: fields("methodNotFound", struct {
			Receiver moRef
			Method   string
		}{receiver, method})}
}

func managedObjectNotFound(obj moRef) *soapFault {
	return &soapFault{Kind: "ManagedObjectNotFound", Msg: "The object '" + obj.String() + "' has already been deleted or has not been completely created",
		Fields: fields("managedObjectNotFound", obj)}
}

func invalidProperty(name string) *soapFault {
	return &soapFault{Kind: "InvalidProperty", Msg: "clfs serves no property " + name,
		Fields: fields("invalidProperty", name)}
}

func invalidType(name string) *soapFault {
	return &soapFault{Kind: "InvalidType", Msg: "clfs serves no properties of type " + name,
		Fields: fields("invalidType", name)}
}

func invalidRequest(msg string) *soapFault {
	return &soapFault{Kind: "InvalidRequest", Msg: msg}
}

func notSupported(msg string) *soapFault {
	return &soapFault{Kind: "NotSupported", Msg: msg}
}

func systemError(reason string) *soapFault {
	return &soapFault{Kind: "SystemError", Msg: reason, Fields: fields("systemError", reason)}
}

// fail answers f, and logs it at Debug: faults are the client's business,
// and the ones that are the server's were logged where they arose.
func (h *soapHandler) fail(w http.ResponseWriter, r *http.Request, method string, f *soapFault) {
	h.log.Debug("soap call refused", "method", method, "fault", f.Kind, "msg", f.Msg, "remote", r.RemoteAddr)
	res, _ := render("fault", f)
	writeSOAP(w, http.StatusInternalServerError, res)
}

// ---- responses

func writeSOAP(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, soapHead)
	io.WriteString(w, body)
	io.WriteString(w, soapTail)
}

// The envelope declares xsi, which the responses use for typed values
// (xsi:type="UserSession") and fault details.
const (
	soapHead = xml.Header + `<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="` + soapEnvNS + `" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>
`
	soapTail = `
</soapenv:Body>
</soapenv:Envelope>
`
)

// soapTemplates are the response bodies. Every value is printed through
// x, which escapes it for XML text and attributes alike, save a fault's
// Fields: those are XML, rendered (and escaped) by the templates below.
var soapTemplates = template.Must(template.New("soap").Funcs(template.FuncMap{"x": xmlEscape}).Parse(`
{{- define "serviceContent" -}}
<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval>
<rootFolder type="{{x .Root.Type}}">{{x .Root.Value}}</rootFolder>
<propertyCollector type="{{x .PC.Type}}">{{x .PC.Value}}</propertyCollector>
<about>
<name>clfs</name>
<fullName>clfs content library (vSphere Automation /rest, vim25 stub) build-0</fullName>
<vendor>clfs</vendor>
<version>8.0.3</version>
<build>0</build>
<localeVersion>INTL</localeVersion>
<localeBuild>000</localeBuild>
<osType>linux-x64</osType>
<productLineId>clfs</productLineId>
<apiType>VirtualCenter</apiType>
<apiVersion>{{x .APIVersion}}</apiVersion>
</about>
<sessionManager type="{{x .SM.Type}}">{{x .SM.Value}}</sessionManager>
</returnval></RetrieveServiceContentResponse>
{{- end}}

{{- define "userSession" -}}
<key>{{x .Key}}</key><userName>{{x .UserName}}</userName><fullName>{{x .UserName}}</fullName><loginTime>{{x .LoginTime}}</loginTime><lastActiveTime>{{x .LastActive}}</lastActiveTime><locale>en</locale><messageLocale>en</messageLocale><extensionSession>false</extensionSession><ipAddress>{{x .IPAddress}}</ipAddress><userAgent>{{x .UserAgent}}</userAgent><callCount>0</callCount>
{{- end}}

{{- define "login" -}}
<LoginResponse xmlns="urn:vim25"><returnval>{{template "userSession" .}}</returnval></LoginResponse>
{{- end}}

{{- define "retrievePropertiesEx" -}}
<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="SessionManager">SessionManager</obj>
{{- if .}}<propSet><name>currentSession</name><val xsi:type="UserSession">{{template "userSession" .}}</val></propSet>{{end -}}
</objects></returnval></RetrievePropertiesExResponse>
{{- end}}

{{- define "retrievePropertiesExEmpty" -}}
<RetrievePropertiesExResponse xmlns="urn:vim25"></RetrievePropertiesExResponse>
{{- end}}

{{- define "logout" -}}
<LogoutResponse xmlns="urn:vim25"></LogoutResponse>
{{- end}}

{{- define "fault" -}}
<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{{x .Msg}}</faultstring><detail><{{x .Kind}}Fault xmlns="urn:vim25" xsi:type="{{x .Kind}}">{{.Fields}}</{{x .Kind}}Fault></detail></soapenv:Fault>
{{- end}}

{{- define "notAuthenticated" -}}
<object type="{{x .Type}}">{{x .Value}}</object><privilegeId>System.View</privilegeId>
{{- end}}

{{- define "methodNotFound" -}}
<receiver type="{{x .Receiver.Type}}">{{x .Receiver.Value}}</receiver><method>{{x .Method}}</method>
{{- end}}

{{- define "managedObjectNotFound" -}}
<obj type="{{x .Type}}">{{x .Value}}</obj>
{{- end}}

{{- define "invalidProperty" -}}
<name>{{x .}}</name>
{{- end}}

{{- define "invalidType" -}}
<argument>{{x .}}</argument>
{{- end}}

{{- define "systemError" -}}
<reason>{{x .}}</reason>
{{- end}}
`))

// render executes a response template.
func render(name string, data any) (string, *soapFault) {
	var b strings.Builder
	if err := soapTemplates.ExecuteTemplate(&b, name, data); err != nil {
		// Only a template out of step with its data gets here; a test
		// renders every template.
		return "", &soapFault{Kind: "SystemError", Msg: "rendering " + name + ": " + err.Error()}
	}
	return b.String(), nil
}

// fields renders a fault's detail elements.
func fields(name string, data any) string {
	s, f := render(name, data)
	if f != nil {
		return ""
	}
	return s
}

// xmlEscape makes s safe as XML text or a quoted attribute value. Bytes
// that XML cannot carry (invalid UTF-8, most control characters) become
// U+FFFD.
func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
