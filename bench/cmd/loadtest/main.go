// Command loadtest compares the service with a bare reverse-proxy hop on
// loopback. It starts the fake upstream in fast mode, the baseline proxy
// (bench/proxy) and the server as child processes, drives each path with
// the same closed-loop load generator at several concurrency levels, and
// prints a Markdown report on stdout. Progress goes to stderr.
//
// The paths are:
//
//   - proxy: HTTP client → httputil.ReverseProxy → fake upstream
//   - grpc: gRPC client → server's gRPC listener → service → fake upstream
//   - facade: HTTP client → server's REST façade → service → fake upstream
//
// Each concurrency level runs several short rounds, and every round runs
// each path once, in an order rotated from round to round, so that drift
// on a shared machine affects all paths alike.
//
// Two more figures are measured: the connections that the server opens to
// the upstream during a run at 64 callers, read from the fake upstream's
// -stats-addr listener, and the server's resident memory with 1000 calls in
// flight against a second fake upstream that delays every response.
//
// Every child listens on 127.0.0.1 and is stopped when the driver exits,
// or killed by the kernel (Pdeathsig) if the driver dies first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the driver's configuration, from flags.
type config struct {
	binDir        string
	proxyBin      string
	levels        []int
	rounds        int
	round         time.Duration
	warmup        time.Duration
	paths         []string
	connRun       time.Duration
	connCallers   int
	memCalls      int
	memDelay      time.Duration
	memRun        time.Duration
	grpcConns     int
	serverLog     string
	apiKey        string
	idleConnsHost int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	var cfg config
	var levels, paths string
	fs.StringVar(&cfg.binDir, "bin", "bin", "`directory` that holds the server and fakeupstream binaries")
	fs.StringVar(&cfg.proxyBin, "proxy", "", "`path` of the baseline proxy binary (default BIN/benchproxy)")
	fs.StringVar(&levels, "callers", "1,16,64", "comma-separated concurrency levels: closed-loop callers per path")
	fs.IntVar(&cfg.rounds, "rounds", 4, "rounds per concurrency level; each round runs every path once")
	fs.DurationVar(&cfg.round, "round", 2*time.Second, "`duration` of one path's run in a round")
	fs.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "unrecorded run of each path before each concurrency level")
	fs.StringVar(&paths, "paths", "proxy,grpc,facade", "comma-separated paths to measure: proxy, grpc, facade, direct")
	fs.DurationVar(&cfg.connRun, "conn-run", 10*time.Second, "`duration` of the gRPC run whose new upstream connections are counted")
	fs.IntVar(&cfg.connCallers, "conn-callers", 64, "callers of the connection-count run")
	fs.IntVar(&cfg.memCalls, "mem-calls", 1000, "calls in flight during the memory measurement; 0 skips it")
	fs.DurationVar(&cfg.memDelay, "mem-delay", 2*time.Second, "delay of the slow fake upstream in the memory measurement")
	fs.DurationVar(&cfg.memRun, "mem-run", 5*time.Second, "`duration` of the memory measurement")
	fs.IntVar(&cfg.grpcConns, "grpc-conns", 1, "gRPC client connections that the callers share")
	fs.StringVar(&cfg.serverLog, "server-log-level", "info", "-log-level of the server; info logs one line per call")
	fs.StringVar(&cfg.apiKey, "api-key", "sk-bench-key", "API `key` of the fake upstream, given to the server as OPENAI_API_KEY")
	fs.IntVar(&cfg.idleConnsHost, "proxy-idle-conns", 256, "-max-idle-conns-per-host of the baseline proxy")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q: the program takes flags only", fs.Arg(0))
	}
	if cfg.proxyBin == "" {
		cfg.proxyBin = filepath.Join(cfg.binDir, "benchproxy")
	}
	for _, field := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("invalid -callers %q: want positive integers separated by commas", levels)
		}
		cfg.levels = append(cfg.levels, n)
	}
	for _, field := range strings.Split(paths, ",") {
		name := strings.TrimSpace(field)
		switch name {
		case "proxy", "grpc", "facade", "direct":
		default:
			return cfg, fmt.Errorf("invalid -paths entry %q: want proxy, grpc, facade or direct", name)
		}
		cfg.paths = append(cfg.paths, name)
	}
	switch {
	case cfg.rounds <= 0:
		return cfg, fmt.Errorf("invalid -rounds %d: must be positive", cfg.rounds)
	case cfg.round <= 0:
		return cfg, fmt.Errorf("invalid -round %s: must be positive", cfg.round)
	case cfg.warmup < 0:
		return cfg, fmt.Errorf("invalid -warmup %s: must not be negative", cfg.warmup)
	case cfg.connCallers <= 0:
		return cfg, fmt.Errorf("invalid -conn-callers %d: must be positive", cfg.connCallers)
	case cfg.memCalls < 0:
		return cfg, fmt.Errorf("invalid -mem-calls %d: must not be negative", cfg.memCalls)
	case cfg.memCalls > 0 && cfg.memRun <= cfg.memDelay:
		return cfg, fmt.Errorf("invalid -mem-run %s: must be longer than -mem-delay %s", cfg.memRun, cfg.memDelay)
	case cfg.grpcConns <= 0:
		return cfg, fmt.Errorf("invalid -grpc-conns %d: must be positive", cfg.grpcConns)
	case cfg.apiKey == "":
		return cfg, errors.New("invalid -api-key: must not be empty")
	}
	return cfg, nil
}

// Patterns that find the listening addresses in the children's logs.
var (
	fakeURLPattern   = regexp.MustCompile(`url=(http://127\.0\.0\.1:[0-9]+/v1)`)
	fakeStatsPattern = regexp.MustCompile(`stats_addr=(127\.0\.0\.1:[0-9]+)`)
	proxyPattern     = regexp.MustCompile(`msg="proxy listening" addr=(127\.0\.0\.1:[0-9]+)`)
	grpcPattern      = regexp.MustCompile(`"grpc\.addr":"(127\.0\.0\.1:[0-9]+)"`)
	httpPattern      = regexp.MustCompile(`"http\.addr":"(127\.0\.0\.1:[0-9]+)"`)
)

// fake is a started fake upstream.
type fake struct {
	url       string // API root, such as http://127.0.0.1:8081/v1
	statsAddr string
}

func startFake(ctx context.Context, procs *processes, cfg config, name string, delay time.Duration) (fake, error) {
	args := []string{"-addr", "127.0.0.1:0", "-fast", "-api-key", cfg.apiKey, "-stats-addr", "127.0.0.1:0"}
	if delay > 0 {
		args = append(args, "-delay", delay.String())
	}
	_, values, err := procs.start(ctx, name, filepath.Join(cfg.binDir, "fakeupstream"), args, nil,
		map[string]*regexp.Regexp{"url": fakeURLPattern, "stats": fakeStatsPattern})
	if err != nil {
		return fake{}, err
	}
	return fake{url: values["url"], statsAddr: values["stats"]}, nil
}

// server is a started server binary.
type server struct {
	child    *child
	grpcAddr string
	httpAddr string
}

// serverArgs are the server's flags apart from the listeners: the
// configuration under test. The concurrency limit leaves room for the
// memory measurement's calls.
func serverArgs(cfg config, upstreamURL string) []string {
	return []string{
		"-upstream-url", upstreamURL,
		"-max-concurrent-upstream", strconv.Itoa(max(2*cfg.memCalls, 1024)),
		"-log-level", cfg.serverLog,
		"-log-format", "json",
	}
}

func startServer(ctx context.Context, procs *processes, cfg config, name, upstreamURL string) (server, error) {
	args := append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, serverArgs(cfg, upstreamURL)...)
	c, values, err := procs.start(ctx, name, filepath.Join(cfg.binDir, "server"), args,
		[]string{"OPENAI_API_KEY=" + cfg.apiKey},
		map[string]*regexp.Regexp{"grpc": grpcPattern, "http": httpPattern})
	if err != nil {
		return server{}, err
	}
	return server{child: c, grpcAddr: values["grpc"], httpAddr: values["http"]}, nil
}

// measurements are the figures of one run, for the report.
type measurements struct {
	cfg        config
	paths      []*path
	results    map[string]map[int]*result // by path name, then callers
	conns      connFigures
	memory     *memoryFigures
	serverArgs []string
}

type connFigures struct {
	opened int64
	calls  result
}

type memoryFigures struct {
	idle          memoryStatus
	inFlight      memoryStatus // the largest VmRSS sampled while every call was upstream
	peak          memoryStatus // at the end: VmHWM is the peak of the whole run
	upstreamConns int64
	calls         result
}

func run(ctx context.Context, cfg config, stdout io.Writer, logger *slog.Logger) error {
	for _, bin := range []string{filepath.Join(cfg.binDir, "server"), filepath.Join(cfg.binDir, "fakeupstream"), cfg.proxyBin} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("missing binary: %w; run make build first", err)
		}
	}
	procs := &processes{}
	defer procs.stopAll()

	upstream, err := startFake(ctx, procs, cfg, "fake upstream", 0)
	if err != nil {
		return err
	}
	upstreamRoot := strings.TrimSuffix(upstream.url, "/v1")
	_, proxyValues, err := procs.start(ctx, "proxy", cfg.proxyBin,
		[]string{"-upstream", upstreamRoot, "-max-idle-conns-per-host", strconv.Itoa(cfg.idleConnsHost)}, nil,
		map[string]*regexp.Regexp{"addr": proxyPattern})
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, procs, cfg, "server", upstream.url)
	if err != nil {
		return err
	}
	logger.Info("started", "fake_upstream", upstream.url, "proxy", proxyValues["addr"],
		"grpc", srv.grpcAddr, "http", srv.httpAddr)

	maxCallers := max(slices.Max(cfg.levels), cfg.connCallers)
	grpcPath, err := newGRPCPath(srv.grpcAddr, cfg.grpcConns)
	if err != nil {
		return err
	}
	byName := map[string]*path{
		"proxy": newHTTPPath("proxy", "HTTP client → httputil.ReverseProxy → fake upstream",
			"http://"+proxyValues["addr"], "Bearer "+cfg.apiKey, maxCallers),
		"grpc": grpcPath,
		"facade": newHTTPPath("facade", "HTTP client → server (REST façade) → service → fake upstream",
			"http://"+srv.httpAddr, "", maxCallers),
		"direct": newHTTPPath("direct", "HTTP client → fake upstream, no hop (for reference)",
			upstreamRoot, "Bearer "+cfg.apiKey, maxCallers),
	}
	m := &measurements{cfg: cfg, results: map[string]map[int]*result{}, serverArgs: serverArgs(cfg, "URL")}
	for _, name := range cfg.paths {
		m.paths = append(m.paths, byName[name])
	}
	defer func() {
		for _, p := range byName {
			p.close()
		}
	}()

	statsClient := &http.Client{Timeout: 5 * time.Second}
	if m.conns, err = measureConnections(ctx, cfg, grpcPath, upstream, statsClient, logger); err != nil {
		return err
	}
	if err := measureThroughput(ctx, cfg, m, logger, srv.child); err != nil {
		return err
	}
	if cfg.memCalls > 0 {
		if m.memory, err = measureMemory(ctx, cfg, procs, statsClient, logger); err != nil {
			return err
		}
	}
	writeReport(stdout, m)
	return m.failures()
}

// measureConnections runs the gRPC path at cfg.connCallers callers from a
// cold start, the first traffic that the server sees, and counts the
// connections that the fake upstream accepted meanwhile.
func measureConnections(ctx context.Context, cfg config, p *path, upstream fake, client *http.Client, logger *slog.Logger) (connFigures, error) {
	before, err := readConnectionsOpened(ctx, client, upstream.statsAddr)
	if err != nil {
		return connFigures{}, err
	}
	logger.Info("counting upstream connections", "path", p.name, "callers", cfg.connCallers, "duration", cfg.connRun)
	calls := runClosedLoop(ctx, p, cfg.connCallers, cfg.connRun, false)
	after, err := readConnectionsOpened(ctx, client, upstream.statsAddr)
	if err != nil {
		return connFigures{}, err
	}
	return connFigures{opened: after - before, calls: calls}, ctx.Err()
}

// measureThroughput runs, for each concurrency level, a warm-up of every
// path, then cfg.rounds rounds in which every path runs once. The order of
// the paths rotates by one each round.
func measureThroughput(ctx context.Context, cfg config, m *measurements, logger *slog.Logger, watched ...*child) error {
	for _, p := range m.paths {
		m.results[p.name] = map[int]*result{}
	}
	for _, callers := range cfg.levels {
		if cfg.warmup > 0 {
			for _, p := range m.paths {
				runClosedLoop(ctx, p, callers, cfg.warmup, false)
			}
		}
		for round := range cfg.rounds {
			for i := range m.paths {
				p := m.paths[(i+round)%len(m.paths)]
				r := runClosedLoop(ctx, p, callers, cfg.round, true)
				if err := ctx.Err(); err != nil {
					return err
				}
				for _, c := range watched {
					if err := c.running(); err != nil {
						return err
					}
				}
				cell := m.results[p.name][callers]
				if cell == nil {
					cell = &result{}
					m.results[p.name][callers] = cell
				}
				cell.add(r)
				logger.Info("round", "callers", callers, "round", round+1, "path", p.name,
					"calls_per_second", int(r.rate()), "errors", r.errors)
			}
		}
	}
	return nil
}

// measureMemory starts a second fake upstream that waits cfg.memDelay
// before every response and a second server in front of it, then keeps
// cfg.memCalls gRPC calls in flight for cfg.memRun while sampling the
// server's /proc status every 50 ms.
func measureMemory(ctx context.Context, cfg config, procs *processes, client *http.Client, logger *slog.Logger) (*memoryFigures, error) {
	slow, err := startFake(ctx, procs, cfg, "slow fake upstream", cfg.memDelay)
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, procs, cfg, "memory server", slow.url)
	if err != nil {
		return nil, err
	}
	p, err := newGRPCPath(srv.grpcAddr, cfg.grpcConns)
	if err != nil {
		return nil, err
	}
	defer p.close()
	pid := srv.child.cmd.Process.Pid
	figures := &memoryFigures{}
	if figures.idle, err = readMemoryStatus(pid); err != nil {
		return nil, err
	}
	before, err := readConnectionsOpened(ctx, client, slow.statsAddr)
	if err != nil {
		return nil, err
	}
	logger.Info("measuring memory", "calls_in_flight", cfg.memCalls, "upstream_delay", cfg.memDelay, "duration", cfg.memRun)

	done := make(chan result, 1)
	go func() { done <- runClosedLoop(ctx, p, cfg.memCalls, cfg.memRun, false) }()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case figures.calls = <-done:
			if figures.peak, err = readMemoryStatus(pid); err != nil {
				return nil, err
			}
			if figures.inFlight.rssKiB == 0 {
				return nil, fmt.Errorf("measure memory: the slow fake upstream never had %d connections (saw %d)",
					cfg.memCalls, figures.upstreamConns)
			}
			return figures, srv.child.running()
		case <-ticker.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		opened, err := readConnectionsOpened(ctx, client, slow.statsAddr)
		if err != nil {
			return nil, err
		}
		figures.upstreamConns = opened - before
		if figures.upstreamConns < int64(cfg.memCalls) {
			continue
		}
		st, err := readMemoryStatus(pid)
		if err != nil {
			return nil, err
		}
		if st.rssKiB > figures.inFlight.rssKiB {
			figures.inFlight = st
		}
	}
}

// failures returns an error when any call failed, after the report showed
// the counts.
func (m *measurements) failures() error {
	var failed []string
	for _, p := range m.paths {
		for _, callers := range m.cfg.levels {
			if r := m.results[p.name][callers]; r != nil && r.errors > 0 {
				failed = append(failed, fmt.Sprintf("%s at %d callers: %d of %d calls failed, first: %v",
					p.name, callers, r.errors, r.calls, r.firstErr))
			}
		}
	}
	if r := m.conns.calls; r.errors > 0 {
		failed = append(failed, fmt.Sprintf("connection run: %d of %d calls failed, first: %v", r.errors, r.calls, r.firstErr))
	}
	if m.memory != nil && m.memory.calls.errors > 0 {
		r := m.memory.calls
		failed = append(failed, fmt.Sprintf("memory run: %d of %d calls failed, first: %v", r.errors, r.calls, r.firstErr))
	}
	if len(failed) > 0 {
		return errors.New("calls failed:\n" + strings.Join(failed, "\n"))
	}
	return nil
}
