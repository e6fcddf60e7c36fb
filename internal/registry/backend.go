package registry

import (
	"context"
	"errors"
	"time"
)

// Record describes a stored version; the bundle's bytes are read separately.
type Record struct {
	Version string `json:"version"`
	// SHA256 and Size are of the stored bytes.
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	StoredAt time.Time `json:"stored_at"`
	// Name and CreatedAt are the manifest's, so that a version is listed without loading it
	// (empty in records written before they were kept).
	Name        string    `json:"name,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	Description string    `json:"description,omitempty"`
}

// Activation is one entry of the activation history.
type Activation struct {
	Version string    `json:"version"`
	At      time.Time `json:"at"`
}

// State is the shared activation state: the active version (empty when none was ever activated
// through the store) and the history, most recent first.
type State struct {
	Active  string       `json:"active"`
	History []Activation `json:"history"`
}

// RollbackTarget is the version a roll back activates: the most recent entry of the history
// whose version differs from the active one; empty when there is none.
func (s State) RollbackTarget() string {
	for _, a := range s.History {
		if a.Version != s.Active {
			return a.Version
		}
	}
	return ""
}

// MaxHistory bounds the activation history kept.
const MaxHistory = 50

// ErrExists means the version is already stored.
var ErrExists = errors.New("version already stored")

// Backend persists versions and the activation state. Put is atomic: a version is visible whole
// or not at all, also after a crash. Implementations: *Disk and *Redis; every call is bounded
// (Redis: a deadline per call; the disk: the local file system's own).
type Backend interface {
	// Put stores a version; ErrExists when its record and bundle are both there already. A
	// partial version (a record without its bundle, an evicted key) is replaced.
	Put(ctx context.Context, rec Record, data []byte) error
	// Get returns a stored version's bytes; ErrNotStored when its bundle is not there.
	Get(ctx context.Context, version string) ([]byte, error)
	// Stat says what is stored of a version: its record (nil when none) and whether its bundle is
	// there.
	Stat(ctx context.Context, version string) (*Record, bool, error)
	// List returns the stored versions' records.
	List(ctx context.Context) ([]Record, error)
	// Delete removes a version's record and bundle in one step. It refuses, with ErrProtected,
	// the active version and the rollback target as they are at that moment; ErrNotStored when
	// nothing of the version is stored.
	Delete(ctx context.Context, version string) error
	// Activate sets the active version and prepends it to the history (trimmed to MaxHistory),
	// in one step and only when the version's record and bundle are both stored: ErrNotStored
	// otherwise, and nothing changes.
	Activate(ctx context.Context, a Activation) error
	// Restore sets the activation state when the backend has none (no active version), as after
	// a Redis that restarted empty; false when it has one, which is then left as it is. The
	// state's active version must be stored (ErrNotStored otherwise).
	Restore(ctx context.Context, st State) (bool, error)
	// State returns the active version and the history.
	State(ctx context.Context) (State, error)
	// Notify tells the other replicas that something changed; a no-op where nothing is shared.
	Notify(ctx context.Context) error
	// Changes delivers a value whenever another replica notified, until ctx ends; nil when the
	// backend has no notifications (the periodic reconcile then is the only way to learn).
	Changes(ctx context.Context) <-chan struct{}
	// Name says what the backend is, for logs: "disk /path" or "redis".
	Name() string
}
