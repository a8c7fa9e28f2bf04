package meta

import (
	"encoding/json"
	"fmt"
)

// Records are JSON: self-describing, tolerant of added fields across
// versions, and cheap next to the fsync every durable write pays. Decoding
// never panics on arbitrary bytes; a bad value is reported as ErrCorrupt.

func encode(v any) ([]byte, error) { return json.Marshal(v) }

func decode(key, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrCorrupt, key, err)
	}
	return nil
}
