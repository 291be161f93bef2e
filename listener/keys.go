package listener

import (
	"reflect"
	"strings"
)

// ConfigKeys are the top-level keys of listener.yaml, for a caller that
// reads the same file for other settings.
func ConfigKeys() []string {
	t := reflect.TypeFor[Config]()
	var keys []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}
