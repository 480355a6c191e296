package units

import (
	"fmt"
	"strconv"
	"strings"
)

// This file decodes unit values the way systemd does, independently of the
// encoder, so that tests check a real round trip: word splitting with
// double quotes and C escapes, then specifier expansion (%% only), then,
// for Exec lines, $ expansion ($$ only). Anything else the encoder might
// have let through (a bare %x or $VAR, an unknown escape, text outside
// quotes) is reported as an error, since systemd would change it.

// decodeExec splits an Exec*= value into its prefix flags and arguments.
func decodeExec(v string) (prefix string, argv []string, err error) {
	i := 0
	for i < len(v) && strings.ContainsRune("-+@:!", rune(v[i])) {
		i++
	}
	prefix = v[:i]
	words, err := splitWords(v[i:])
	if err != nil {
		return "", nil, err
	}
	for _, w := range words {
		w, err = expandSpecifiers(w)
		if err != nil {
			return "", nil, err
		}
		w, err = expandDollars(w)
		if err != nil {
			return "", nil, err
		}
		argv = append(argv, w)
	}
	return prefix, argv, nil
}

// decodeEnvironment decodes one Environment= value into name and value.
func decodeEnvironment(v string) (name, value string, err error) {
	words, err := splitWords(v)
	if err != nil {
		return "", "", err
	}
	if len(words) != 1 {
		return "", "", fmt.Errorf("%d words in %q", len(words), v)
	}
	w, err := expandSpecifiers(words[0])
	if err != nil {
		return "", "", err
	}
	name, value, ok := strings.Cut(w, "=")
	if !ok {
		return "", "", fmt.Errorf("no = in %q", w)
	}
	return name, value, nil
}

func splitWords(s string) ([]string, error) {
	var words []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return words, nil
		}
		if s[0] != '"' {
			return nil, fmt.Errorf("unquoted text at %q", s)
		}
		var w strings.Builder
		i := 1
		for ; ; i++ {
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quote")
			}
			c := s[i]
			if c == '"' {
				break
			}
			if c != '\\' {
				w.WriteByte(c)
				continue
			}
			i++
			if i >= len(s) {
				return nil, fmt.Errorf("backslash at end")
			}
			switch s[i] {
			case '\\', '"':
				w.WriteByte(s[i])
			case 'n':
				w.WriteByte('\n')
			case 't':
				w.WriteByte('\t')
			case 'r':
				w.WriteByte('\r')
			case 'x':
				if i+2 >= len(s) {
					return nil, fmt.Errorf("short \\x escape")
				}
				n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil || n == 0 {
					return nil, fmt.Errorf("bad \\x escape %q", s[i:i+3])
				}
				w.WriteByte(byte(n))
				i += 2
			default:
				return nil, fmt.Errorf("unexpected escape \\%c", s[i])
			}
		}
		words = append(words, w.String())
		s = s[i+1:]
		if s != "" && s[0] != ' ' && s[0] != '\t' {
			return nil, fmt.Errorf("no space after a quoted word at %q", s)
		}
	}
}

func expandSpecifiers(s string) (string, error) { return undouble(s, '%') }
func expandDollars(s string) (string, error)    { return undouble(s, '$') }

// undouble replaces cc by c and refuses any other use of c.
func undouble(s string, c byte) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != c {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == c {
			b.WriteByte(c)
			i++
			continue
		}
		return "", fmt.Errorf("%q would be expanded by systemd", s[i:])
	}
	return b.String(), nil
}
