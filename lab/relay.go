package lab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Impairment is what Netem does to a link, in each direction.
type Impairment struct {
	Delay time.Duration // added one-way delay
	Loss  float64       // fraction of frames dropped, 0.01 for 1%
}

func (im Impairment) String() string {
	return fmt.Sprintf("delay %s loss %.3g%%", im.Delay, im.Loss*100)
}

// openTap creates a TAP device called name in namespace ns and returns its
// file. The device lives as long as the file is open.
func openTap(ns, name string) (*os.File, error) {
	var f *os.File
	err := inNS(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("create tap %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	return f, err
}

// relay is a link made of two TAP devices, one in the node's namespace and
// one on the bridge, whose frames the test process copies, delaying and
// dropping them as its Impairment says. It stands in for tc netem on kernels
// built without it.
type relay struct {
	node, lan *os.File

	mu  sync.Mutex
	imp Impairment

	wg sync.WaitGroup
}

func newRelay(node, lan *os.File) *relay {
	r := &relay{node: node, lan: lan}
	r.wg.Add(2)
	go r.pump(node, lan)
	go r.pump(lan, node)
	return r
}

func (r *relay) set(imp Impairment) {
	r.mu.Lock()
	r.imp = imp
	r.mu.Unlock()
}

func (r *relay) impairment() Impairment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.imp
}

// frame is one frame waiting for its delivery time.
type frame struct {
	due  time.Time
	data []byte
}

// queueLen bounds the frames in flight in one direction, as netem's limit
// does; a full queue drops.
const queueLen = 1000

// pump copies frames from src to dst until src is closed.
func (r *relay) pump(src, dst *os.File) {
	defer r.wg.Done()
	q := make(chan frame, queueLen)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for fr := range q {
			if d := time.Until(fr.due); d > 0 {
				time.Sleep(d)
			}
			// A write to a device that is down fails: the frame is lost,
			// as on an unplugged cable.
			_, _ = dst.Write(fr.data)
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				break
			}
			// Reads of a device that went down fail until it is up again.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		imp := r.impairment()
		if imp.Loss > 0 && rand.Float64() < imp.Loss {
			continue
		}
		fr := frame{due: time.Now().Add(imp.Delay), data: append([]byte(nil), buf[:n]...)}
		select {
		case q <- fr:
		default:
		}
	}
	close(q)
	<-done
}

// close removes both devices and waits for the copying to stop.
func (r *relay) close() {
	r.node.Close()
	r.lan.Close()
	r.wg.Wait()
}
