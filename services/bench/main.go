// Command runyard-bench measures Runyard under load: it starts bin/runyard standalone on
// loopback ports (or measures any Mage-compatible server with --target), runs the scenarios
// of docs/performance.md, prints a table of the figures against their targets and writes them
// as JSON. A missed target is reported, not an error.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "runyard-bench:", err)
		os.Exit(1)
	}
}
