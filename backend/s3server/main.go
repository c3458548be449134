// s3server: an S3-compatible server on loopback for hastack's shared-state tests and local trials
// (gofakes3's filesystem backend under one directory, so state survives a restart; not its bbolt
// backend, which crashed here with SIGSEGV in CopyObject reading the source's hash, apparently
// bbolt memory used after its transaction; Pulumi copies each state file to a .bak on every save).
// It checks no credentials: any
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair is accepted, which is why it refuses to listen on
// anything but a loopback address. A team shares state on its own S3 or Pulumi Cloud (README).
//
//	s3server -dir DATA_DIR [-addr 127.0.0.1:0] [-bucket name]...
//
// Prints "listening on http://HOST:PORT" on stdout once it accepts connections; SIGTERM or
// SIGINT closes it cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

type buckets []string

func (b *buckets) String() string     { return strings.Join(*b, ",") }
func (b *buckets) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "s3server: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on (port 0: any free port)")
	dataDir := flag.String("dir", "", "directory holding every bucket (created when missing)")
	var want buckets
	flag.Var(&want, "bucket", "bucket to create when missing (repeatable)")
	flag.Parse()
	if *dataDir == "" {
		return errors.New("-dir is required")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed (this server checks no credentials)", *addr)
	}

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	fsBackend, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), *dataDir))
	if err != nil {
		return fmt.Errorf("open %s: %v", *dataDir, err)
	}
	backend := emptyPrefixFix{fsBackend}
	for _, b := range want {
		if err := backend.CreateBucket(b); err != nil && !gofakes3.IsAlreadyExists(err) {
			return fmt.Errorf("create bucket %s: %v", b, err)
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on http://%s\n", ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-stop:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
}

// s3afero answers NoSuchBucket when a listing's prefix names a directory that does not exist yet
// (Pulumi lists .pulumi/stacks/ of an empty bucket); S3 answers an empty list.
type emptyPrefixFix struct{ *s3afero.MultiBucketBackend }

func (b emptyPrefixFix) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	list, err := b.MultiBucketBackend.ListBucket(name, prefix, page)
	if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
		if ok, _ := b.BucketExists(name); ok {
			return gofakes3.NewObjectList(), nil
		}
	}
	return list, err
}
