package failsoft

import (
	"github.com/failsoft/failsoft/store"
)

// pendingDeletes wraps the guarded store in the queue of deletes that an
// outage refused, so that no invalidation is lost (see
// [store.PendingDeletes]).
func (b *builder) pendingDeletes(guarded store.Store) (*store.PendingDeletes, error) {
	pending, err := store.NewPendingDeletes(guarded, store.WithLogger(b.cfg.logger))
	if err != nil {
		return nil, err
	}
	b.p.pending, b.pending = pending, pending.Close
	return pending, nil
}
