package units

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"
	"golang.org/x/sys/unix"
)

// Syscall sets named by the "@" wildcards rkt defined (rkt took both from
// Docker's default profiles of the time, and its own were the same).
var (
	// dockerAllowed is @docker/default-whitelist.
	dockerAllowed = strings.Fields(`
		accept accept4 access alarm bind brk capget capset chdir chmod chown
		chown32 clock_getres clock_gettime clock_nanosleep close connect
		copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
		epoll_ctl epoll_ctl_old epoll_pwait epoll_wait epoll_wait_old eventfd
		eventfd2 execve execveat exit exit_group faccessat fadvise64
		fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown
		fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock
		fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
		fsync ftruncate ftruncate64 futex futimesat getcpu getcwd getdents
		getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
		getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
		getppid getpriority getrandom getresgid getresgid32 getresuid
		getresuid32 getrlimit get_robust_list getrusage getsid getsockname
		getsockopt get_thread_area gettid gettimeofday getuid getuid32
		getxattr inotify_add_watch inotify_init inotify_init1
		inotify_rm_watch io_cancel ioctl io_destroy io_getevents ioprio_get
		ioprio_set io_setup io_submit ipc kill lchown lchown32 lgetxattr link
		linkat listen listxattr llistxattr _llseek lremovexattr lseek
		lsetxattr lstat lstat64 madvise memfd_create mincore mkdir mkdirat
		mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
		mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap
		msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep
		newfstatat _newselect open openat pause personality pipe pipe2 poll
		ppoll prctl pread64 preadv prlimit64 pselect6 pwrite64 pwritev read
		readahead readlink readlinkat readv recv recvfrom recvmmsg recvmsg
		remap_file_pages removexattr rename renameat renameat2
		restart_syscall rmdir rt_sigaction rt_sigpending rt_sigprocmask
		rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
		rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
		sched_get_priority_max sched_get_priority_min sched_getscheduler
		sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam
		sched_setscheduler sched_yield seccomp select semctl semget semop
		semtimedop send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid
		setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
		setitimer setpgid setpriority setregid setregid32 setresgid
		setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
		set_robust_list setsid setsockopt set_thread_area set_tid_address
		setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
		sigaltstack signalfd signalfd4 sigreturn socket socketcall socketpair
		splice stat stat64 statfs statfs64 symlink symlinkat sync
		sync_file_range syncfs sysinfo syslog tee tgkill time timer_create
		timer_delete timerfd_create timerfd_gettime timerfd_settime
		timer_getoverrun timer_gettime timer_settime times tkill truncate
		truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
		utimes vfork vmsplice wait4 waitid waitpid write writev arch_prctl
		modify_ldt chroot clone`)

	// dockerDenied is @docker/default-blacklist, and @rkt/default-blacklist.
	dockerDenied = strings.Fields(`
		acct add_key adjtimex bpf clock_adjtime clock_settime create_module
		delete_module finit_module get_kernel_syms get_mempolicy init_module
		ioperm iopl kcmp kexec_file_load kexec_load keyctl lookup_dcookie
		mbind mount move_pages name_to_handle_at nfsservctl
		open_by_handle_at perf_event_open pivot_root process_vm_readv
		process_vm_writev ptrace query_module quotactl reboot request_key
		set_mempolicy setns settimeofday stime swapon swapoff sysfs _sysctl
		umount umount2 unshare uselib userfaultfd ustat vm86 vm86old`)

	// newerEquivalents are syscalls added to the kernel after that list
	// was written that only do what a listed one already allows (statx
	// for stat, clone3 for clone, ...). Current C libraries call them
	// first, and under an allow-list without them every app doing so
	// would be killed: they complete @rkt/default-whitelist.
	newerEquivalents = strings.Fields(`
		statx clone3 faccessat2 openat2 close_range preadv2 pwritev2
		epoll_pwait2 pidfd_open pidfd_send_signal
		rseq membarrier futex_waitv`)

	// rktAllowed is @rkt/default-whitelist, and the filter of an app
	// without a seccomp isolator: rkt's documented default.
	rktAllowed = append(append([]string(nil), dockerAllowed...), newerEquivalents...)
)

// systemdGroups are the syscall groups of systemd 252 that
// "@systemd/<group>" names (rkt's own extension), plus rkt's alias for
// systemd's @default.
var systemdGroups = map[string]string{"default-whitelist": "@default"}

func init() {
	for _, g := range strings.Fields(`aio basic-io chown clock cpu-emulation
		debug default file-system io-event ipc keyring memlock module mount
		network-io obsolete pkey privileged process raw-io reboot resources
		sandbox setuid signal swap sync system-service timer known`) {
		systemdGroups[g] = "@" + g
	}
}

// seccompOptions writes the app's syscall filter: the app's seccomp
// isolator name and value, or nil for none (rkt's default filter). As
// appc says, a blocked call kills the app with SIGSYS unless the isolator
// names an errno. systemd adds its own @default group (what every process
// needs to start and exit) to an allow-list: appc's "implementation
// default whitelist". A syscall name the guest's architecture does not
// have is accepted and has no effect: it can be neither called nor
// blocked.
func seccompOptions(iso types.ACIdentifier, set types.LinuxSeccompSet) ([]*unit.UnitOption, error) {
	allow, names := true, rktAllowed
	errno := ""
	if set != nil {
		if err := set.AssertValid(); err != nil {
			return nil, fmt.Errorf("isolator %s: %v: %w", iso, err, ErrInvalidPod)
		}
		var err error
		if errno, err = seccompErrno(iso, string(set.Errno())); err != nil {
			return nil, err
		}
		allow = iso == types.LinuxSeccompRetainSetName
		var all, empty bool
		names, all, empty, err = expandSeccompSet(iso, set.Set())
		if err != nil {
			return nil, err
		}
		switch {
		case all && allow:
			// @appc.io/all: opt out of filtering.
			return nil, nil
		case all:
			return nil, fmt.Errorf("isolator %s: @appc.io/all would block every syscall: %w", iso, ErrInvalidPod)
		case empty && !allow:
			// @appc.io/empty masks the rest of a remove-set: opt in
			// to the default filter.
			allow, names = true, rktAllowed
		case len(names) == 0:
			// Only @appc.io/empty in a retain-set: nothing beyond
			// what systemd always allows.
			names = []string{"@default"}
		}
	}
	prefix := ""
	if !allow {
		prefix = "~"
	}
	// Several lines of the same kind add up; short lines keep the unit
	// readable by go-systemd's parser (2 KiB per line).
	var opts []*unit.UnitOption
	for len(names) > 0 {
		n, width := 0, 0
		for n < len(names) && (n == 0 || width+1+len(names[n]) <= 900) {
			width += 1 + len(names[n])
			n++
		}
		opts = append(opts, service("SystemCallFilter", prefix+strings.Join(names[:n], " ")))
		names = names[n:]
	}
	if errno != "" {
		opts = append(opts, service("SystemCallErrorNumber", errno))
	}
	return opts, nil
}

// expandSeccompSet replaces the wildcards of a seccomp set by what they
// name, in systemd's syntax, and checks the plain names. all and empty
// report @appc.io/all and @appc.io/empty.
func expandSeccompSet(iso types.ACIdentifier, set []types.LinuxSeccompEntry) (names []string, all, empty bool, err error) {
	for _, e := range set {
		s := string(e)
		if !strings.HasPrefix(s, "@") {
			if !isSyscallName(s) {
				return nil, false, false, fmt.Errorf("isolator %s: %q is not a syscall name: %w", iso, s, ErrInvalidPod)
			}
			names = appendNew(names, s)
			continue
		}
		scope, name, _ := strings.Cut(s, "/")
		switch {
		case s == "@appc.io/all":
			all = true
		case s == "@appc.io/empty":
			empty = true
		case s == "@rkt/default-whitelist":
			names = appendNew(names, rktAllowed...)
		case s == "@rkt/default-blacklist", s == "@docker/default-blacklist":
			names = appendNew(names, dockerDenied...)
		case s == "@docker/default-whitelist":
			names = appendNew(names, dockerAllowed...)
		case scope == "@systemd" && systemdGroups[name] != "":
			names = appendNew(names, systemdGroups[name])
		default:
			return nil, false, false, fmt.Errorf("isolator %s: unknown seccomp wildcard %q: %w", iso, s, ErrUnsupportedIsolator)
		}
	}
	return names, all, empty, nil
}

// isSyscallName accepts what a Linux syscall name is made of; anything
// else could change the meaning of the SystemCallFilter= line.
func isSyscallName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// errnoAliases are errno names C libraries define as another name's value.
var errnoAliases = map[string]syscall.Errno{
	"EWOULDBLOCK": unix.EAGAIN,
	"EDEADLOCK":   unix.EDEADLK,
	"ENOTSUP":     unix.EOPNOTSUPP,
}

// seccompErrno turns an appc errno name into the number systemd's
// SystemCallErrorNumber= takes; "" is none (blocked calls kill the app).
// appc requires every POSIX.1-2001 and C99 code and allows ignoring
// unsupported ones; an unknown name is refused instead, since ignoring it
// would turn a failing call into a killed app.
func seccompErrno(iso types.ACIdentifier, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if e, ok := errnoAliases[name]; ok {
		return strconv.Itoa(int(e)), nil
	}
	for e := syscall.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			return strconv.Itoa(int(e)), nil
		}
	}
	return "", fmt.Errorf("isolator %s: unknown errno %q: %w", iso, name, ErrInvalidPod)
}
