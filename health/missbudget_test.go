package health

import (
	"context"
	"testing"
	"time"

	"github.com/failsoft/failsoft/middleware"
)

func TestMissBudgetCheck(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		stats    middleware.MissBudgetStats
		want     Status
		wantShed any
	}{
		{"budget off", middleware.MissBudgetStats{}, StatusPass, uint64(0)},
		{"never shed", middleware.MissBudgetStats{Size: 64, InUse: 3}, StatusPass, uint64(0)},
		{"shedding", middleware.MissBudgetStats{Size: 64, InUse: 64, Waiting: 9, Shed: 5, LastShed: now.Add(-time.Second)}, StatusWarn, uint64(5)},
		{"shed long ago", middleware.MissBudgetStats{Size: 64, Shed: 5, LastShed: now.Add(-DefaultSheddingWindow)}, StatusPass, uint64(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(WithClock(func() time.Time { return now }),
				WithMissBudgetCheck("missBudget", func() middleware.Stats { return middleware.Stats{MissBudget: tt.stats} }))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			rep := h.Report(context.Background())
			if rep.Status != tt.want {
				t.Errorf("status = %q, want %q (%s)", rep.Status, tt.want, rep.Output)
			}
			m := rep.Checks["missBudget:shed"]
			if len(m) != 1 || m[0].ObservedValue != tt.wantShed || m[0].Status != tt.want {
				t.Errorf("missBudget:shed = %+v, want %v", m, tt.wantShed)
			}
			if m := rep.Checks["missBudget:size"]; len(m) != 1 || m[0].ObservedValue != tt.stats.Size {
				t.Errorf("missBudget:size = %+v", m)
			}
		})
	}
	if _, err := New(WithMissBudgetCheck("x", nil)); err == nil {
		t.Error("nil function accepted")
	}
}
