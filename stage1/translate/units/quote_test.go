package units

import (
	"errors"
	"strings"
	"testing"
)

// nastyArgs are arguments that systemd would alter if quoted carelessly.
var nastyArgs = []string{
	"plain",
	"",
	"two words",
	"  leading and trailing  ",
	`double "quotes"`,
	`single 'quotes'`,
	`back\slash`,
	`trailing backslash\`,
	`\\`,
	`\"`,
	`\n is not a newline`,
	"$HOME",
	"${HOME}",
	"$$",
	"$",
	"100%",
	"%n%i%%",
	"%",
	"line\nbreak",
	"carriage\rreturn",
	"tab\there",
	"bell\a esc\x1b del\x7f",
	";",
	"\\;",
	"-dash",
	"+plus",
	"#not a comment",
	"unicode: héllo wörld ✓ 日本語 🚀",
	"not utf-8: \xff\xfe",
	"\u2028\u0085",
	"a=b",
	"=",
	`mix: "$HOME" 100% \ 'x'` + "\n\t",
}

func TestQuoteExecArgRoundTrip(t *testing.T) {
	for _, arg := range nastyArgs {
		q, err := quoteExecArg(arg)
		if err != nil {
			t.Errorf("quoteExecArg(%q): %v", arg, err)
			continue
		}
		if strings.ContainsAny(q, "\n\r") || strings.HasSuffix(q, `\`) {
			t.Errorf("quoteExecArg(%q) = %q: breaks the line", arg, q)
		}
		_, argv, err := decodeExec(`"/bin/x" ` + q)
		if err != nil {
			t.Errorf("quoteExecArg(%q) = %s: systemd would not read it back: %v", arg, q, err)
			continue
		}
		if len(argv) != 2 || argv[1] != arg {
			t.Errorf("quoteExecArg(%q) = %s: read back as %q", arg, q, argv)
		}
	}
}

func TestQuoteExamples(t *testing.T) {
	for arg, want := range map[string]string{
		"":           `""`,
		"a b":        `"a b"`,
		`"`:          `"\""`,
		`\`:          `"\\"`,
		"$HOME":      `"$$HOME"`,
		"100%":       `"100%%"`,
		"a\nb":       `"a\nb"`,
		"\x01":       `"\x01"`,
		"\xff":       `"\xff"`,
		"日本":         `"日本"`,
		"it's":       `"it's"`,
		"%h/$USER\t": `"%%h/$$USER\t"`,
	} {
		got, err := quoteExecArg(arg)
		if err != nil || got != want {
			t.Errorf("quoteExecArg(%q) = %s, %v; want %s", arg, got, err, want)
		}
	}
}

func TestQuoteRefusesNUL(t *testing.T) {
	if _, err := quoteExecArg("a\x00b"); !errors.Is(err, ErrUnrepresentable) {
		t.Errorf("quoteExecArg with NUL: err = %v, want ErrUnrepresentable", err)
	}
	if _, err := execLine("", []string{"/bin/x", "\x00"}); !errors.Is(err, ErrUnrepresentable) {
		t.Errorf("execLine with NUL: err = %v, want ErrUnrepresentable", err)
	}
}

func TestQuoteEnvironment(t *testing.T) {
	for _, v := range nastyArgs {
		if strings.Contains(v, "\xff") {
			continue
		}
		q, err := quoteEnvironment("NAME_1", v)
		if err != nil {
			t.Errorf("quoteEnvironment(%q): %v", v, err)
			continue
		}
		name, value, err := decodeEnvironment(q)
		if err != nil || name != "NAME_1" || value != v {
			t.Errorf("quoteEnvironment(%q) = %s: read back as %q=%q, %v", v, q, name, value, err)
		}
	}
	// $ is not expanded in Environment=: it must stay single.
	if q, _ := quoteEnvironment("A", "$B"); q != `"A=$B"` {
		t.Errorf("quoteEnvironment(A, $B) = %s", q)
	}
	for _, bad := range []struct{ name, value string }{
		{"with.dot", "x"},
		{"with-dash", "x"},
		{"1DIGIT", "x"},
		{"", "x"},
		{"SP ACE", "x"},
		{"OK", "not utf-8 \xff"},
		{"OK", "nul \x00"},
	} {
		if _, err := quoteEnvironment(bad.name, bad.value); !errors.Is(err, ErrUnrepresentable) {
			t.Errorf("quoteEnvironment(%q, %q): err = %v, want ErrUnrepresentable", bad.name, bad.value, err)
		}
	}
}

func TestExecLine(t *testing.T) {
	got, err := execLine("+", []string{"/usr/bin/env", "A B", "$X"})
	if want := `+"/usr/bin/env" "A B" "$$X"`; err != nil || got != want {
		t.Errorf("execLine = %s, %v; want %s", got, err, want)
	}
	for _, argv := range [][]string{nil, {}, {"relative"}, {""}, {"./x"}} {
		if _, err := execLine("", argv); !errors.Is(err, ErrInvalidPod) {
			t.Errorf("execLine(%q): err = %v, want ErrInvalidPod", argv, err)
		}
	}
}
