package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds the wait for a child to log its listening addresses.
const startTimeout = 15 * time.Second

// stopTimeout is how long a child gets to exit after SIGTERM before it is
// killed.
const stopTimeout = 5 * time.Second

// child is a program that the driver started. Its stderr is kept in a
// tail buffer, shown when it fails.
type child struct {
	name   string
	cmd    *exec.Cmd
	tail   *tailBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // the Wait error, set before exited is closed
}

// processes is the set of children, which stopAll ends.
type processes struct {
	mu       sync.Mutex
	children []*child
}

// start runs path with args and env, and waits until its stderr has
// matched every pattern. It returns the first submatch of each pattern, by
// key. The child gets SIGKILL if the driver dies without stopping it.
func (p *processes) start(ctx context.Context, name, path string, args, env []string, patterns map[string]*regexp.Regexp) (*child, map[string]string, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	// Pdeathsig covers a driver that crashes or is killed, since deferred
	// clean-ups do not run then.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, tail: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	p.mu.Lock()
	p.children = append(p.children, c)
	p.mu.Unlock()

	found := make(chan map[string]string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		c.scan(stderr, patterns, found)
	}()
	go func() {
		<-readDone // Wait closes the pipe, so the reader must finish first
		c.err = cmd.Wait()
		close(c.exited)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case values := <-found:
		return c, values, nil
	case <-c.exited:
		return nil, nil, fmt.Errorf("start %s: exited before it listened (%v); its output:\n%s", name, c.err, c.tail)
	case <-timer.C:
		return nil, nil, fmt.Errorf("start %s: no listening address logged within %s; its output:\n%s", name, startTimeout, c.tail)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// scan reads r line by line until every pattern has matched, sends the
// submatches on found, and then copies the rest of r into the tail buffer
// without splitting lines, which costs little under heavy logging.
func (c *child) scan(r io.Reader, patterns map[string]*regexp.Regexp, found chan<- map[string]string) {
	br := bufio.NewReaderSize(r, 64<<10)
	values := make(map[string]string, len(patterns))
	for len(values) < len(patterns) {
		line, err := br.ReadString('\n')
		c.tail.Write([]byte(line))
		for key, re := range patterns {
			if _, ok := values[key]; ok {
				continue
			}
			if m := re.FindStringSubmatch(line); m != nil {
				values[key] = m[1]
			}
		}
		if err != nil {
			return
		}
	}
	found <- values
	_, _ = io.Copy(c.tail, br)
}

// stop sends SIGTERM and waits for the exit, then kills the process if it
// is still running after stopTimeout.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// running returns an error when the child has exited.
func (c *child) running() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited (%v); its output:\n%s", c.name, c.err, c.tail)
	default:
		return nil
	}
}

// stopAll stops every child, the last started first.
func (p *processes) stopAll() {
	p.mu.Lock()
	children := p.children
	p.children = nil
	p.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		children[i].stop()
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// memoryStatus is the resident memory of a process, from /proc/PID/status.
type memoryStatus struct {
	rssKiB  int64 // VmRSS: resident set size now
	hwmKiB  int64 // VmHWM: peak resident set size
	threads int64 // Threads: OS threads
}

func readMemoryStatus(pid int) (memoryStatus, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memoryStatus{}, fmt.Errorf("read memory status: %w", err)
	}
	var st memoryStatus
	for line := range strings.Lines(string(data)) {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			st.rssKiB = n
		case "VmHWM":
			st.hwmKiB = n
		case "Threads":
			st.threads = n
		}
	}
	if st.rssKiB == 0 {
		return st, errors.New("read memory status: no VmRSS line")
	}
	return st, nil
}

// readConnectionsOpened returns the connection count of a fake upstream
// from its -stats-addr listener.
func readConnectionsOpened(ctx context.Context, client *http.Client, statsAddr string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+statsAddr+"/stats", nil)
	if err != nil {
		return 0, fmt.Errorf("read fake upstream stats: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read fake upstream stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read fake upstream stats: HTTP %d", resp.StatusCode)
	}
	var stats struct {
		ConnectionsOpened *int64 `json:"connections_opened"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		return 0, fmt.Errorf("read fake upstream stats: %w", err)
	}
	if stats.ConnectionsOpened == nil {
		return 0, errors.New("read fake upstream stats: no connections_opened field")
	}
	return *stats.ConnectionsOpened, nil
}
