package namesvc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/glob"
)

// PolicyMode is a policy's default: what a request no rule matches gets.
type PolicyMode uint8

// The policy modes.
const (
	// ModeOpen allows what no rule refuses: the name server without a
	// policy, as C.
	ModeOpen PolicyMode = iota
	// ModeFirstOwner is ModeOpen, except that a name registered by one
	// identity (a token's name, else the source IP) may not be
	// registered by another while a registration of it is stored, its
	// linger included, unless an allow rule matches the newcomer.
	ModeFirstOwner
	// ModeDefaultDeny refuses what no allow rule matches.
	ModeDefaultDeny
)

var modeNames = [...]string{"open", "first-owner", "default-deny"}

// String returns the mode as the policy file spells it.
func (m PolicyMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", m)
}

// Op is a set of name-service operations a rule applies to.
type Op uint8

// The operations.
const (
	OpRegister Op = 1 << iota
	OpLookup
	OpSubscribe
	OpAll = OpRegister | OpLookup | OpSubscribe
)

// Rule allows or denies operations on names. Every condition given must
// hold for the rule to match (a condition left empty holds for anyone);
// within one condition, any listed value will do. The first rule that
// matches a request decides.
type Rule struct {
	Allow  bool
	Ops    Op
	Names  []string       // glob patterns ('*' any bytes, '?' one byte); empty: every name
	Groups []string       // glob patterns of the group ("" is the default group); empty: every group
	From   []netip.Prefix // source networks; empty: any source
	Tokens []string       // token names; empty: with or without a token
	// Certs are client certificates, shown over mutual TLS (a verified
	// chain): "NAME" or "cn:NAME" matches the subject common name,
	// "dns:NAME" a DNS subject alternative name, "uri:URI" a URI one;
	// NAME, URI are globs. Empty: with or without a certificate.
	Certs  []string
	Via    []flow.Protocol // transports; empty: any
	Line   int             // line of the policy file, for log lines; 0 if none
	groups []pattern       // compiled Groups
	names  []pattern       // compiled Names
	certs  []certPattern   // compiled Certs
}

// certField is the part of a client certificate a cert pattern matches.
type certField uint8

const (
	certCN certField = iota
	certDNS
	certURI
)

// certPattern is a compiled Rule.Certs entry.
type certPattern struct {
	field certField
	p     pattern
}

// compileCert compiles a Rule.Certs entry.
func compileCert(s string) (certPattern, error) {
	field, v := certCN, s
	if k, rest, ok := strings.Cut(s, ":"); ok {
		switch strings.ToLower(k) {
		case "cn":
			field, v = certCN, rest
		case "dns":
			field, v = certDNS, rest
		case "uri":
			field, v = certURI, rest
		default:
			return certPattern{}, fmt.Errorf("cert %q: want NAME, cn:NAME, dns:NAME or uri:URI", s)
		}
	}
	if v == "" {
		return certPattern{}, fmt.Errorf("cert %q: the name is empty", s)
	}
	return certPattern{field, compilePattern(v)}, nil
}

// match reports whether the certificate c has the name cp asks for.
func (cp certPattern) match(c *x509.Certificate) bool {
	switch cp.field {
	case certCN:
		return c.Subject.CommonName != "" && cp.p.match(c.Subject.CommonName)
	case certDNS:
		return slices.ContainsFunc(c.DNSNames, cp.p.match)
	case certURI:
		for _, u := range c.URIs {
			if cp.p.match(u.String()) {
				return true
			}
		}
	}
	return false
}

// Policy says who may register, look up and subscribe to which names
// (see the package documentation, "Access policy"). A Policy is
// immutable once made; a Server swaps it whole (Server.SetPolicy). A nil
// *Policy is ModeOpen with no rules: the server as without one.
type Policy struct {
	Mode   PolicyMode
	Source string // the file it came from, for log lines

	rules  []Rule
	tokens map[string][sha256.Size]byte // token name → SHA-256 of its secret

	// The index of the rules by name pattern, so that a request looks at
	// the few rules that can match its name: exact names in a map,
	// "prefix*" patterns in a map per prefix length, other globs by their
	// literal prefix, else by their literal suffix, else (both ends wild)
	// in a list.
	exact      map[string][]int32
	prefix     map[string][]int32
	prefixLens []int // distinct lengths of the prefixes, ascending
	anyName    []int32
	preGlobs   map[string][]globRef // by literal prefix
	preLens    []int
	sufGlobs   map[string][]globRef // by literal suffix
	sufLens    []int
	globs      []globRef
	restricts  Op // the operations some rule or the mode can refuse
}

type globRef struct {
	p    pattern
	rule int32
}

// NewPolicy makes a policy of mode with rules and tokens (token name →
// its secret, or "sha256:" and the hex SHA-256 of the secret).
func NewPolicy(mode PolicyMode, rules []Rule, tokens map[string]string) (*Policy, error) {
	p := &Policy{Mode: mode, tokens: map[string][sha256.Size]byte{}}
	for name, secret := range tokens {
		if err := p.addToken(name, secret); err != nil {
			return nil, err
		}
	}
	for _, r := range rules {
		if err := p.addRule(r); err != nil {
			return nil, err
		}
	}
	p.finish()
	return p, nil
}

// Rules returns a copy of the policy's rules.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return nil
	}
	return slices.Clone(p.rules)
}

// Tokens returns the names of the policy's tokens, sorted.
func (p *Policy) Tokens() []string {
	if p == nil {
		return nil
	}
	names := make([]string, 0, len(p.tokens))
	for n := range p.tokens {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// String summarises the policy for log lines.
func (p *Policy) String() string {
	if p == nil {
		return "open (no policy)"
	}
	return fmt.Sprintf("%s, %d rules, %d tokens", p.Mode, len(p.rules), len(p.tokens))
}

// HashToken returns the form of a token's secret a policy file can hold
// instead of the secret: "sha256:" and the hex SHA-256 of secret.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(h[:])
}

func (p *Policy) addToken(name, secret string) error {
	if name == "" || strings.ContainsAny(name, ": \t") {
		return fmt.Errorf("token name %q: want a non-empty name without spaces or ':'", name)
	}
	if _, dup := p.tokens[name]; dup {
		return fmt.Errorf("token %q defined twice", name)
	}
	var h [sha256.Size]byte
	if hx, ok := strings.CutPrefix(secret, "sha256:"); ok {
		b, err := hex.DecodeString(hx)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("token %q: sha256: wants 64 hex digits (stkd --new-token NAME prints a token and its line)", name)
		}
		copy(h[:], b)
	} else {
		if len(secret) < 16 {
			return fmt.Errorf("token %q: a secret of %d bytes is too easy to guess; use 16 or more (e.g. head -c 24 /dev/urandom | base64)", name, len(secret))
		}
		h = sha256.Sum256([]byte(secret))
	}
	p.tokens[name] = h
	return nil
}

func (p *Policy) addRule(r Rule) error {
	if r.Ops == 0 || r.Ops&^OpAll != 0 {
		return fmt.Errorf("rule: operations %#x: want register, lookup, subscribe or all", r.Ops)
	}
	for _, t := range r.Tokens {
		if _, ok := p.tokens[t]; !ok {
			return fmt.Errorf("rule names token %q, which no token line defines", t)
		}
	}
	r.names, r.groups, r.certs = nil, nil, nil
	for _, c := range r.Certs {
		cp, err := compileCert(c)
		if err != nil {
			return fmt.Errorf("rule: %w", err)
		}
		r.certs = append(r.certs, cp)
	}
	for _, n := range r.Names {
		r.names = append(r.names, compilePattern(n))
	}
	for _, g := range r.Groups {
		r.groups = append(r.groups, compilePattern(g))
	}
	i := int32(len(p.rules))
	p.rules = append(p.rules, r)
	if p.exact == nil {
		p.exact, p.prefix = map[string][]int32{}, map[string][]int32{}
		p.preGlobs, p.sufGlobs = map[string][]globRef{}, map[string][]globRef{}
	}
	addLen := func(lens []int, n int) []int {
		if !slices.Contains(lens, n) {
			lens = append(lens, n)
		}
		return lens
	}
	if len(r.names) == 0 {
		p.anyName = append(p.anyName, i)
	}
	for _, n := range r.names {
		switch n.kind {
		case patExact:
			p.exact[n.s] = append(p.exact[n.s], i)
		case patAny:
			p.anyName = append(p.anyName, i)
		case patPrefix:
			p.prefixLens = addLen(p.prefixLens, len(n.s))
			p.prefix[n.s] = append(p.prefix[n.s], i)
		default:
			pre := n.s[:strings.IndexAny(n.s, "*?")]
			suf := n.s[strings.LastIndexAny(n.s, "*?")+1:]
			switch {
			case pre != "":
				p.preLens = addLen(p.preLens, len(pre))
				p.preGlobs[pre] = append(p.preGlobs[pre], globRef{n, i})
			case suf != "":
				p.sufLens = addLen(p.sufLens, len(suf))
				p.sufGlobs[suf] = append(p.sufGlobs[suf], globRef{n, i})
			default:
				p.globs = append(p.globs, globRef{n, i})
			}
		}
	}
	if !r.Allow {
		p.restricts |= r.Ops
	}
	return nil
}

func (p *Policy) finish() {
	slices.Sort(p.prefixLens)
	slices.Sort(p.preLens)
	slices.Sort(p.sufLens)
	switch p.Mode {
	case ModeDefaultDeny:
		p.restricts = OpAll
	case ModeFirstOwner:
		p.restricts |= OpRegister
	}
}

// identity is who a request comes from: a token's name (set once the
// connection or datagram source showed that token), the client
// certificate verified over mutual TLS, and the source IP.
type identity struct {
	token string
	cert  *x509.Certificate // nil: none (not TLS, or no client certificate)
	// certName names the certificate's owner in an owner identity
	// (owner sets it; cert is then nil, so that owners compare by name).
	certName string
	ip       netip.Addr
}

// owner returns the identity that owns a registration in ModeFirstOwner:
// the token's name, else the client certificate's name (certName), else
// the source IP.
func (w identity) owner() identity {
	switch {
	case w.token != "":
		return identity{token: w.token}
	case w.cert != nil:
		return identity{certName: certName(w.cert)}
	}
	return identity{ip: w.ip}
}

// certName names a client certificate: "cn:" and its subject common name,
// else its first DNS or URI alternative name, else its SHA-256.
func certName(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return "cn:" + c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return "dns:" + c.DNSNames[0]
	case len(c.URIs) > 0:
		return "uri:" + c.URIs[0].String()
	}
	h := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(h[:])
}

func (w identity) String() string {
	s := w.ip.String()
	if w.cert != nil {
		s = "cert " + certName(w.cert) + " from " + s
	}
	if w.token != "" {
		s = "token " + w.token + ", " + s
	}
	return s
}

// decision is what a policy says of a request.
type decision struct {
	allow    bool
	explicit bool // a rule said so (else the mode did)
	line     int  // the rule's line, if explicit
}

// decide says whether who may do op on name in group over proto: the
// first rule (in file order) that matches decides; with none matching,
// the mode does. It looks only at the rules indexed under the name: a map
// lookup for exact names, one per prefix length for "prefix*" patterns
// and for globs with a literal prefix or suffix, and the globs wild at
// both ends in a list. Each index list is in rule order, so it is left at
// the first rule past the best match so far.
func (p *Policy) decide(op Op, name, group string, who identity, proto flow.Protocol) decision {
	if p == nil || p.restricts&op == 0 {
		// Nothing can refuse op (an explicit allow matters only where
		// the mode or a deny rule could refuse).
		return decision{allow: true}
	}
	best := int32(len(p.rules))
	try := func(i int32) bool { // false: past the best match, stop this list
		if i >= best {
			return false
		}
		if r := &p.rules[i]; r.Ops&op != 0 && r.matchWho(group, who, proto) {
			best = i
		}
		return true
	}
	check := func(rules []int32) {
		for _, i := range rules {
			if !try(i) {
				return
			}
		}
	}
	globs := func(gs []globRef) {
		for _, g := range gs {
			if g.rule >= best {
				return
			}
			if g.p.match(name) {
				try(g.rule)
			}
		}
	}
	check(p.exact[name])
	check(p.anyName)
	for _, n := range p.prefixLens {
		if n > len(name) {
			break
		}
		check(p.prefix[name[:n]])
	}
	for _, n := range p.preLens {
		if n > len(name) {
			break
		}
		globs(p.preGlobs[name[:n]])
	}
	for _, n := range p.sufLens {
		if n > len(name) {
			break
		}
		globs(p.sufGlobs[name[len(name)-n:]])
	}
	globs(p.globs)
	if best < int32(len(p.rules)) {
		r := &p.rules[best]
		return decision{allow: r.Allow, explicit: true, line: r.Line}
	}
	return decision{allow: p.Mode != ModeDefaultDeny}
}

func (r *Rule) matchWho(group string, who identity, proto flow.Protocol) bool {
	if len(r.Via) > 0 && !slices.Contains(r.Via, proto) {
		return false
	}
	if len(r.Tokens) > 0 && (who.token == "" || !slices.Contains(r.Tokens, who.token)) {
		return false
	}
	if len(r.certs) > 0 {
		if who.cert == nil || !slices.ContainsFunc(r.certs, func(cp certPattern) bool { return cp.match(who.cert) }) {
			return false
		}
	}
	if len(r.From) > 0 {
		ok := false
		ip := who.ip.Unmap()
		for _, pf := range r.From {
			if pf.Contains(ip) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.groups) > 0 {
		ok := false
		for _, g := range r.groups {
			if g.match(group) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// verifyToken checks a token "NAME:SECRET" and returns its name and the
// SHA-256 of its secret. The secret is compared in constant time, and an
// unknown name costs the same hash and comparison.
func (p *Policy) verifyToken(tok []byte) (string, [sha256.Size]byte, bool) {
	name, secret, _ := bytes.Cut(tok, []byte{':'})
	h := sha256.Sum256(secret)
	if p == nil {
		return "", h, false
	}
	want, known := p.tokens[string(name)]
	ok := subtle.ConstantTimeCompare(h[:], want[:]) == 1
	if !known || !ok {
		return "", h, false
	}
	return string(name), h, true
}

// stillValid reports whether a token name with secret hash h is still one
// of p's tokens (after a reload).
func (p *Policy) stillValid(name string, h [sha256.Size]byte) bool {
	if p == nil {
		return false
	}
	want, ok := p.tokens[name]
	return ok && subtle.ConstantTimeCompare(h[:], want[:]) == 1
}

// A pattern is a compiled glob: '*' matches any bytes, '?' one byte,
// everything else itself.
type pattern struct {
	kind patKind
	s    string // patExact: the name; patPrefix: the prefix; patGlob: the glob
}

type patKind uint8

const (
	patExact  patKind = iota
	patPrefix         // "prefix*"
	patAny            // "*"
	patGlob
)

func compilePattern(s string) pattern {
	switch i := strings.IndexAny(s, "*?"); {
	case i < 0:
		return pattern{patExact, s}
	case s == "*":
		return pattern{patAny, ""}
	case i == len(s)-1 && s[i] == '*':
		return pattern{patPrefix, s[:i]}
	}
	return pattern{patGlob, s}
}

func (p pattern) match(s string) bool {
	switch p.kind {
	case patExact:
		return s == p.s
	case patPrefix:
		return strings.HasPrefix(s, p.s)
	case patAny:
		return true
	}
	return glob.Match(p.s, s)
}

// LoadPolicy reads a policy file (see ParsePolicy).
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	return ParsePolicy(f, path)
}

// ParsePolicy reads a policy in the line format of the package
// documentation ("Access policy"); source names it in errors. Every
// error is reported, each with its line.
func ParsePolicy(r io.Reader, source string) (*Policy, error) {
	p := &Policy{Source: source, tokens: map[string][sha256.Size]byte{}}
	type pending struct {
		r    Rule
		line int
	}
	var rules []pending
	var errs []error
	bad := func(n int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: "+format, append([]any{source, n}, args...)...))
	}
	modeLine := 0
	sc := bufio.NewScanner(io.LimitReader(r, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToLower(f[0]) {
		case "mode":
			if len(f) != 2 {
				bad(n, "want \"mode open|first-owner|default-deny\"")
				continue
			}
			if modeLine != 0 {
				bad(n, "a second mode line (the first is line %d)", modeLine)
				continue
			}
			modeLine = n
			i := slices.Index(modeNames[:], strings.ToLower(f[1]))
			if i < 0 {
				bad(n, "mode %q: want open, first-owner or default-deny", f[1])
				continue
			}
			p.Mode = PolicyMode(i)
		case "token":
			if len(f) != 3 {
				bad(n, "want \"token NAME SECRET\" or \"token NAME sha256:HEX\"")
				continue
			}
			if err := p.addToken(f[1], f[2]); err != nil {
				bad(n, "%v", err)
			}
		case "allow", "deny":
			r, err := parseRule(f)
			if err != nil {
				bad(n, "%v", err)
				continue
			}
			r.Line = n
			rules = append(rules, pending{r, n})
		default:
			bad(n, "unknown keyword %q: want mode, token, allow or deny", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", source, err))
	}
	for _, pr := range rules { // after the tokens, wherever they are
		if err := p.addRule(pr.r); err != nil {
			bad(pr.line, "%v", err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.finish()
	return p, nil
}

const ruleSyntax = "want \"allow|deny OPS NAMES [group GROUPS] [from CIDRS] [token NAMES] [cert [cn:|dns:|uri:]NAMES] [via tcp,udp,multicast]\", OPS register,lookup,subscribe or all"

// parseRule parses "allow|deny OPS NAMES [group G,..] [from CIDR,..]
// [token T,..] [cert C,..] [via P,..]"; lists are comma-separated.
func parseRule(f []string) (Rule, error) {
	var r Rule
	r.Allow = strings.EqualFold(f[0], "allow")
	if len(f) < 3 || len(f)%2 == 0 {
		return r, errors.New(ruleSyntax)
	}
	for _, o := range strings.Split(f[1], ",") {
		switch strings.ToLower(o) {
		case "register":
			r.Ops |= OpRegister
		case "lookup":
			r.Ops |= OpLookup
		case "subscribe":
			r.Ops |= OpSubscribe
		case "all", "*":
			r.Ops |= OpAll
		default:
			return r, fmt.Errorf("operation %q: %s", o, ruleSyntax)
		}
	}
	r.Names = splitList(f[2])
	if slices.Contains(r.Names, "*") {
		r.Names = nil
	}
	seen := map[string]bool{}
	for i := 3; i < len(f); i += 2 {
		key, val := strings.ToLower(f[i]), f[i+1]
		if seen[key] {
			return r, fmt.Errorf("%q given twice; list the values comma-separated", key)
		}
		seen[key] = true
		switch key {
		case "group":
			r.Groups = splitList(val)
			for j, g := range r.Groups {
				if g == `""` || g == "-" {
					r.Groups[j] = "" // the default group
				}
			}
		case "from":
			for _, s := range splitList(val) {
				pf, err := netip.ParsePrefix(s)
				if err != nil {
					a, err2 := netip.ParseAddr(s)
					if err2 != nil {
						return r, fmt.Errorf("from %q: want a network such as 10.0.0.0/8 or an address", s)
					}
					pf = netip.PrefixFrom(a, a.BitLen())
				}
				r.From = append(r.From, pf.Masked())
			}
		case "token":
			r.Tokens = splitList(val)
		case "cert":
			r.Certs = splitList(val)
			for _, c := range r.Certs {
				if _, err := compileCert(c); err != nil {
					return r, err
				}
			}
		case "via":
			for _, s := range splitList(val) {
				pr, err := flow.ParseProtocol(s)
				if err != nil || pr != flow.TCP && pr != flow.UDP && pr != flow.Multicast {
					return r, fmt.Errorf("via %q: want tcp, udp or multicast", s)
				}
				r.Via = append(r.Via, pr)
			}
		default:
			return r, fmt.Errorf("%q: %s", f[i], ruleSyntax)
		}
	}
	return r, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
