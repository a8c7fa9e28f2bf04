package fs

import "testing"

// BenchmarkPatient is what the interrupt grace costs a request that is
// answered without an interrupt: a goroutine, two channels and a close.
func BenchmarkPatient(b *testing.B) {
	cancel := make(chan struct{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, stop := patient(cancel)
		stop()
	}
}
