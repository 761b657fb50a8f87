package syncworker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/store"
)

// principalScheduler is the principal of the commands the scheduler sends.
const principalScheduler = "sync-scheduler"

// republishAfter is how long a queued job may wait before the scheduler publishes its
// command again, in case the first publish was lost.
const republishAfter = 30 * time.Second

// schedule runs while this worker holds the scheduler lease: every tick it starts the syncs
// that are due and sends the polls of connectors with mirrored runs.
func (w *Worker) schedule(ctx context.Context) {
	period := min(w.cfg.Tick, w.cfg.PollInterval)
	t := time.NewTicker(period)
	defer t.Stop()
	lastPoll := map[string]time.Time{}
	for {
		if err := w.scheduleOnce(ctx, lastPoll); err != nil && ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("sync scheduler pass failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) scheduleOnce(ctx context.Context, lastPoll map[string]time.Time) error {
	now := w.cfg.Now()
	for off := 0; ; off += listPage {
		cs, _, err := w.store.ListConnectors(ctx, connector.ConnectorFilter{}, store.Page{Limit: listPage, Offset: off})
		if err != nil {
			return fmt.Errorf("syncworker: list connectors: %w", err)
		}
		for i := range cs {
			c := &cs[i]
			if err := w.scheduleConnector(ctx, c, now, lastPoll); err != nil && ctx.Err() == nil {
				w.log.Warn().Err(err).Str("connector_id", c.ID).Msg("connector not scheduled")
			}
		}
		if len(cs) < listPage {
			return nil
		}
	}
}

func (w *Worker) scheduleConnector(ctx context.Context, c *connector.Connector, now time.Time, lastPoll map[string]time.Time) error {
	ls := c.LastSync
	switch {
	case ls == nil || ((ls.Status == connector.JobCompleted || ls.Status == connector.JobFailed) &&
		!now.Before(ls.At.Add(time.Duration(c.Sync.IntervalSeconds)*time.Second))):
		_, _, err := command.StartSync(ctx, w.store, w.bus, c, principalScheduler)
		return err
	case ls.Status == connector.JobQueued && now.Sub(ls.At) > republishAfter:
		j, err := w.store.GetSyncJob(ctx, c.Space, ls.JobID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if j.Status != connector.JobQueued {
			return nil
		}
		env, err := command.SyncEnvelope(j, principalScheduler)
		if err != nil {
			return err
		}
		_, err = w.bus.PublishCommand(ctx, env)
		return err
	}
	if c.Sync.Watermark == nil || ls.Status != connector.JobCompleted && ls.Status != connector.JobFailed {
		return nil // not synced yet, or being synced: the sync reads the unfinished runs
	}
	if now.Sub(lastPoll[c.ID]) < w.cfg.PollInterval {
		return nil
	}
	lastPoll[c.ID] = now
	// One id per connector and poll period: two schedulers briefly leading at once send
	// one poll.
	slot := now.UnixNano() / int64(w.cfg.PollInterval)
	env, err := command.New("poll-"+c.ID+"-"+strconv.FormatInt(slot, 10), command.TypePollConnector, c.Space, principalScheduler,
		command.PollConnector{ConnectorID: c.ID})
	if err != nil {
		return err
	}
	_, err = w.bus.PublishCommand(ctx, env)
	return err
}
