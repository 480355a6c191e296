package harness

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// The metadata service's address, as the apps of a pod on the built-in
// default network reach it: rkt's metadata service port, on the default
// network's gateway (172.16.28.0/24, gateway .1), which the ptp plugin puts
// on the host side of each pod's veth.
const (
	MetadataServicePort = 18112
	MetadataServiceIP   = "172.16.28.1"
)

// mdsPortWait bounds the wait for the metadata service port when another
// process holds it.
const mdsPortWait = 5 * time.Minute

// Content types of the appc metadata service.
const (
	mdsJSON = "application/json"
	mdsText = "text/plain; charset=us-ascii"
)

// MetadataService stands in for `rkt metadata-service` (the appc "App
// Container Metadata Service"): it serves, over HTTP on the host, the pod
// and app metadata of pods registered with a token (what `rkt run
// --mds-register` does), under /<token>/acMetadata/v1/.
//
// Every test gets its own MetadataService (its own HMAC key and its own
// registrations); they share one listener, as rkt's service is one per
// host: MetadataServiceIP:MetadataServicePort, bound with IP_FREEBIND
// because that address exists only while some pod's veth carries it. The
// listener closes when the last test using it has ended.
type MetadataService struct {
	key []byte // HMAC-SHA512 key of this test's pods
	srv *mdsServer
}

// mdsPod is what the service knows of a registered pod.
type mdsPod struct {
	uuid     types.UUID
	manifest []byte // the pod manifest as stage0 wrote it
	pm       *schema.PodManifest
	images   map[string][]byte // image manifest bytes, by app name
	key      []byte
}

// mdsServer is the shared listener and the registrations of every test.
type mdsServer struct {
	ln   net.Listener
	http *http.Server
	done chan struct{}

	mu    sync.Mutex
	users int
	pods  map[string]*mdsPod // by token
}

var mdsShared struct {
	mu  sync.Mutex
	srv *mdsServer
}

// NewMetadataService returns the test's metadata service, starting the
// shared listener if no other running test has (waiting up to mdsPortWait
// for the port if another process holds it). It is stopped (for this
// test) in t.Cleanup, after the test's pods are unregistered.
func NewMetadataService(t testing.TB) *MetadataService {
	t.Helper()
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	mdsShared.mu.Lock()
	defer mdsShared.mu.Unlock()
	if mdsShared.srv == nil {
		addr := net.JoinHostPort(MetadataServiceIP, fmt.Sprint(MetadataServicePort))
		// The port is the host's: another test process may hold it for
		// a while. Wait for it, boundedly.
		deadline := time.Now().Add(mdsPortWait)
		for {
			srv, err := startMDSServer(addr)
			if err == nil {
				mdsShared.srv = srv
				break
			}
			if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
				t.Fatalf("metadata service: %v", err)
			}
			time.Sleep(time.Second)
		}
	}
	srv := mdsShared.srv
	srv.users++
	t.Cleanup(func() {
		mdsShared.mu.Lock()
		defer mdsShared.mu.Unlock()
		srv.users--
		if srv.users == 0 {
			if err := srv.close(); err != nil {
				t.Errorf("metadata service: %v", err)
			}
			mdsShared.srv = nil
		}
	})
	return &MetadataService{key: key, srv: srv}
}

// NewMDSToken returns a token as `rkt run --mds-register` makes one: 128
// random bits, usable as a URL path segment.
func NewMDSToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Register makes the pod's metadata available under token, from its pod
// manifest and its apps' image manifests as stage0 wrote them. Call it after
// Prepare and before Run (with RunOpts.MDSToken = token); the pod is
// unregistered in t.Cleanup.
func (m *MetadataService) Register(t testing.TB, p *Pod, token string) {
	t.Helper()
	mp, err := loadMDSPod(p.Dir)
	if err != nil {
		t.Fatalf("metadata service: register pod %s: %v", p.UUID, err)
	}
	mp.key = m.key
	if err := m.srv.register(token, mp); err != nil {
		t.Fatalf("metadata service: register pod %s: %v", p.UUID, err)
	}
	t.Cleanup(func() { m.srv.unregister(token) })
}

func loadMDSPod(dir string) (*mdsPod, error) {
	b, err := os.ReadFile(filepath.Join(dir, "pod"))
	if err != nil {
		return nil, err
	}
	pm := &schema.PodManifest{}
	if err := json.Unmarshal(b, pm); err != nil {
		return nil, fmt.Errorf("pod manifest: %w", err)
	}
	uuid, err := types.NewUUID(filepath.Base(dir))
	if err != nil {
		return nil, fmt.Errorf("pod directory name: %w", err)
	}
	mp := &mdsPod{uuid: *uuid, manifest: b, pm: pm, images: map[string][]byte{}}
	for _, ra := range pm.Apps {
		im, err := os.ReadFile(filepath.Join(dir, "appsinfo", ra.Name.String(), "manifest"))
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", ra.Name, err)
		}
		mp.images[ra.Name.String()] = im
	}
	return mp, nil
}

// startMDSServer listens on addr (IP_FREEBIND: the address need not exist
// yet) and serves.
func startMDSServer(addr string) (*mdsServer, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w (another metadata service, e.g. rkt's or another test process, holds the port)", err)
		}
		return nil, err
	}
	s := &mdsServer{ln: ln, done: make(chan struct{}), pods: map[string]*mdsPod{}}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    1 << 16,
	}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(ln) // ErrServerClosed once closed
	}()
	return s, nil
}

func (s *mdsServer) close() error {
	err := s.http.Close()
	<-s.done
	return err
}

func (s *mdsServer) register(token string, p *mdsPod) error {
	if token == "" {
		return errors.New("empty token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pods[token]; ok {
		return errors.New("token already registered")
	}
	for _, q := range s.pods {
		if q.uuid == p.uuid {
			return errors.New("pod already registered")
		}
	}
	s.pods[token] = p
	return nil
}

func (s *mdsServer) unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pods, token)
}

func (s *mdsServer) byToken(token string) *mdsPod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[token]
}

func (s *mdsServer) byUUID(uuid types.UUID) *mdsPod {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pods {
		if p.uuid == uuid {
			return p
		}
	}
	return nil
}

// ServeHTTP serves /<token>/acMetadata/v1/<entry>.
func (s *mdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p := s.byToken(token)
	if p == nil {
		http.Error(w, "unknown pod token", http.StatusUnauthorized)
		return
	}
	entry, ok := strings.CutPrefix(rest, "acMetadata/v1/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if entry == "pod/hmac/sign" || entry == "pod/hmac/verify" {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if entry == "pod/hmac/sign" {
			s.sign(w, r, p)
		} else {
			s.verify(w, r)
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	switch entry {
	case "pod/manifest":
		reply(w, mdsJSON, p.manifest)
		return
	case "pod/annotations":
		replyJSON(w, p.pm.Annotations)
		return
	case "pod/uuid":
		reply(w, mdsText, []byte(p.uuid.String()))
		return
	}
	app, what, ok := strings.Cut(strings.TrimPrefix(entry, "apps/"), "/")
	if !ok || !strings.HasPrefix(entry, "apps/") {
		http.NotFound(w, r)
		return
	}
	an, err := types.NewACName(app)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ra := p.pm.Apps.Get(*an)
	if ra == nil {
		http.NotFound(w, r)
		return
	}
	switch what {
	case "image/manifest":
		reply(w, mdsJSON, p.images[app])
	case "image/id":
		reply(w, mdsText, []byte(ra.Image.ID.String()))
	case "annotations":
		var im schema.ImageManifest
		if err := json.Unmarshal(p.images[app], &im); err != nil {
			http.Error(w, "image manifest: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// The image's annotations, those of the pod manifest's app
		// replacing or adding to them.
		annots := append(types.Annotations(nil), im.Annotations...)
		for _, a := range ra.Annotations {
			annots.Set(a.Name, a.Value)
		}
		replyJSON(w, annots)
	default:
		http.NotFound(w, r)
	}
}

// mac is the pod's signature of content: HMAC-SHA512 of the pod UUID's 16
// bytes followed by the content, under the pod's key.
func mac(key []byte, uuid types.UUID, content string) []byte {
	h := hmac.New(sha512.New, key)
	h.Write(uuid[:])
	h.Write([]byte(content))
	return h.Sum(nil)
}

func (s *mdsServer) sign(w http.ResponseWriter, r *http.Request, p *mdsPod) {
	content, ok := r.PostForm["content"]
	if !ok || len(content) != 1 {
		http.Error(w, "one content= field needed", http.StatusBadRequest)
		return
	}
	reply(w, mdsText, []byte(base64.StdEncoding.EncodeToString(mac(p.key, p.uuid, content[0]))))
}

// verify answers 200 when signature is the signature of content by the pod
// uuid (a registered pod), 403 otherwise.
func (s *mdsServer) verify(w http.ResponseWriter, r *http.Request) {
	content, sig, id := r.PostForm["content"], r.PostFormValue("signature"), r.PostFormValue("uuid")
	if len(content) != 1 || sig == "" || id == "" {
		http.Error(w, "content=, uuid= and signature= needed", http.StatusBadRequest)
		return
	}
	uuid, err := types.NewUUID(id)
	if err != nil {
		http.Error(w, "uuid: "+err.Error(), http.StatusBadRequest)
		return
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	signer := s.byUUID(*uuid)
	if err != nil || signer == nil || !hmac.Equal(got, mac(signer.key, *uuid, content[0])) {
		w.Header().Set("Content-Type", mdsText)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	reply(w, mdsText, nil)
}

func reply(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func replyJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	reply(w, mdsJSON, b)
}
