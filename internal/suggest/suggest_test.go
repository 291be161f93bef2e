package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"requires", "provides", "select", "HOST", "PORT", "consul-addr"}
	tests := []struct {
		w, want string
		ok      bool
	}{
		{"requiers", "requires", true},
		{"selct", "select", true},
		{"HOTS", "HOST", true},
		{"Provides", "provides", true},
		{"consul-adr", "consul-addr", true},
		{"zzzzzz", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.w, func(t *testing.T) {
			got, ok := Closest(tt.w, known)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Closest(%q) = %q, %v; want %q, %v", tt.w, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"same", "same", 0}, {"ab", "ba", 2}}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b); got != tt.want || distance(tt.b, tt.a) != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d both ways", tt.a, tt.b, got, tt.want)
		}
	}
}
