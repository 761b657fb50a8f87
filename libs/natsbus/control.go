package natsbus

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Control messages are core-NATS broadcasts every executor hears: they act on work in flight
// in whichever process holds it (cancelling a run kills its running blocks there). They are
// not persisted: the store holds the state, the broadcast only hurries its effect along.
const (
	subjectRunCancelPrefix = "runyard.ctl.run."
	subjectRunCancelSuffix = ".cancel"
	// SubjectRunCancelAll matches every run's cancel broadcast.
	SubjectRunCancelAll = subjectRunCancelPrefix + "*" + subjectRunCancelSuffix
)

// RunCancelSubject is the broadcast subject that stops run id's running blocks.
func RunCancelSubject(runID int64) string {
	return subjectRunCancelPrefix + strconv.FormatInt(runID, 10) + subjectRunCancelSuffix
}

// RunIDOfCancel extracts the run id from a cancel broadcast's subject.
func RunIDOfCancel(subject string) (int64, bool) {
	s, ok := strings.CutPrefix(subject, subjectRunCancelPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, subjectRunCancelSuffix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// Broadcast publishes data on a core-NATS subject and flushes, so the message is on its way
// to every subscriber when Broadcast returns.
func (b *Bus) Broadcast(subject string, data []byte) error {
	if err := b.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("natsbus: broadcast %s: %w", subject, err)
	}
	if err := b.nc.Flush(); err != nil {
		return fmt.Errorf("natsbus: broadcast %s: %w", subject, err)
	}
	return nil
}

// Listen calls f for every core-NATS message on subject (wildcards allowed) until the
// returned stop is called.
func (b *Bus) Listen(subject string, f func(subject string, data []byte)) (stop func(), err error) {
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) { f(m.Subject, m.Data) })
	if err != nil {
		return nil, fmt.Errorf("natsbus: listen %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
