package guest

import (
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func TestGuestRoutesOnLinkFirst(t *testing.T) {
	// ptp's routes: via the gateway, which is reachable only through the
	// on-link /32 route that comes last in the netns listing.
	in := []contract.NetRoute{
		{Dst: "0.0.0.0/0", Gateway: "172.16.28.1"},
		{Dst: "172.16.28.0/24", Gateway: "172.16.28.1", Src: "172.16.28.2"},
		{Dst: "172.16.28.1/32", Src: "172.16.28.2"},
	}
	rs, err := GuestRoutes(in, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Gw != nil || rs[0].Dst.String() != "172.16.28.1/32" || rs[0].LinkIndex != 7 {
		t.Fatalf("on-link route must come first: %v", rs)
	}
	if rs[1].Dst.String() != "0.0.0.0/0" || rs[1].Gw.String() != "172.16.28.1" {
		t.Errorf("default route: %v", rs[1])
	}
	if _, err := GuestRoutes([]contract.NetRoute{{Dst: "nope"}}, 1); err == nil {
		t.Error("bad destination accepted")
	}
}
