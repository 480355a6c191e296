// Command templates lists and drops the templates pods start from
// (docs/architecture.md, "Templates"):
//
//	templates [--dir DIR] list          one line per template: key, size on disk, made, state
//	templates [--dir DIR] drop KEY...   remove these templates
//	templates [--dir DIR] drop --all    remove every template
//
// DIR is $STAGE1_KVM_TEMPLATE_DIR, else /var/lib/stage1-kvm/templates.
// A template dropped while pods run from it stays on disk until they end;
// the next pod of its shape makes it again.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-multierror"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/template"
)

const prog = "templates"

func main() {
	cli.Exit(prog, 0, run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "template directory")
	const usage = "templates [--dir DIR] list | drop KEY... | drop --all"
	if err := fs.Parse(args); err != nil {
		return cli.Usagef("%s (%v)", usage, err)
	}
	if *dir == "" {
		s, err := settings.FromEnv(os.Getenv)
		if err != nil {
			return err
		}
		*dir = s.TemplateDir
	}
	store := template.Store{Dir: *dir}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "list":
		return list(store, out)
	case fs.NArg() == 2 && fs.Arg(0) == "drop" && fs.Arg(1) == "--all":
		ents, err := store.List()
		if err != nil {
			return err
		}
		var keys []string
		for _, e := range ents {
			keys = append(keys, e.Key)
		}
		return drop(store, keys)
	case fs.NArg() >= 2 && fs.Arg(0) == "drop":
		for _, k := range fs.Args()[1:] {
			if !template.IsKey(k) {
				return cli.Usagef("%q is not a template key (see: templates list)", k)
			}
		}
		return drop(store, fs.Args()[1:])
	}
	return cli.Usagef("%s", usage)
}

func list(store template.Store, out io.Writer) error {
	ents, err := store.List()
	if err != nil {
		return err
	}
	for _, e := range ents {
		state := "ok"
		if e.Err != nil {
			state = "unusable: " + e.Err.Error()
		}
		fmt.Fprintf(out, "%s\t%d MiB\t%s\t%s\n", e.Key, e.Template.DiskBytes()>>20, e.Template.Meta.Made.Format("2006-01-02T15:04:05Z"), state)
	}
	return nil
}

func drop(store template.Store, keys []string) error {
	var errs *multierror.Error
	for _, k := range keys {
		errs = multierror.Append(errs, store.Drop(k))
	}
	return errs.ErrorOrNil()
}
