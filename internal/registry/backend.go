package registry

import (
	"context"
	"errors"
	"time"
)

// Record describes a stored version; the bundle's bytes are read separately.
type Record struct {
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	StoredAt    time.Time `json:"stored_at"`
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

// MaxHistory bounds the activation history kept.
const MaxHistory = 50

// ErrExists means the version is already stored.
var ErrExists = errors.New("version already stored")

// errNotStored means the version has no stored bundle.
var errNotStored = errors.New("version not stored")

// Backend persists versions and the activation state. Put is atomic: a version is visible whole
// or not at all, also after a crash. Implementations: *Disk and *Redis.
type Backend interface {
	// Put stores a new version; ErrExists when the version is already there.
	Put(ctx context.Context, rec Record, data []byte) error
	// Get returns a stored version's bytes.
	Get(ctx context.Context, version string) ([]byte, error)
	// List returns the stored versions' records.
	List(ctx context.Context) ([]Record, error)
	// Activate sets the active version and prepends it to the history (trimmed to MaxHistory).
	Activate(ctx context.Context, a Activation) error
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
