package harness

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

const mdsTestUUID = "6f0a4bd2-1c5b-4f53-9a7e-3d2b8c1e5f40"

// writeMDSPod writes a pod directory as stage0 leaves it: the pod manifest
// and each app's image manifest in appsinfo.
func writeMDSPod(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), mdsTestUUID)
	id, err := types.NewHash("sha512-" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	pm := schema.BlankPodManifest()
	pm.Annotations.Set("coreos.com/rkt/stage1/mutable", "false")
	pm.Apps = schema.AppList{{
		Name:        "web",
		Image:       schema.RuntimeImage{ID: *id},
		Annotations: types.Annotations{{Name: "lorem", Value: "replaced"}, {Name: "extra", Value: "x"}},
	}}
	im := schema.BlankImageManifest()
	im.Name = "example.com/web"
	im.Annotations = types.Annotations{{Name: "lorem", Value: "ipsum"}, {Name: "homepage", Value: "https://example.com"}}
	for p, v := range map[string]any{"pod": pm, "appsinfo/web/manifest": im} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mdsClient asks a metadata service what the ACE validator asks it, with
// the same expectations on status and content type.
type mdsClient struct {
	t    *testing.T
	base string // AC_METADATA_URL
}

func (c mdsClient) do(req *http.Request, wantStatus int, wantType string) []byte {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		c.t.Errorf("%s %s: status %d, want %d (%s)", req.Method, req.URL.Path, resp.StatusCode, wantStatus, body)
	}
	if wantType != "" && resp.Header.Get("Content-Type") != wantType {
		c.t.Errorf("%s %s: Content-Type %q, want %q", req.Method, req.URL.Path, resp.Header.Get("Content-Type"), wantType)
	}
	return body
}

func (c mdsClient) get(path string, wantStatus int, wantType string) []byte {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+"/acMetadata/v1"+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Metadata-Flavor", "AppContainer")
	return c.do(req, wantStatus, wantType)
}

func (c mdsClient) post(path string, form url.Values, wantStatus int) []byte {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+"/acMetadata/v1"+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req, wantStatus, mdsText)
}

func TestMetadataServiceEndpoints(t *testing.T) {
	dir := writeMDSPod(t)
	p, err := loadMDSPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.key = []byte("test key")
	srv := &mdsServer{pods: map[string]*mdsPod{}}
	if err := srv.register("tok", p); err != nil {
		t.Fatal(err)
	}
	if err := srv.register("tok", p); err == nil {
		t.Error("a token registered twice")
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := mdsClient{t: t, base: hs.URL + "/tok"}

	// The pod: manifest, annotations equal to the manifest's, uuid.
	var pm schema.PodManifest
	if err := json.Unmarshal(c.get("/pod/manifest", 200, mdsJSON), &pm); err != nil {
		t.Fatal(err)
	}
	var annots types.Annotations
	if err := json.Unmarshal(c.get("/pod/annotations", 200, mdsJSON), &annots); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(annots, pm.Annotations) || len(annots) != 1 {
		t.Errorf("pod annotations %v, manifest's %v", annots, pm.Annotations)
	}
	if got := string(c.get("/pod/uuid", 200, mdsText)); got != mdsTestUUID {
		t.Errorf("uuid %q", got)
	}

	// The app: its image manifest, image ID, merged annotations.
	var im schema.ImageManifest
	if err := json.Unmarshal(c.get("/apps/web/image/manifest", 200, mdsJSON), &im); err != nil || im.Name != "example.com/web" {
		t.Errorf("image manifest %v: %v", im.Name, err)
	}
	if got := string(c.get("/apps/web/image/id", 200, mdsText)); got != pm.Apps[0].Image.ID.String() {
		t.Errorf("image id %q", got)
	}
	annots = nil
	if err := json.Unmarshal(c.get("/apps/web/annotations", 200, mdsJSON), &annots); err != nil {
		t.Fatal(err)
	}
	want := types.Annotations{{Name: "lorem", Value: "replaced"}, {Name: "homepage", Value: "https://example.com"}, {Name: "extra", Value: "x"}}
	if !reflect.DeepEqual(annots, want) {
		t.Errorf("app annotations %v, want %v", annots, want)
	}
	c.get("/apps/nope/annotations", 404, "")
	c.get("/pod/nope", 404, "")

	// Identity: a signature verifies for this pod's UUID and content only.
	sig := string(c.post("/pod/hmac/sign", url.Values{"content": {"Old MacDonald"}}, 200))
	c.post("/pod/hmac/verify", url.Values{"content": {"Old MacDonald"}, "uuid": {mdsTestUUID}, "signature": {sig}}, 200)
	c.post("/pod/hmac/verify", url.Values{"content": {"Old MacDonalds"}, "uuid": {mdsTestUUID}, "signature": {sig}}, 403)
	c.post("/pod/hmac/verify", url.Values{"content": {"Old MacDonald"}, "uuid": {"6f0a4bd2-1c5b-4f53-9a7e-3d2b8c1e5f41"}, "signature": {sig}}, 403)

	// Another token, or none, gets nothing.
	mdsClient{t: t, base: hs.URL + "/other"}.get("/pod/uuid", 401, "")
	mdsClient{t: t, base: hs.URL}.get("/pod/uuid", 401, "")
	srv.unregister("tok")
	c.get("/pod/uuid", 401, "")
}

// The shared listener binds the default network's gateway before any pod
// has put it on a veth, and goes away with the last test using it.
func TestMetadataServiceListener(t *testing.T) {
	var srv *mdsServer
	t.Run("use", func(t *testing.T) {
		m := NewMetadataService(t)
		n := NewMetadataService(t)
		if m.srv != n.srv || string(m.key) == string(n.key) {
			t.Error("want one listener and a key per user")
		}
		srv = m.srv
		if got := srv.ln.Addr().String(); got != "172.16.28.1:18112" {
			t.Errorf("listening on %s", got)
		}
	})
	select {
	case <-srv.done:
	default:
		t.Error("listener still serving after its last user ended")
	}
	if tok := NewMDSToken(t); len(tok) != 32 || url.PathEscape(tok) != tok {
		t.Errorf("token %q", tok)
	}
}
