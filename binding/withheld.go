package binding

// Why a live provider of a select-all key was withheld from a binding.
const (
	WithheldNotPublic       = "not public"
	WithheldOtherFederation = "other federation"
	WithheldUnpublished     = "unpublished"
)

// MaxWithheld bounds a Withholding: at about 150 bytes each, a binding
// stays well inside Consul's 512 KiB value however many providers policy
// keeps out of it.
const MaxWithheld = 1000

// Withholding is what policy keeps out of one select-all var.
type Withholding struct {
	Providers []Withheld `json:"providers"` // sorted by instance, key
	// Omitted counts the withheld providers past MaxWithheld left out.
	Omitted int `json:"omitted,omitempty"`
}

// List is w's providers; none when w is nil.
func (w *Withholding) List() []Withheld {
	if w == nil {
		return nil
	}
	return w.Providers
}

// LeftOut is how many withheld providers w left out for size.
func (w *Withholding) LeftOut() int {
	if w == nil {
		return 0
	}
	return w.Omitted
}

// Withheld is a live provider of a select-all key that policy keeps out of
// a binding. It carries only what locates the provider in a rendered
// file: a URL value keeps its scheme, host and path, never credentials or
// query, and any other value is left out.
type Withheld struct {
	Instance string `json:"instance"`
	Service  string `json:"service"`
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`
	Address  string `json:"address,omitempty"`
	Port     int    `json:"port,omitempty"`
	Reason   string `json:"reason"` // WithheldNotPublic, WithheldOtherFederation or WithheldUnpublished
}

// Provider is w as a provider, for functions that locate providers.
func (w Withheld) Provider() Provider {
	return Provider{Key: w.Key, Value: w.Value, Service: w.Service, Instance: w.Instance, Address: w.Address, Port: w.Port}
}
