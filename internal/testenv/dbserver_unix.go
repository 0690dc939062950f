//go:build unix

package testenv

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// serviceUser returns process attributes that run a database server as
// the OS user name when this process runs as root (PostgreSQL refuses to
// run as root), with the user's uid and gid; otherwise the usual
// attributes and uid -1 (run as ourselves).
func serviceUser(name string) (attr *syscall.SysProcAttr, uid, gid int, err error) {
	attr = sysProcAttr()
	if os.Geteuid() != 0 {
		return attr, -1, -1, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, -1, -1, fmt.Errorf("running as root, and the database server must run as the OS user %q, which cannot be found (%w); create it (e.g. install the server's package) or run the tests as a non-root user", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, -1, -1, fmt.Errorf("user %q has a non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	// Pdeathsig still applies: the runtime sets it after switching user.
	attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	return attr, uid, gid, nil
}
