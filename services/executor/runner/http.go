package runner

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
)

// maxHTTPBody bounds how much of a response body is read into the log: enough to show an
// error page or a JSON answer, without downloading whatever a URL happens to serve.
const maxHTTPBody = 64 << 10

func runHTTP(ctx context.Context, r pipeline.Runner, opts Options) (Result, error) {
	start := time.Now()
	out := newLogBuffer(opts.LogLimit)
	res := Result{Metrics: map[string]any{}}
	bodyCut := false
	done := func(err error) (Result, error) {
		res.Log, res.Truncated = out.finish(bodyCut)
		res.Metrics["duration_seconds"] = time.Since(start).Seconds()
		return res, err
	}
	ctx, cancel := withTimeout(ctx, r.Timeout)
	defer cancel()
	if ctx.Err() != nil {
		return done(stopErr(ctx, "http request not sent"))
	}

	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return done(err)
	}
	for k, v := range r.Headers {
		// Go sends req.Host, ignoring a Host entry in the header map; honour the user's.
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}

	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return done(stopErr(ctx, "http request aborted"))
		}
		return done(err)
	}
	defer resp.Body.Close()
	res.Metrics["status_code"] = resp.StatusCode

	fmt.Fprintf(out, "%s %s\n", resp.Proto, resp.Status)
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(out, "%s: %s\n", k, v)
		}
	}
	_, _ = out.WriteString("\n")
	n, err := io.Copy(out, io.LimitReader(resp.Body, maxHTTPBody))
	if err == nil && n == maxHTTPBody {
		var probe [1]byte
		m, _ := io.ReadFull(resp.Body, probe[:])
		bodyCut = m > 0
	}
	if err != nil {
		if ctx.Err() != nil {
			return done(stopErr(ctx, "http response aborted"))
		}
		return done(fmt.Errorf("reading response body: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return done(fmt.Errorf("http status %s", resp.Status))
	}
	return done(nil)
}
