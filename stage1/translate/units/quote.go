package units

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// systemd reads a unit file line by line and gives up on the whole file if
// a line reaches LONG_LINE_MAX (1 MiB in systemd 252). Refusing such a line
// here gives a clear error instead of a unit that fails to load in the guest.
const maxLineLen = 1<<20 - 1

// quoteExecArg quotes one argument of an Exec*= line so that systemd hands
// it to execve byte for byte. systemd processes such a line in stages, and
// each stage has its own metacharacters:
//
//   - the unit file parser joins a line ending in a backslash with the next
//     one, and ends a line at a newline or carriage return;
//   - the word splitter honours double quotes and, inside them, C escapes
//     (\" \\ \n \t \xNN ...);
//   - specifier expansion turns %x into unit data, %% into %;
//   - at exec time, $VAR and ${VAR} are replaced from the environment, and
//     $$ becomes $.
//
// So the argument is put in double quotes, with backslash and double quote
// escaped, % doubled, $ doubled, and control characters and bytes that are
// not UTF-8 written as C escapes (systemd decodes \xNN into the raw byte).
// The result never ends in a backslash and never contains a line break. A
// NUL byte cannot be an execve argument at all, so it is an error.
func quoteExecArg(s string) (string, error) {
	return quote(s, true)
}

// quoteEnvironment quotes a NAME=value pair for Environment=. The same
// word splitting and specifier expansion apply as for Exec lines, but no
// $VAR expansion, so $ stays as it is. systemd drops (with only a warning
// in the guest's journal) assignments whose name is not a shell identifier
// or whose value is not UTF-8: refuse those here instead. appc allows '.'
// and '-' in names; systemd does not.
func quoteEnvironment(name, value string) (string, error) {
	if !isEnvName(name) {
		return "", fmt.Errorf("environment variable name %q: systemd accepts only letters, digits and '_' (not starting with a digit): %w", name, ErrUnrepresentable)
	}
	if !utf8.ValidString(value) {
		return "", fmt.Errorf("environment variable %s: value %q is not UTF-8, which systemd rejects: %w", name, value, ErrUnrepresentable)
	}
	return quote(name+"="+value, false)
}

func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func quote(s string, execLine bool) (string, error) {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == 0:
			return "", fmt.Errorf("%q contains a NUL byte: %w", s, ErrUnrepresentable)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '%':
			b.WriteString("%%")
		case r == '$' && execLine:
			b.WriteString("$$")
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String(), nil
}

// execLine builds the value of an Exec*= setting: prefix (systemd's "-",
// "+", ... flags, or "") followed by every argument quoted. systemd needs
// an absolute executable path (it would otherwise search the guest's own
// directories, not the app's); callers resolve it first.
func execLine(prefix string, argv []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("empty command: %w", ErrInvalidPod)
	}
	if !path.IsAbs(argv[0]) {
		return "", fmt.Errorf("executable %q is not an absolute path: %w", argv[0], ErrInvalidPod)
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		q, err := quoteExecArg(a)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		words[i] = q
	}
	return prefix + strings.Join(words, " "), nil
}

// escapeSpecifiers makes free text (a Description=, a path) safe from
// specifier expansion. It does no quoting: settings that take the rest of
// the line literally must not be given quotes.
func escapeSpecifiers(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// plainValue checks a value for a setting that systemd takes literally to
// the end of the line: it must not contain line breaks or other control
// characters, must not start or end with white space (systemd strips it)
// and must not end with a backslash (a line continuation).
func plainValue(what, s string) error {
	if strings.TrimSpace(s) != s || strings.HasSuffix(s, `\`) {
		return fmt.Errorf("%s %q: leading or trailing white space or backslash: %w", what, s, ErrUnrepresentable)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q: control character: %w", what, s, ErrUnrepresentable)
		}
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q: not UTF-8: %w", what, s, ErrUnrepresentable)
	}
	return nil
}
