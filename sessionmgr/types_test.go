package sessionmgr

import (
	"encoding/json"
	"testing"
	"time"
)

// The session models are the REST API's: their JSON (names, order,
// omitted fields) is fixed, however the Go types share their fields.
func TestSessionModelsJSON(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var u UpdateSession
	u.ID, u.LibraryItemID, u.LibraryItemContentVersion = "u", "i", "2"
	u.ErrorMessage, u.ClientProgress, u.State, u.ExpirationTime = newMessage("m", "e"), 5, StateActive, at
	u.PreviewInfo, u.WarningBehavior, u.BytesTransferred = PreviewInfo{State: "NOT_APPLICABLE"}, []WarningBehavior{}, 3
	var d DownloadSession
	d.ID, d.LibraryItemID, d.LibraryItemContentVersion = "d", "i", "2"
	d.ErrorMessage, d.ClientProgress, d.State, d.ExpirationTime = newMessage("m", "e"), 5, StateActive, at
	d.BytesTransferred = 3
	for _, tc := range []struct {
		v    any
		want string
	}{
		{u, `{"id":"u","library_item_id":"i","library_item_content_version":"2","error_message":{"id":"m","default_message":"e","args":[]},"client_progress":5,"state":"ACTIVE","expiration_time":"2030-01-01T00:00:00Z","preview_info":{"state":"NOT_APPLICABLE"},"warning_behavior":[],"x_bytes_transferred":3}`},
		{d, `{"id":"d","library_item_id":"i","library_item_content_version":"2","error_message":{"id":"m","default_message":"e","args":[]},"client_progress":5,"state":"ACTIVE","expiration_time":"2030-01-01T00:00:00Z","x_bytes_transferred":3}`},
		{UpdateSession{}, `{"id":"","library_item_id":"","library_item_content_version":"","client_progress":0,"state":"","expiration_time":"0001-01-01T00:00:00Z","preview_info":{"state":""},"warning_behavior":null,"x_bytes_transferred":0}`},
		{DownloadSession{}, `{"id":"","library_item_id":"","library_item_content_version":"","client_progress":0,"state":"","expiration_time":"0001-01-01T00:00:00Z","x_bytes_transferred":0}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%T:\n got %s\nwant %s", tc.v, b, tc.want)
		}
	}
}
