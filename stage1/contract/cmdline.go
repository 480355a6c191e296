package contract

// Guest kernel command-line keys of our own. The kernel hands a key=value
// without a dot in its key to the pre-init as an environment variable (it
// does not take it for a module parameter); the pre-init reads them there.
const (
	// VirtiofsParam lists the tags of the shares served over virtiofs
	// instead of 9p, comma-separated.
	VirtiofsParam = "stage1_virtiofs"
	// ReportingOrderParam asks for free page reporting at this page
	// order. The kernel's default reports only free 4 MiB blocks, which
	// an idle guest's scattered free pages never form. The host asks
	// for order 0 under TCG, where guest RAM is in 4 KiB host pages, so
	// free memory goes back page by page; under KVM guest RAM is in huge
	// host pages that 4 KiB reports would break up.
	ReportingOrderParam = "stage1_page_reporting_order"
	// MakingTemplateParam=1 says this boot makes a template: before the
	// template point the guest then runs, once, what each clone runs
	// next and no template had, so its translated code is in the
	// template (guest.warmUp). A cold boot would only pay for it. (A
	// clone's /proc/cmdline is its template's and shows it too; only
	// the boot up to the template point acts on it.)
	MakingTemplateParam = "stage1_making_template"
)

// UnitParam is the systemd unit the guest boots into. (The hostname and
// machine id are not on the command line: it is the same for every clone
// of a template; see PodConfig.)
const UnitParam = "systemd.unit"
