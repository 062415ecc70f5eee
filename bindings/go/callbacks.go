package gptq

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"runtime/cgo"
	"sync"
)

// Progress is one report of long work (loading, quantizing, perplexity).
type Progress struct {
	Stage  string // "load", "quantize", "perplexity", ...
	Done   int64
	Total  int64
	Detail string // e.g. "layer 3/8 mlp.down_proj err 1.2e-3"; may be empty
}

// Token is one generated token as it is streamed.
type Token struct {
	Seq  int    // index of the prompt it continues (0 for Generate)
	ID   int32  // token id
	Text string // UTF-8 text it completes; empty while a character is split across tokens
}

// callbackState carries a Go callback through C's user_data (as a cgo.Handle). A panic in the
// callback must not unwind through the library's C++ frames: it is recovered, the C call is
// asked to stop, and the panic is raised again once the C call has returned.
type callbackState struct {
	progress func(Progress) bool
	token    func(Token) bool
	stopped  bool // the callback returned false
	panicked bool
	panicVal interface{}
}

func (s *callbackState) run(f func() bool) (stop C.int32_t) {
	if s.stopped || s.panicked {
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			s.panicked, s.panicVal, stop = true, r, 1
		}
	}()
	if !f() {
		s.stopped = true
		return 1
	}
	return 0
}

// handle registers the state for C; release it with done.
func (s *callbackState) handle() cgo.Handle {
	return cgo.NewHandle(s)
}

// done releases the handle and re-raises a panic of the callback.
func (s *callbackState) done(h cgo.Handle) {
	h.Delete()
	if s.panicked {
		panic(s.panicVal)
	}
}

//export gptqgoProgress
func gptqgoProgress(stage *C.char, done, total C.int64_t, detail *C.char, handle C.uintptr_t) C.int32_t {
	s := cgo.Handle(handle).Value().(*callbackState)
	p := Progress{Stage: goString(stage), Done: int64(done), Total: int64(total), Detail: goString(detail)}
	return s.run(func() bool { return s.progress(p) })
}

//export gptqgoToken
func gptqgoToken(seq, token C.int32_t, text *C.char, textLen C.size_t, handle C.uintptr_t) C.int32_t {
	s := cgo.Handle(handle).Value().(*callbackState)
	var t string
	if text != nil && textLen > 0 {
		t = C.GoStringN(text, C.int(textLen))
	}
	return s.run(func() bool { return s.token(Token{Seq: int(seq), ID: int32(token), Text: t}) })
}

// LogLevel of a library message.
type LogLevel int

const (
	LogError LogLevel = iota
	LogWarn
	LogInfo
	LogDebug
)

var (
	logMu sync.RWMutex
	logFn func(LogLevel, string)
)

//export gptqgoLog
func gptqgoLog(level C.int32_t, message *C.char) {
	logMu.RLock()
	f := logFn
	logMu.RUnlock()
	if f != nil {
		defer func() { _ = recover() }() // a panicking logger loses that message only
		f(LogLevel(level), goString(message))
	}
}

func goString(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}
