package events

import (
	"errors"
	"fmt"
	"testing"
)

func TestDecodeInstancesGone(t *testing.T) {
	good := InstancesGone{Federation: "default", Service: "api", Instances: []string{"api@h1:8080"}}
	many := InstancesGone{Federation: "default", Service: "api"}
	for i := range MaxGoneInstances + 1 {
		many.Instances = append(many.Instances, fmt.Sprintf("api@h%d:8080", i))
	}
	cases := []struct {
		name    string
		subject string
		data    []byte
		ok      bool
	}{
		{"round trip", InstancesSubject("default", "api"), good.Encode(), true},
		{"another service's subject", InstancesSubject("default", "web"), good.Encode(), false},
		{"the bindings subject", BindingsSubject("default", "api"), good.Encode(), false},
		{"no service", InstancesSubject("default", ""), InstancesGone{Federation: "default"}.Encode(), false},
		{"not JSON", InstancesSubject("default", "api"), []byte("{"), false},
		{"too many instances", InstancesSubject("default", "api"), many.Encode(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeInstancesGone(tc.subject, tc.data)
			if tc.ok {
				if err != nil || got.Service != "api" || len(got.Instances) != 1 || got.Instances[0] != "api@h1:8080" {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
}
