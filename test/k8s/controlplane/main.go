// Command controlplane is the test control plane of omnisci-handoff: one binary that runs either
// etcd or kube-apiserver, built from their published Go modules by scripts/deps/kube-apiserver.sh
// (no container engine is needed to test against a real API server).
//
//	controlplane etcd [etcd flags]
//	controlplane kube-apiserver [kube-apiserver flags]
package main

import (
	"fmt"
	"os"
	_ "time/tzdata"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: controlplane etcd|kube-apiserver [flags]")
		os.Exit(2)
	}
	sub := os.Args[1]
	// Both entry points read their flags from os.Args[1:].
	os.Args = append([]string{sub}, os.Args[2:]...)
	switch sub {
	case "etcd":
		etcdmain.Main(os.Args)
	case "kube-apiserver":
		os.Exit(cli.Run(app.NewAPIServerCommand()))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", sub)
		os.Exit(2)
	}
}
