package manifest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSize bounds every manifest or datastores file and every service's
// normalized manifest JSON, in bytes. Consul keeps each manifest and each
// datastore value in one KV value and answers 413 to a value larger than its
// kv_max_value_size, 512 KiB by default; refusing here names the file
// before anything is written, and refuses a 50 MB file without parsing it.
const MaxSize = 512 << 10

// sizeAdvice says where a manifest's bulk belongs.
const sizeAdvice = "Consul keeps it in one KV value (kv_max_value_size, 512 KiB by default); keep large template bodies in files on the hosts (templates.NAME.source) instead of contents"

// readFile reads a manifest file, refusing one over MaxSize without reading
// all of it.
func readFile(file string) ([]byte, *Problem) {
	f, err := os.Open(file)
	if err != nil {
		return nil, &Problem{File: file, Message: "cannot read: " + unwrapPathError(err)}
	}
	defer func() { _ = f.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, &Problem{File: file, Message: "cannot read: " + unwrapPathError(err)}
	}
	if len(data) > MaxSize {
		size := int64(len(data))
		if info, err := f.Stat(); err == nil {
			size = info.Size()
		}
		return nil, tooLarge(file, "file", size)
	}
	return data, nil
}

// checkStoredSize refuses a service whose normalized manifest, as publish
// stores it, would not fit in one Consul KV value.
func checkStoredSize(m *Manifest, files []string) *Problem {
	data, err := json.Marshal(m)
	if err != nil || len(data) <= MaxSize {
		return nil // an unencodable manifest is a bug that publish reports
	}
	what := "normalized manifest of service " + m.ID
	if len(files) > 1 {
		what += " (merged from " + strings.Join(files, ", ") + ")"
	}
	return tooLarge(files[len(files)-1], what, int64(len(data)))
}

func tooLarge(file, what string, size int64) *Problem {
	return &Problem{File: file, Message: fmt.Sprintf("%s is %d bytes (%s), over the limit of %d bytes (%s): %s", what, size, byteSize(size), MaxSize, byteSize(MaxSize), sizeAdvice)}
}

// byteSize formats n as people read sizes: 512 KiB, 512.1 KiB, 50.0 MiB.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}
