// Command node is the node half of the test cluster of omnisci-handoff (test/support/k8s-node.ts):
// one binary that runs the kube-scheduler, kube-controller-manager, kubelet or kube-proxy of the
// same Kubernetes release as test/k8s/controlplane, built from the k8s.io/kubernetes Go module by
// scripts/deps/k8s-node.sh.
//
//	node kube-scheduler [flags]
//	node kube-controller-manager [flags]
//	node kubelet [flags]
//	node kube-proxy [flags]
//	node cluster-dns [flags]   (dns.go: the node's cluster DNS for Services)
//
// A separate binary (not more subcommands of controlplane) so that the API server tests keep their
// cached binary; the two builds share the Go build cache.
package main

import (
	"context"
	"fmt"
	"os"
	_ "time/tzdata" // CronJob time zones, as in cmd/kube-controller-manager

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: node kube-scheduler|kube-controller-manager|kubelet|kube-proxy|cluster-dns [flags]")
		os.Exit(2)
	}
	sub := os.Args[1]
	// Every entry point reads its flags from os.Args[1:].
	os.Args = append([]string{sub}, os.Args[2:]...)
	switch sub {
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	case "cluster-dns":
		os.Exit(runClusterDNS(os.Args[1:]))
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", sub)
		os.Exit(2)
	}
}
