// Command peer is what the security tests run as another user: one
// operation on one path, and the outcome on stdout ("ok", an errno name,
// or for dial the first line of the answer or how the connection ended).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: peer dial|stat|readdir|read|write|rewrite|append|truncate|create|mkdir|chmod|chown|unlink PATH")
		os.Exit(2)
	}
	op, path := os.Args[1], os.Args[2]
	var err error
	switch op {
	case "dial":
		var c net.Conn
		if c, err = net.Dial("unix", path); err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprint(c, "GET /clfs/info HTTP/1.1\r\nHost: clfs\r\n\r\n")
			var line string
			if line, err = bufio.NewReader(c).ReadString('\n'); err == nil {
				fmt.Print(line)
				return
			}
		}
	case "stat":
		_, err = os.Stat(path)
	case "readdir":
		_, err = os.ReadDir(path)
	case "read":
		_, err = os.ReadFile(path)
	case "write":
		err = write(path, os.O_WRONLY)
	case "rewrite":
		err = write(path, os.O_WRONLY|os.O_TRUNC)
	case "append":
		err = write(path, os.O_WRONLY|os.O_APPEND)
	case "truncate":
		err = os.Truncate(path, 1)
	case "create":
		err = write(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	case "mkdir":
		err = os.Mkdir(path, 0o755)
	case "chmod":
		err = os.Chmod(path, 0o777)
	case "chown":
		err = os.Chown(path, os.Getuid(), os.Getgid())
	case "unlink":
		err = os.Remove(path)
	default:
		fmt.Fprintln(os.Stderr, "peer: unknown operation", op)
		os.Exit(2)
	}
	var errno syscall.Errno
	switch {
	case err == nil:
		fmt.Println("ok")
	case errors.As(err, &errno):
		fmt.Println(unix.ErrnoName(errno))
	default:
		fmt.Println(err)
	}
}

func write(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("peer")); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
