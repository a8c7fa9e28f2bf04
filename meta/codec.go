package meta

import (
	"encoding/json"
	"fmt"
)

func encode(v any) ([]byte, error) { return json.Marshal(v) }

// decode reports a value that is not a record of v's type as ErrCorrupt.
func decode(key, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrCorrupt, key, err)
	}
	return nil
}
