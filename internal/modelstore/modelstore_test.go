package modelstore_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/models"
)

// loadVersions loads the default model and a copy of it one day older as version v-old.
func loadVersions(t *testing.T) []*model.Model {
	t.Helper()
	data, err := models.FS.ReadFile(models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Version = "v-old"
	b.Manifest.CreatedAt = b.Manifest.CreatedAt.Add(-24 * time.Hour)
	older, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"a.json": data, "b.json": older} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := model.LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	return ms
}

func TestStore(t *testing.T) {
	t.Parallel()
	ms := loadVersions(t)
	s, err := modelstore.New(ms, "")
	if err != nil {
		t.Fatal(err)
	}
	if active := s.Active(); active == nil || active.Version() == "v-old" {
		t.Fatalf("Active = %v; want the newest model", active)
	}
	if err := s.Activate("v-old"); err != nil {
		t.Fatal(err)
	}
	if a := s.Active(); a.Version() != "v-old" {
		t.Errorf("after Activate(v-old) active is %s", a.Version())
	}
	if got := s.List(); len(got) != 2 || got[0].Version() != "v-old" {
		t.Errorf("List = %v, want two versions, the older first", got)
	}
	if m, ok := s.Get("missing"); ok || m != nil {
		t.Errorf("Get(missing) = %v, %v; want nil, false", m, ok)
	}
	if err := s.Activate("missing"); !errors.Is(err, modelstore.ErrNotFound) {
		t.Errorf("Activate(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Add(ms[0]); !errors.Is(err, modelstore.ErrExists) {
		t.Errorf("Add of a loaded version = %v, want ErrExists", err)
	}
	if _, err := modelstore.New(ms, "missing"); !errors.Is(err, modelstore.ErrNotFound) {
		t.Errorf("New with a missing active version = %v, want ErrNotFound", err)
	}
	if _, err := modelstore.New(append(ms, ms[0]), ""); !errors.Is(err, modelstore.ErrExists) {
		t.Errorf("New with a duplicate version = %v, want ErrExists", err)
	}
	if _, err := modelstore.New(nil, ""); err == nil {
		t.Error("New without models succeeded")
	}
}

// Remove unloads a version but never the active one; Replace swaps a version's model, and the
// active pointer with it when it was the active one.
func TestRemoveAndReplace(t *testing.T) {
	t.Parallel()
	ms := loadVersions(t)
	s, err := modelstore.New(ms, "")
	if err != nil {
		t.Fatal(err)
	}
	active := s.Active()
	if err := s.Remove(active.Version()); !errors.Is(err, modelstore.ErrActive) {
		t.Fatalf("Remove(active) = %v, want ErrActive", err)
	}
	if err := s.Remove("v-old"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("v-old"); ok || len(s.List()) != 1 {
		t.Fatalf("v-old still loaded after Remove: %v", s.List())
	}
	if err := s.Remove("v-old"); !errors.Is(err, modelstore.ErrNotFound) {
		t.Fatalf("second Remove = %v, want ErrNotFound", err)
	}
	again, err := model.Load(mustRead(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Replace(again)
	if s.Active() != again {
		t.Fatal("Replace of the active version left the old model active")
	}
	if m, _ := s.Get(again.Version()); m != again {
		t.Fatal("Replace did not replace the loaded model")
	}
}

func mustRead(t *testing.T) []byte {
	t.Helper()
	data, err := models.FS.ReadFile(models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
