package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Disk keeps versions in a directory:
//
//	<dir>/versions/<version>/bundle.json   the bundle's bytes as uploaded
//	<dir>/versions/<version>/record.json   its Record
//	<dir>/state.json                       the State
//
// A version is written into a fresh temporary directory, synced, and renamed into place in one
// step, so it appears whole or not at all; rename refuses an existing non-empty directory, which
// makes two concurrent uploads of one version safe. state.json is replaced by rename too. The
// temporary files a crash leaves (of an upload or of an activation) are removed by OpenDisk.
//
// One process uses a directory: mu makes each call one step for it (Activate and Delete check
// the state and change it under mu). The calls do not take their context's deadline: local file
// system calls cannot be interrupted.
type Disk struct {
	dir string
	mu  sync.Mutex
}

const tmpPrefix = ".tmp-"

// OpenDisk opens (creating it if need be) a store directory.
func OpenDisk(dir string) (*Disk, error) {
	if dir == "" {
		return nil, errors.New("registry: empty store directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, "versions"), 0o755); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	d := &Disk{dir: dir}
	// A crash leaves temporary files: versions/.tmp-* of an upload, .tmp-state-* of an activation.
	for _, sub := range []string{"versions", "."} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				os.RemoveAll(filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	return d, nil
}

// Name implements Backend.
func (d *Disk) Name() string { return "disk " + d.dir }

func (d *Disk) versionDir(version string) string { return filepath.Join(d.dir, "versions", version) }

// Put implements Backend.
func (d *Disk) Put(_ context.Context, rec Record, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, hasBundle, err := d.stat(rec.Version)
	if err != nil {
		return err
	}
	if old != nil && hasBundle {
		return fmt.Errorf("%w: %q", ErrExists, rec.Version)
	}
	if old != nil || hasBundle {
		// A partial version (a file removed by hand): move it out of the way in one step.
		if err := d.removeVersion(rec.Version); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(d.dir, "versions"), tmpPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left to remove
	meta, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(tmp, "bundle.json"), data); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(tmp, "record.json"), meta); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.versionDir(rec.Version)); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("%w: %q", ErrExists, rec.Version)
		}
		return err
	}
	return syncDir(filepath.Join(d.dir, "versions"))
}

// Get implements Backend.
func (d *Disk) Get(_ context.Context, version string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(d.versionDir(version), "bundle.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: the bundle of %q", ErrNotStored, version)
	}
	return data, err
}

// Stat implements Backend.
func (d *Disk) Stat(_ context.Context, version string) (*Record, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stat(version)
}

func (d *Disk) stat(version string) (*Record, bool, error) {
	var rec *Record
	raw, err := os.ReadFile(filepath.Join(d.versionDir(version), "record.json"))
	switch {
	case err == nil:
		rec = new(Record)
		if err := json.Unmarshal(raw, rec); err != nil {
			return nil, false, fmt.Errorf("%s: %w", version, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	_, err = os.Stat(filepath.Join(d.versionDir(version), "bundle.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	return rec, err == nil, nil
}

// removeVersion moves a version's directory to a temporary name, so that it disappears in one
// step, and removes it.
func (d *Disk) removeVersion(version string) error {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	tmp := filepath.Join(d.dir, "versions", tmpPrefix+"del-"+hex.EncodeToString(suffix[:]))
	if err := os.Rename(d.versionDir(version), tmp); err != nil {
		return err
	}
	if err := syncDir(filepath.Join(d.dir, "versions")); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}

// Delete implements Backend.
func (d *Disk) Delete(_ context.Context, version string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.state()
	if err != nil {
		return err
	}
	if err := protected(st, version); err != nil {
		return err
	}
	if _, err := os.Stat(d.versionDir(version)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %q", ErrNotStored, version)
	}
	return d.removeVersion(version)
}

// protected refuses to delete the active version or the rollback target of st.
func protected(st State, version string) error {
	switch version {
	case st.Active:
		return fmt.Errorf("%w: %q is the active version", ErrProtected, version)
	case st.RollbackTarget():
		return fmt.Errorf("%w: %q is the rollback target (the version active before the active one)", ErrProtected, version)
	}
	return nil
}

// List implements Backend.
func (d *Disk) List(_ context.Context) ([]Record, error) {
	entries, err := os.ReadDir(filepath.Join(d.dir, "versions"))
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(d.dir, "versions", e.Name(), "record.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a partial version (its record removed by hand): not a stored version
		}
		if err != nil {
			return nil, err
		}
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Activate implements Backend.
func (d *Disk) Activate(_ context.Context, a Activation) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.stored(a.Version); err != nil {
		return err
	}
	st, err := d.state()
	if err != nil {
		return err
	}
	st.Active = a.Version
	st.History = append([]Activation{a}, st.History...)
	if len(st.History) > MaxHistory {
		st.History = st.History[:MaxHistory]
	}
	return d.writeState(st)
}

// Restore implements Backend.
func (d *Disk) Restore(_ context.Context, st State) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.state()
	if err != nil {
		return false, err
	}
	if cur.Active != "" {
		return false, nil
	}
	if err := d.stored(st.Active); err != nil {
		return false, err
	}
	if len(st.History) > MaxHistory {
		st.History = st.History[:MaxHistory]
	}
	return true, d.writeState(st)
}

// stored is nil when the version's record and bundle are both there, else ErrNotStored naming
// what is missing.
func (d *Disk) stored(version string) error {
	rec, bundle, err := d.stat(version)
	if err != nil {
		return err
	}
	return notStored(version, rec != nil, bundle)
}

// notStored is ErrNotStored naming what of a version is missing; nil when nothing is.
func notStored(version string, record, bundle bool) error {
	switch {
	case !record && !bundle:
		return fmt.Errorf("%w: neither the record nor the bundle of %q is in the model store", ErrNotStored, version)
	case !record:
		return fmt.Errorf("%w: the record of %q is not in the model store", ErrNotStored, version)
	case !bundle:
		return fmt.Errorf("%w: the bundle of %q is not in the model store", ErrNotStored, version)
	}
	return nil
}

// writeState replaces state.json in one step.
func (d *Disk) writeState(st State) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	tmp := filepath.Join(d.dir, tmpPrefix+"state-"+hex.EncodeToString(suffix[:]))
	if err := writeSynced(tmp, raw); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "state.json")); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(d.dir)
}

// State implements Backend.
func (d *Disk) State(context.Context) (State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state()
}

func (d *Disk) state() (State, error) {
	raw, err := os.ReadFile(filepath.Join(d.dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return State{}, fmt.Errorf("%s: %w", filepath.Join(d.dir, "state.json"), err)
	}
	return st, nil
}

// Notify implements Backend: a directory is not shared, nobody to tell.
func (d *Disk) Notify(context.Context) error { return nil }

// Changes implements Backend: none; the periodic reconcile reads the directory.
func (d *Disk) Changes(context.Context) <-chan struct{} { return nil }

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
