// The cluster DNS of the test node: `node cluster-dns --kubeconfig FILE --listen IP:53 --domain cluster.local`.
//
// Pods find Services by name (z2jh's hub connects to `proxy-api`, its proxy and the users' servers to
// `hub`, omnisci-handoff's default hub URL is http://hub:8081/...), so the node needs what CoreDNS
// gives a real cluster for ClusterIP Services: `<service>.<namespace>.svc.<domain>` answers an A record
// with the Service's ClusterIP, from a watch of the Services (client-go informer). The kubelet points
// pods at it (clusterDNS; search `<ns>.svc.<domain> svc.<domain> <domain>`, ndots 5).
//
// Scope, as CoreDNS's kubernetes plugin for these names: A for a Service with an IPv4 ClusterIP; an
// existing name without an IPv4 address (AAAA, or a headless Service) answers NOERROR with no record;
// every other name NXDOMAIN, at once (there is no upstream: the node reaches nothing outside). UDP and
// TCP. Built from golang.org/x/net/dns/dnsmessage and client-go, already in this module's graph.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const ttl = 5

func runClusterDNS(args []string) int {
	fs := flag.NewFlagSet("cluster-dns", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of a user that may list and watch Services")
	listen := fs.String("listen", "", "address to serve on, UDP and TCP (IP:53)")
	domain := fs.String("domain", "cluster.local", "the cluster domain")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *listen == "" {
		fmt.Fprintln(os.Stderr, "usage: node cluster-dns --kubeconfig FILE --listen IP:PORT [--domain cluster.local]")
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Printf("kubeconfig: %v", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Printf("client: %v", err)
		return 1
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	services := factory.Core().V1().Services()
	lister := services.Lister()
	informer := services.Informer()
	ctx := context.Background()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		log.Print("the Service cache did not sync")
		return 1
	}
	r := &resolver{services: lister, suffix: ".svc." + strings.Trim(strings.ToLower(*domain), ".") + "."}

	udp, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Printf("listen udp: %v", err)
		return 1
	}
	tcp, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Printf("listen tcp: %v", err)
		return 1
	}
	go serveTCP(tcp, r)
	// The launcher waits for this line.
	log.Printf("serving *%s on %s (udp, tcp)", r.suffix, *listen)
	buf := make([]byte, 4096)
	for {
		n, addr, err := udp.ReadFrom(buf)
		if err != nil {
			log.Printf("udp: %v", err)
			return 1
		}
		if out := r.answer(buf[:n]); out != nil {
			_, _ = udp.WriteTo(out, addr)
		}
	}
}

func serveTCP(l net.Listener, r *resolver) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Printf("tcp: %v", err)
			return
		}
		go func() {
			defer c.Close()
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var size [2]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out := r.answer(msg)
				if out == nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
					return
				}
			}
		}()
	}
}

type resolver struct {
	services listersv1.ServiceLister
	suffix   string // ".svc.cluster.local."
}

// service finds the Service a name `<service>.<namespace>.svc.<domain>.` names, if any.
func (r *resolver) service(name string) *corev1.Service {
	rest, ok := strings.CutSuffix(strings.ToLower(name), r.suffix)
	if !ok {
		return nil
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 2 {
		return nil
	}
	svc, err := r.services.Services(parts[1]).Get(parts[0])
	if err != nil {
		return nil
	}
	return svc
}

func ipv4(svc *corev1.Service) (netip.Addr, bool) {
	a, err := netip.ParseAddr(svc.Spec.ClusterIP)
	return a, err == nil && a.Is4()
}

// answer builds the response to one query message; nil when it cannot even be parsed.
func (r *resolver) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	if h.OpCode != 0 {
		resp.RCode = dnsmessage.RCodeNotImplemented
		return build(resp, nil, nil)
	}
	q, err := p.Question()
	if err != nil {
		resp.RCode = dnsmessage.RCodeFormatError
		return build(resp, nil, nil)
	}
	svc := r.service(q.Name.String())
	if svc == nil {
		resp.RCode = dnsmessage.RCodeNameError
		return build(resp, &q, nil)
	}
	var a *dnsmessage.AResource
	if addr, ok := ipv4(svc); ok && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL) {
		a = &dnsmessage.AResource{A: addr.As4()}
	}
	return build(resp, &q, a)
}

func build(h dnsmessage.Header, q *dnsmessage.Question, a *dnsmessage.AResource) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		_ = b.StartQuestions()
		_ = b.Question(*q)
		if a != nil {
			_ = b.StartAnswers()
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl}, *a)
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
