package sessionmgr

import "context"

// fallocate(2) modes, as Linux numbers them.
const (
	AllocKeepSize  = 0x01 // FALLOC_FL_KEEP_SIZE
	AllocPunchHole = 0x02 // FALLOC_FL_PUNCH_HOLE
	AllocZeroRange = 0x10 // FALLOC_FL_ZERO_RANGE
)

// Allocate is fallocate(2) on the node. Space is not reserved (a staged
// file grows as it is written), so preallocation succeeds without a
// change of content: mode 0 only extends a file it reaches past, with
// zeros, and KEEP_SIZE alone only moves mtime and ctime, as every
// successful fallocate does on Linux filesystems. Punching a hole or zeroing a range writes
// zeros over it. changed tells whether the content changed, a change its
// handle's close commits. Other modes (collapse, insert, unshare) are
// Unsupported.
func (d *Draft) Allocate(ctx context.Context, off, length int64, mode uint32) (changed bool, err error) {
	if off < 0 || length <= 0 {
		return false, errorf(KindInvalidArgument, "fallocate of %d bytes at %d", length, off)
	}
	end := off + length
	d.mu.Lock()
	size, err := d.sizeLocked(ctx)
	d.mu.Unlock()
	if err != nil {
		return false, err
	}
	switch mode {
	case 0, AllocKeepSize:
		if mode == 0 && end > size {
			return true, d.Truncate(ctx, end)
		}
		// Nothing to store, but Linux filesystems move mtime and
		// ctime on every fallocate that succeeds.
		now := d.m.clock.Now()
		return false, d.SetPosix(ctx, PosixChange{Mtime: &now})
	case AllocPunchHole | AllocKeepSize:
		return true, d.zeroRange(ctx, off, min(end, size))
	case AllocZeroRange, AllocZeroRange | AllocKeepSize:
		if mode&AllocKeepSize != 0 {
			end = min(end, size)
		} else if end > size {
			if err := d.Truncate(ctx, end); err != nil {
				return true, err
			}
			end = size // past the old end it reads as zeros already
		}
		return true, d.zeroRange(ctx, off, end)
	}
	return false, errorf(KindUnsupported, "fallocate mode %#x is not supported (only preallocation, KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE)", mode)
}

// zeroRange writes zeros over [off, end).
func (d *Draft) zeroRange(ctx context.Context, off, end int64) error {
	zeros := make([]byte, min(max(end-off, 0), 1<<20))
	for off < end {
		n, err := d.WriteAt(ctx, zeros[:min(int64(len(zeros)), end-off)], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
