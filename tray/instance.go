package tray

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// instanceFile names the running tray app's loopback address and secret; it
// sits in the data directory, readable by this user only.
const instanceFile = "tray.instance"

type instanceInfo struct {
	Addr   string `json:"addr"`
	Secret string `json:"secret"`
	PID    int    `json:"pid"`
}

// SignalRunning asks the tray app already running with dataDir to show its
// dashboard, and reports whether one did: then this process has nothing to
// do and exits. A stale file from a crashed run reads as none running. The
// error is for a file that exists but cannot be read.
func SignalRunning(dataDir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, instanceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var info instanceInfo
	if json.Unmarshal(b, &info) != nil || info.Addr == "" {
		return false, nil
	}
	c, err := net.DialTimeout("tcp", info.Addr, 2*time.Second)
	if err != nil {
		return false, nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "show %s\n", info.Secret); err != nil {
		return false, nil
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line) == "ok", nil
}

// instance is this process's claim to be the tray app for a data
// directory: a loopback listener whose address and secret are in
// instanceFile.
type instance struct {
	ln     net.Listener
	path   string
	secret string
	once   sync.Once
}

// claimInstance listens for later launches. It fails with ErrRunning when
// another process already answers for dataDir.
func claimInstance(dataDir string) (*instance, error) {
	if ok, _ := SignalRunning(dataDir); ok {
		return nil, ErrRunning
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	in := &instance{ln: ln, path: filepath.Join(dataDir, instanceFile), secret: hex.EncodeToString(raw[:])}
	b, _ := json.Marshal(instanceInfo{Addr: ln.Addr().String(), Secret: in.secret, PID: os.Getpid()})
	if err := atomicfile.Write(in.path, b, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return in, nil
}

// serve calls show for every later launch until ctx ends or Close.
func (in *instance) serve(ctx context.Context, show func()) {
	stop := context.AfterFunc(ctx, in.Close)
	defer stop()
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return
		}
		go in.handle(c, show)
	}
}

func (in *instance) handle(c net.Conn, show func()) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil {
		return
	}
	verb, secret, _ := strings.Cut(strings.TrimSpace(line), " ")
	if verb != "show" || subtle.ConstantTimeCompare([]byte(secret), []byte(in.secret)) != 1 {
		fmt.Fprintln(c, "denied")
		return
	}
	show()
	fmt.Fprintln(c, "ok")
}

// Close stops listening and removes the file if it is still this process's.
func (in *instance) Close() {
	in.once.Do(func() {
		b, err := os.ReadFile(in.path)
		var info instanceInfo
		if err == nil && json.Unmarshal(b, &info) == nil && info.Secret == in.secret {
			os.Remove(in.path)
		}
		in.ln.Close()
	})
}
