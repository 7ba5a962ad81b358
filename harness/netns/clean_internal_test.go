package netns

import (
	"reflect"
	"testing"
)

func TestGroupRuns(t *testing.T) {
	names := []string{"fl-a-backend", "fl-a-b-router", "fl-a-b-x", "fl-a-client", "fl-a-router", "fl-svcx",
		"fl-zz-client", "fl-zz-proxy"}
	want := []Run{
		{Prefix: "fl-a", Namespaces: []string{"fl-a-backend", "fl-a-client", "fl-a-router"}},
		{Prefix: "fl-a-b", Namespaces: []string{"fl-a-b-router", "fl-a-b-x"}},
		{Prefix: "fl-svcx", Namespaces: []string{"fl-svcx"}},
		{Prefix: "fl-zz", Namespaces: []string{"fl-zz-client", "fl-zz-proxy"}}, // router gone: an orphan run
	}
	if got := groupRuns(names); !reflect.DeepEqual(got, want) {
		t.Errorf("groupRuns:\n got %+v\nwant %+v", got, want)
	}
	if got := groupRuns(nil); len(got) != 0 {
		t.Errorf("groupRuns(nil) = %+v", got)
	}
}
