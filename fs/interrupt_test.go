package fs

import (
	"testing"
	"time"
)

// An interrupt reaches the request's context only if the request is still
// running interruptGrace later.
func TestPatientCancel(t *testing.T) {
	cancel := make(chan struct{})
	delayed, stop := patient(cancel)
	close(cancel)
	select {
	case <-delayed:
		t.Fatal("cancelled at once")
	case <-time.After(interruptGrace / 2):
	}
	stop() // answered within the grace: never cancelled
	time.Sleep(interruptGrace)
	select {
	case <-delayed:
		t.Fatal("cancelled after the request was answered")
	default:
	}

	cancel = make(chan struct{})
	delayed, stop = patient(cancel)
	defer stop()
	close(cancel)
	select {
	case <-delayed:
	case <-time.After(interruptGrace + 5*time.Second):
		t.Fatalf("not cancelled %v after the interrupt", interruptGrace+5*time.Second)
	}
	if c, stop := patient(nil); c != nil {
		t.Error("a request without a cancel channel got one")
	} else {
		stop()
	}
}
