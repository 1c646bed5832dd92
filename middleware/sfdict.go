// A parser and serializer for Structured Field Dictionaries (RFC 9651,
// which obsoletes RFC 8941), the syntax of targeted cache-control fields
// (RFC 9213).

package middleware

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// sfKind is the type of a structured-field bare item.
type sfKind uint8

const (
	sfBoolean sfKind = iota + 1 // Int is 0 or 1
	sfInteger                   // Int
	sfDecimal                   // Int is the value in thousandths
	sfString                    // Str
	sfToken                     // Str
	sfBytes                     // Str holds the decoded bytes
	sfDate                      // Int is seconds since the epoch
	sfDisplay                   // Str holds the decoded UTF-8 text
)

// sfBare is a bare item. Every value it holds is one a parser can produce,
// so it serializes and parses back to itself.
type sfBare struct {
	Kind sfKind
	Int  int64
	Str  string
}

// sfParam is one parameter of an item or inner list.
type sfParam struct {
	Key   string
	Value sfBare
}

// sfItem is an item: a bare item with parameters.
type sfItem struct {
	Value  sfBare
	Params []sfParam
}

// sfMember is one dictionary member: an item, or an inner list (Inner is
// then non-nil, possibly empty) with the inner list's parameters in
// Item.Params.
type sfMember struct {
	Key     string
	Item    sfItem
	Inner   []sfItem
	IsInner bool
}

// sfDict is a parsed dictionary: its members in order, keys unique (a key
// given twice keeps the first position and the last value, RFC 9651
// §4.2.2).
type sfDict []sfMember

// maxSFBytes bounds the field value parseSFDict accepts: a longer one is an
// error, so that parsing allocates at most a few times this much.
const maxSFBytes = 8 << 10

var errSF = errors.New("middleware: invalid structured field")

// parseSFDict parses the field lines of a Dictionary field, combined as
// one comma-separated value (RFC 9651 §4.2). It returns an error for any
// syntax error (the whole field is then invalid) and for a value longer
// than maxSFBytes. An empty value parses as an empty dictionary.
func parseSFDict(lines []string) (sfDict, error) {
	n := 0
	for _, l := range lines {
		n += len(l) + 2
	}
	if n > maxSFBytes+2 {
		return nil, errSF
	}
	s := strings.Join(lines, ", ")
	p := sfParser{s: strings.TrimLeft(s, " ")}
	// Every value line is trimmed of SP on both sides before combining
	// (RFC 9651 §4.2): combining lines leaves no trailing SP inside.
	p.s = strings.TrimRight(p.s, " ")
	d, err := p.dict()
	if err != nil {
		return nil, err
	}
	return d, nil
}

// sfParser holds the unparsed rest of the input.
type sfParser struct{ s string }

func (p *sfParser) peek() byte {
	if p.s == "" {
		return 0
	}
	return p.s[0]
}

func (p *sfParser) skipSP() { p.s = strings.TrimLeft(p.s, " ") }

func (p *sfParser) skipOWS() { p.s = strings.TrimLeft(p.s, " \t") }

// dict parses a Dictionary (RFC 9651 §4.2.2).
func (p *sfParser) dict() (sfDict, error) {
	var d sfDict
	for p.s != "" {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var m sfMember
		m.Key = key
		if p.peek() == '=' {
			p.s = p.s[1:]
			if m, err = p.itemOrInner(key); err != nil {
				return nil, err
			}
		} else {
			m.Item.Value = sfBare{Kind: sfBoolean, Int: 1}
			if m.Item.Params, err = p.params(); err != nil {
				return nil, err
			}
		}
		d = d.set(m)
		p.skipOWS()
		if p.s == "" {
			return d, nil
		}
		if p.s[0] != ',' {
			return nil, errSF
		}
		p.s = p.s[1:]
		p.skipOWS()
		if p.s == "" {
			return nil, errSF // trailing comma
		}
	}
	return d, nil
}

// set stores m, overwriting the value of a member with the same key in
// place.
func (d sfDict) set(m sfMember) sfDict {
	for i := range d {
		if d[i].Key == m.Key {
			d[i] = m
			return d
		}
	}
	return append(d, m)
}

// itemOrInner parses the value of a member: an inner list or an item.
func (p *sfParser) itemOrInner(key string) (sfMember, error) {
	m := sfMember{Key: key}
	if p.peek() != '(' {
		it, err := p.item()
		m.Item = it
		return m, err
	}
	p.s = p.s[1:]
	m.IsInner = true
	m.Inner = []sfItem{}
	for {
		p.skipSP()
		if p.s == "" {
			return m, errSF
		}
		if p.s[0] == ')' {
			p.s = p.s[1:]
			var err error
			m.Item.Params, err = p.params()
			return m, err
		}
		it, err := p.item()
		if err != nil {
			return m, err
		}
		m.Inner = append(m.Inner, it)
		if c := p.peek(); c != ' ' && c != ')' {
			return m, errSF
		}
	}
}

// item parses an Item: a bare item and its parameters.
func (p *sfParser) item() (sfItem, error) {
	v, err := p.bare()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.params()
	return sfItem{Value: v, Params: params}, err
}

// params parses Parameters; a key given twice keeps its first position and
// its last value.
func (p *sfParser) params() ([]sfParam, error) {
	var params []sfParam
	for p.peek() == ';' {
		p.s = p.s[1:]
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		v := sfBare{Kind: sfBoolean, Int: 1}
		if p.peek() == '=' {
			p.s = p.s[1:]
			if v, err = p.bare(); err != nil {
				return nil, err
			}
		}
		found := false
		for i := range params {
			if params[i].Key == key {
				params[i].Value, found = v, true
			}
		}
		if !found {
			params = append(params, sfParam{Key: key, Value: v})
		}
	}
	return params, nil
}

// key parses a Key: lcalpha or "*", then lcalpha, DIGIT, "_", "-", "." or
// "*".
func (p *sfParser) key() (string, error) {
	if c := p.peek(); !(c >= 'a' && c <= 'z' || c == '*') {
		return "", errSF
	}
	i := 1
	for i < len(p.s) && isKeyChar(p.s[i]) {
		i++
	}
	key := p.s[:i]
	p.s = p.s[i:]
	return key, nil
}

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*'
}

// bare parses a Bare Item.
func (p *sfParser) bare() (sfBare, error) {
	switch c := p.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		s, err := p.str()
		return sfBare{Kind: sfString, Str: s}, err
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return p.token(), nil
	case c == ':':
		return p.bytes()
	case c == '?':
		if len(p.s) < 2 || p.s[1] != '0' && p.s[1] != '1' {
			return sfBare{}, errSF
		}
		v := sfBare{Kind: sfBoolean, Int: int64(p.s[1] - '0')}
		p.s = p.s[2:]
		return v, nil
	case c == '@':
		p.s = p.s[1:]
		v, err := p.number()
		if err != nil || v.Kind != sfInteger {
			return sfBare{}, errSF
		}
		return sfBare{Kind: sfDate, Int: v.Int}, nil
	case c == '%':
		return p.display()
	}
	return sfBare{}, errSF
}

// number parses an Integer or Decimal (RFC 9651 §4.2.4).
func (p *sfParser) number() (sfBare, error) {
	neg := p.peek() == '-'
	if neg {
		p.s = p.s[1:]
	}
	if c := p.peek(); c < '0' || c > '9' {
		return sfBare{}, errSF
	}
	i, dot := 0, -1
	for ; i < len(p.s); i++ {
		c := p.s[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && dot < 0:
			if i > 12 {
				return sfBare{}, errSF
			}
			dot = i
		default:
			goto done
		}
		if dot < 0 && i+1 > 15 || dot >= 0 && i+1 > 16 {
			return sfBare{}, errSF
		}
	}
done:
	num := p.s[:i]
	p.s = p.s[i:]
	sign := int64(1)
	if neg {
		sign = -1
	}
	if dot < 0 {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return sfBare{}, errSF
		}
		return sfBare{Kind: sfInteger, Int: sign * n}, nil
	}
	frac := num[dot+1:]
	if frac == "" || len(frac) > 3 {
		return sfBare{}, errSF
	}
	whole, err := strconv.ParseInt(num[:dot], 10, 64)
	if err != nil {
		return sfBare{}, errSF
	}
	f, err := strconv.ParseInt(frac+"000"[len(frac):], 10, 64)
	if err != nil {
		return sfBare{}, errSF
	}
	return sfBare{Kind: sfDecimal, Int: sign * (whole*1000 + f)}, nil
}

// str parses a String: printable ASCII, with \" and \\ the only escapes.
func (p *sfParser) str() (string, error) {
	var b []byte // only once an escape was seen
	for i := 1; i < len(p.s); i++ {
		switch c := p.s[i]; {
		case c == '"':
			s := p.s[1:i]
			if b != nil {
				s = string(b)
			}
			p.s = p.s[i+1:]
			return s, nil
		case c == '\\':
			if i+1 >= len(p.s) || p.s[i+1] != '"' && p.s[i+1] != '\\' {
				return "", errSF
			}
			if b == nil {
				b = append(make([]byte, 0, len(p.s)), p.s[1:i]...)
			}
			i++
			b = append(b, p.s[i])
		case c < 0x20 || c > 0x7e:
			return "", errSF
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", errSF
}

// token parses a Token: ALPHA or "*", then tchar, ":" or "/".
func (p *sfParser) token() sfBare {
	i := 1
	for i < len(p.s) && (isTchar(p.s[i]) || p.s[i] == ':' || p.s[i] == '/') {
		i++
	}
	v := sfBare{Kind: sfToken, Str: p.s[:i]}
	p.s = p.s[i:]
	return v
}

// bytes parses a Byte Sequence. Padding is required and its bits must be
// zero (RFC 9651 §4.2.7 lets a parser fail there), so that every accepted
// value has one serialization.
func (p *sfParser) bytes() (sfBare, error) {
	end := strings.IndexByte(p.s[1:], ':')
	if end < 0 {
		return sfBare{}, errSF
	}
	enc := p.s[1 : 1+end]
	for i := range len(enc) {
		c := enc[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return sfBare{}, errSF
		}
	}
	dec, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return sfBare{}, errSF
	}
	p.s = p.s[2+end:]
	return sfBare{Kind: sfBytes, Str: string(dec)}, nil
}

// display parses a Display String: %"...", printable ASCII with lower-case
// %xx escapes, decoding to valid UTF-8.
func (p *sfParser) display() (sfBare, error) {
	if len(p.s) < 2 || p.s[1] != '"' {
		return sfBare{}, errSF
	}
	var b []byte
	for i := 2; i < len(p.s); i++ {
		switch c := p.s[i]; {
		case c == '"':
			p.s = p.s[i+1:]
			if !utf8.Valid(b) {
				return sfBare{}, errSF
			}
			return sfBare{Kind: sfDisplay, Str: string(b)}, nil
		case c == '%':
			if i+2 >= len(p.s) {
				return sfBare{}, errSF
			}
			hi, ok1 := lowerHex(p.s[i+1])
			lo, ok2 := lowerHex(p.s[i+2])
			if !ok1 || !ok2 {
				return sfBare{}, errSF
			}
			b = append(b, hi<<4|lo)
			i += 2
		case c < 0x20 || c > 0x7e:
			return sfBare{}, errSF
		default:
			b = append(b, c)
		}
	}
	return sfBare{}, errSF
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// String serializes d (RFC 9651 §4.1.2); an empty dictionary is "".
func (d sfDict) String() string {
	var b strings.Builder
	for i, m := range d {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Key)
		switch {
		case m.IsInner:
			b.WriteString("=(")
			for j, it := range m.Inner {
				if j > 0 {
					b.WriteByte(' ')
				}
				writeSFItem(&b, it)
			}
			b.WriteByte(')')
			writeSFParams(&b, m.Item.Params)
		case m.Item.Value == sfBare{Kind: sfBoolean, Int: 1}:
			writeSFParams(&b, m.Item.Params)
		default:
			b.WriteByte('=')
			writeSFItem(&b, m.Item)
		}
	}
	return b.String()
}

func writeSFItem(b *strings.Builder, it sfItem) {
	writeSFBare(b, it.Value)
	writeSFParams(b, it.Params)
}

func writeSFParams(b *strings.Builder, params []sfParam) {
	for _, p := range params {
		b.WriteByte(';')
		b.WriteString(p.Key)
		if p.Value != (sfBare{Kind: sfBoolean, Int: 1}) {
			b.WriteByte('=')
			writeSFBare(b, p.Value)
		}
	}
}

func writeSFBare(b *strings.Builder, v sfBare) {
	switch v.Kind {
	case sfBoolean:
		b.WriteString("?" + strconv.FormatInt(v.Int, 10))
	case sfInteger:
		b.WriteString(strconv.FormatInt(v.Int, 10))
	case sfDecimal:
		n := v.Int
		if n < 0 {
			b.WriteByte('-')
			n = -n
		}
		b.WriteString(strconv.FormatInt(n/1000, 10))
		frac := strings.TrimRight(strconv.FormatInt(1000+n%1000, 10)[1:], "0")
		if frac == "" {
			frac = "0"
		}
		b.WriteString("." + frac)
	case sfString:
		b.WriteByte('"')
		for i := range len(v.Str) {
			if c := v.Str[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v.Str[i])
		}
		b.WriteByte('"')
	case sfToken:
		b.WriteString(v.Str)
	case sfBytes:
		b.WriteString(":" + base64.StdEncoding.EncodeToString([]byte(v.Str)) + ":")
	case sfDate:
		b.WriteString("@" + strconv.FormatInt(v.Int, 10))
	case sfDisplay:
		b.WriteString(`%"`)
		const hex = "0123456789abcdef"
		for i := range len(v.Str) {
			c := v.Str[i]
			if c == '%' || c == '"' || c < 0x20 || c > 0x7e {
				b.WriteByte('%')
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
				continue
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
}
