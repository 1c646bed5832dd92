package ginadapter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/failsoft/failsoft/internal/adaptertest"
)

func TestResponseWriterStatus(t *testing.T) {
	tests := []struct {
		name      string
		preset    int
		do        func(w *responseWriter)
		codes     []int // WriteHeader calls that reach the middleware's writer
		status    int
		size      int
		isWritten bool
	}{
		{"nothing", 0, func(*responseWriter) {}, nil, http.StatusOK, -1, false},
		{"preset kept until sent", http.StatusNotFound, func(w *responseWriter) { w.WriteHeaderNow() },
			[]int{http.StatusNotFound}, http.StatusNotFound, 0, true},
		{"last status before the body wins", 0, func(w *responseWriter) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("ab"))
		}, []int{http.StatusAccepted}, http.StatusAccepted, 2, true},
		{"status after the body is ignored", 0, func(w *responseWriter) {
			_, _ = w.WriteString("abc")
			w.WriteHeader(http.StatusInternalServerError)
		}, []int{http.StatusOK}, http.StatusOK, 3, true},
		{"1xx passes through", 0, func(w *responseWriter) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNoContent)
			w.WriteHeaderNow()
		}, []int{http.StatusEarlyHints, http.StatusNoContent}, http.StatusNoContent, 0, true},
		{"invalid code ignored", 0, func(w *responseWriter) { w.WriteHeader(0); w.WriteHeaderNow() },
			[]int{http.StatusOK}, http.StatusOK, 0, true},
		{"Flush sends the header", 0, func(w *responseWriter) { w.WriteHeader(http.StatusAccepted); w.Flush() },
			[]int{http.StatusAccepted}, http.StatusAccepted, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cw := &adaptertest.CountingWriter{}
			w := newResponseWriter(cw, httptest.NewRequest(http.MethodGet, "/", nil), tt.preset)
			tt.do(w)
			if !reflect.DeepEqual(cw.Codes, tt.codes) {
				t.Errorf("WriteHeader calls %v, want %v", cw.Codes, tt.codes)
			}
			if w.Status() != tt.status || w.Size() != tt.size || w.Written() != tt.isWritten {
				t.Errorf("Status, Size, Written = %d, %d, %v; want %d, %d, %v",
					w.Status(), w.Size(), w.Written(), tt.status, tt.size, tt.isWritten)
			}
		})
	}
}

func TestResponseWriterCloseNotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newResponseWriter(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil), 0)
	defer w.release()
	ch := w.CloseNotify()
	if w.CloseNotify() != ch {
		t.Fatal("CloseNotify returned a second channel")
	}
	select {
	case <-ch:
		t.Fatal("CloseNotify fired before the context ended")
	default:
	}
	cancel()
	select {
	case v := <-ch:
		if !v {
			t.Error("CloseNotify sent false")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CloseNotify did not fire when the context ended")
	}
}

type pushWriter struct {
	http.ResponseWriter
}

func (pushWriter) Push(string, *http.PushOptions) error { return nil }

func TestResponseWriterPusher(t *testing.T) {
	tests := []struct {
		name string
		w    http.ResponseWriter
		want bool
	}{
		{"none", httptest.NewRecorder(), false},
		{"direct", pushWriter{httptest.NewRecorder()}, true},
		{"behind Unwrap", adaptertest.UnwrapWriter{ResponseWriter: pushWriter{httptest.NewRecorder()}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newResponseWriter(tt.w, httptest.NewRequest(http.MethodGet, "/", nil), 0)
			if got := w.Pusher() != nil; got != tt.want {
				t.Errorf("Pusher() != nil is %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResponseWriterHijackAfterBody(t *testing.T) {
	w := newResponseWriter(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), 0)
	_, _ = w.Write([]byte("x"))
	if _, _, err := w.Hijack(); !errors.Is(err, errHijackAfterBody) {
		t.Errorf("Hijack after the body: %v, want %v", err, errHijackAfterBody)
	}
	w = newResponseWriter(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), 0)
	if _, _, err := w.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack on a recorder: %v, want %v", err, http.ErrNotSupported)
	}
	if w.Written() {
		t.Error("a failed Hijack marked the response written")
	}
}
