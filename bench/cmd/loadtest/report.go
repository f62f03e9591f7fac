package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// writeReport prints the measurements as Markdown.
func writeReport(w io.Writer, m *measurements) {
	cfg := m.cfg
	fmt.Fprintln(w, "## Load test")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Machine: %d CPUs (GOMAXPROCS %d), %s, %s %s/%s.\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "Rounds: %d per level, %s per path per round, %s warm-up per path per level; path order rotated each round.\n",
		cfg.rounds, cfg.round, cfg.warmup)
	fmt.Fprintf(w, "Server flags: `%s`, with OPENAI_API_KEY set to the fake upstream's key.\n", strings.Join(m.serverArgs, " "))
	fmt.Fprintln(w)
	for _, p := range m.paths {
		fmt.Fprintf(w, "- %s: %s\n", p.name, p.description)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "| callers | path | calls/s | p50 | p99 | vs proxy | errors |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|")
	for _, callers := range cfg.levels {
		base := m.results["proxy"][callers]
		for _, p := range m.paths {
			r := m.results[p.name][callers]
			if r == nil {
				continue
			}
			ratio := "–"
			if base != nil && base.rate() > 0 {
				ratio = fmt.Sprintf("%.2f×", r.rate()/base.rate())
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %d |\n",
				callers, p.name, r.rate(), formatLatency(r.percentile(0.50)), formatLatency(r.percentile(0.99)), ratio, r.errors)
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|--:|")
	fmt.Fprintf(w, "| upstream connections opened in %s at %d gRPC callers, from a cold start (%d calls) | %d |\n",
		cfg.connRun, cfg.connCallers, m.conns.calls.calls, m.conns.opened)
	if mem := m.memory; mem != nil {
		fmt.Fprintf(w, "| server VmRSS, idle before the memory run | %s |\n", formatKiB(mem.idle.rssKiB))
		fmt.Fprintf(w, "| server VmRSS, largest sample with %d calls in flight (upstream delay %s) | %s |\n",
			cfg.memCalls, cfg.memDelay, formatKiB(mem.inFlight.rssKiB))
		fmt.Fprintf(w, "| server VmHWM, peak over the memory run | %s |\n", formatKiB(mem.peak.hwmKiB))
		fmt.Fprintf(w, "| server OS threads with %d calls in flight | %d |\n", cfg.memCalls, mem.inFlight.threads)
		fmt.Fprintf(w, "| upstream connections opened during the memory run (%d calls) | %d |\n",
			mem.calls.calls, mem.upstreamConns)
	}
	fmt.Fprintln(w)
	writeTargets(w, m)
}

// writeTargets prints the service's throughput, connection and memory
// targets with the measured values.
func writeTargets(w io.Writer, m *measurements) {
	type target struct {
		name     string
		measured string
		met      bool
	}
	var targets []target
	ratio := func(path string, callers int) (float64, bool) {
		r, base := m.results[path][callers], m.results["proxy"][callers]
		if r == nil || base == nil || base.rate() == 0 {
			return 0, false
		}
		return r.rate() / base.rate(), true
	}
	for _, t := range []struct {
		path    string
		callers int
		min     float64
	}{{"grpc", 64, 1.3}, {"grpc", 1, 1.0}, {"facade", 64, 0.9}} {
		if got, ok := ratio(t.path, t.callers); ok {
			targets = append(targets, target{
				name:     fmt.Sprintf("%s throughput ≥ %.1f× proxy at %d callers", t.path, t.min, t.callers),
				measured: fmt.Sprintf("%.2f×", got),
				met:      got >= t.min,
			})
		}
	}
	if m.cfg.connCallers == 64 {
		targets = append(targets, target{
			name:     fmt.Sprintf("upstream connections opened in %s at 64 callers ≤ 128", m.cfg.connRun),
			measured: fmt.Sprint(m.conns.opened),
			met:      m.conns.opened <= 128,
		})
	}
	if mem := m.memory; mem != nil && m.cfg.memCalls == 1000 {
		peak := max(mem.inFlight.rssKiB, mem.peak.hwmKiB)
		targets = append(targets, target{
			name:     "server resident memory (VmHWM) with 1000 calls in flight ≤ 40 MiB",
			measured: formatKiB(peak),
			met:      peak <= 40<<10,
		})
	}
	if len(targets) == 0 {
		return
	}
	fmt.Fprintln(w, "| target | measured | result |")
	fmt.Fprintln(w, "|---|--:|---|")
	for _, t := range targets {
		result := "met"
		if !t.met {
			result = "missed"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, t.measured, result)
	}
}

func formatLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func formatKiB(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if key, value, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown CPU"
}
