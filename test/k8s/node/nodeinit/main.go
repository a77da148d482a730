// Command nodeinit is PID 1 of the test node's PID namespace (test/support/k8s-node.ts starts it
// with `unshare --pid --fork --kill-child --mount --net`; every node process joins its namespaces).
//
//	nodeinit SOCKET
//
// It reaps the orphans that end up with it (containerd shims), and serves HTTP CONNECT on the unix
// socket SOCKET: a connection asking for host:port is dialed from inside the node's network
// namespace, which is how the test process, outside it, reaches the API server, Services and pods.
// On SIGTERM it sends SIGTERM to every process of the namespace, SIGKILL after 10 s (logging who
// was left), and exits;
// the kernel then kills whatever is left (and when it dies any other way).
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// grace is how long the processes have between SIGTERM and SIGKILL when the node stops.
const grace = 10 * time.Second

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nodeinit SOCKET")
		os.Exit(2)
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)

	os.Remove(os.Args[1])
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeinit:", err)
		os.Exit(1)
	}
	go serve(l)

	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		l.Close()
		start := time.Now()
		syscall.Kill(-1, syscall.SIGTERM)
		for time.Since(start) < grace {
			reap()
			if syscall.Kill(-1, 0) == syscall.ESRCH {
				fmt.Fprintf(os.Stderr, "nodeinit: all processes ended %v after SIGTERM\n", time.Since(start).Round(time.Millisecond))
				os.Exit(0)
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "nodeinit: SIGKILL after %v to: %s\n", grace, strings.Join(processes(), ", "))
		syscall.Kill(-1, syscall.SIGKILL)
		os.Exit(0)
	}
}

// processes lists the other processes of the namespace as "pid name" (/proc is the namespace's own).
func processes() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != 1 {
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			out = append(out, e.Name()+" "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}

func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go tunnel(c)
	}
}

// tunnel answers one CONNECT request and pipes the connection to its target.
func tunnel(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", req.Host, 10*time.Second)
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n%s", len(err.Error()), err.Error())
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(up, br) // bytes the client sent after the request are in br
		if t, ok := up.(*net.TCPConn); ok {
			t.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(c, up)
		if u, ok := c.(*net.UnixConn); ok {
			u.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}
