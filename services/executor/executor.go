// Package executor is Runyard's run engine. It consumes run commands, creates pipeline runs
// and their block runs, hands ready blocks to workers over JetStream, executes them with
// their runners, advances each run through its DAG, and publishes a status event on every
// change. Several executor processes share the work through the same durable consumers.
package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/idalloc"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/services/executor/runner"
)

// Store is what the executor needs from storage. Every update closure is applied with
// optimistic concurrency on one document; a closure returning run.ErrNoChange writes nothing.
type Store interface {
	NextIDs(ctx context.Context, name string, n int64) (int64, error)
	GetPipeline(ctx context.Context, space, uuid string) (*pipeline.Pipeline, error)
	GetSchedule(ctx context.Context, id int64) (*schedule.Schedule, error)
	CreateRun(ctx context.Context, r *run.PipelineRun) error
	CreateBlockRuns(ctx context.Context, brs []run.BlockRun) error
	GetRun(ctx context.Context, id int64) (*run.PipelineRun, error)
	GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error)
	UpdateRun(ctx context.Context, id int64, fn func(*run.PipelineRun) error) (*run.PipelineRun, error)
	ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error)
	ActiveRuns(ctx context.Context, limit int) ([]run.PipelineRun, error)
	UpdateSchedule(ctx context.Context, id int64, fn func(*schedule.Schedule) error) (*schedule.Schedule, error)
	BlockRunsOf(ctx context.Context, runIDs ...int64) ([]run.BlockRun, error)
	GetBlockRun(ctx context.Context, id int64) (*run.BlockRun, error)
	UpdateBlockRun(ctx context.Context, id int64, fn func(*run.BlockRun) error) (*run.BlockRun, error)
	UpdateGate(ctx context.Context, key string, fn func(*run.Gate) error) (*run.Gate, error)
	DeleteGate(ctx context.Context, key string) error
	SaveOutcome(ctx context.Context, o store.CommandOutcome) error
	GetOutcome(ctx context.Context, id string) (*store.CommandOutcome, error)
	BackfillStore
	CommentStore
}

// Bus is what the executor needs from JetStream.
type Bus interface {
	Consume(ctx context.Context, cfg natsbus.ConsumerConfig, h natsbus.Handler) (*natsbus.Consumer, error)
	PublishWork(ctx context.Context, subject, msgID string, v any) error
	PublishCommand(ctx context.Context, env command.Envelope) (duplicate bool, err error)
	PublishEvent(ctx context.Context, subject string, ev event.Event) error
	Reply(r command.Reply) error
	Broadcast(subject string, data []byte) error
	Listen(subject string, f func(subject string, data []byte)) (stop func(), err error)
}

// Config tunes an executor.
type Config struct {
	// Workers is how many block runs this process executes at once.
	Workers int
	// LogLimit bounds the output kept per block run, in bytes.
	LogLimit int
}

// Executor is one executor process's engine.
type Executor struct {
	cfg     Config
	store   Store
	bus     Bus
	log     zerolog.Logger
	runners runner.Registry
	runIDs  *idalloc.Allocator
	blkIDs  *idalloc.Allocator

	consumers []*natsbus.Consumer
	cancels   *cancels
	unlisten  func()
	// stopReconcile ends the reconciler; reconciled is closed when it has.
	stopReconcile context.CancelFunc
	reconciled    chan struct{}
}

// commandWorkers is how many commands one executor handles at once.
const commandWorkers = 64

// Sequence names for id allocation; shared with every component that allocates these ids.
const (
	SeqPipelineRuns = "pipeline_runs"
	SeqBlockRuns    = "block_runs"
)

// New returns an executor. Start begins consuming.
func New(cfg Config, st Store, bus Bus, log zerolog.Logger) *Executor {
	return &Executor{
		cfg:     cfg,
		store:   st,
		bus:     bus,
		log:     log,
		runners: runner.Default(),
		runIDs:  idalloc.New(st, SeqPipelineRuns, 100),
		blkIDs:  idalloc.New(st, SeqBlockRuns, 500),
		cancels: newCancels(),
	}
}

// Start creates the executor's durable consumers and begins handling commands and work.
func (e *Executor) Start(ctx context.Context) error {
	unlisten, err := e.bus.Listen(natsbus.SubjectRunCancelAll, func(subject string, _ []byte) {
		if id, ok := natsbus.RunIDOfCancel(subject); ok {
			e.cancels.cancelRun(id)
		}
	})
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	e.unlisten = unlisten
	cmds, err := e.bus.Consume(ctx, natsbus.ConsumerConfig{
		Stream:  natsbus.StreamCommands,
		Durable: natsbus.DurableExecutorCommands,
		Filters: []string{natsbus.SubjectRunCommands, natsbus.SubjectBackfillCmds, natsbus.SubjectCommentCmds},
		// Command handlers spend most of their time waiting (store writer, publish acks);
		// enough of them in flight lets the store batch their writes into shared commits.
		Workers: commandWorkers,
		AckWait: 30 * time.Second,
	}, e.handleCommand)
	if err != nil {
		e.Stop(ctx)
		return fmt.Errorf("executor: %w", err)
	}
	e.consumers = append(e.consumers, cmds)
	work, err := e.bus.Consume(ctx, natsbus.ConsumerConfig{
		Stream:  natsbus.StreamWork,
		Durable: natsbus.DurableExecutorWork,
		Filters: []string{natsbus.SubjectBlockWork},
		Workers: e.cfg.Workers,
		AckWait: 30 * time.Second,
	}, e.handleWork)
	if err != nil {
		e.Stop(ctx)
		return fmt.Errorf("executor: %w", err)
	}
	e.consumers = append(e.consumers, work)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stopReconcile, e.reconciled = cancel, make(chan struct{})
	go func() {
		defer close(e.reconciled)
		e.reconcile(rctx)
	}()
	return nil
}

// Stop stops taking commands and work and waits for in-flight handlers until ctx ends.
// Work not finished by then is redelivered to another executor.
func (e *Executor) Stop(ctx context.Context) {
	if e.stopReconcile != nil {
		e.stopReconcile()
		<-e.reconciled
		e.stopReconcile = nil
	}
	for _, c := range e.consumers {
		c.Stop(ctx)
	}
	e.consumers = nil
	if e.unlisten != nil {
		e.unlisten()
		e.unlisten = nil
	}
}
