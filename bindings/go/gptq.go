// Package gptq is the Go binding of libgptq (gptq.h): load Llama-family models, run them, and
// quantize them with GPTQ.
//
// Build with cgo; point the linker at libgptq, e.g.
//
//	CGO_LDFLAGS="-L/path/to/build -Wl,-rpath,/path/to/build" go test
//
// Models and contexts own C handles: call Close when done (a finalizer frees them otherwise).
// They may be closed in any order, because a context keeps its model alive. A Model may be used
// by many goroutines at once; a Context by one goroutine at a time.
package gptq

/*
#cgo CFLAGS: -I${SRCDIR}/../..
#cgo LDFLAGS: -lgptq
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// BindingVersion is the gptq.h version this package was written for.
const BindingVersion = "0.1.0"

// Status is a gptq_status code. It is an error itself, so errors.Is(err, gptq.StatusIO) works
// on the *Error values this package returns.
type Status int32

const (
	StatusOK          Status = C.GPTQ_OK
	StatusInvalidArg  Status = C.GPTQ_ERR_INVALID_ARG
	StatusIO          Status = C.GPTQ_ERR_IO
	StatusFormat      Status = C.GPTQ_ERR_FORMAT
	StatusUnsupported Status = C.GPTQ_ERR_UNSUPPORTED
	StatusOOM         Status = C.GPTQ_ERR_OOM
	StatusBackend     Status = C.GPTQ_ERR_BACKEND
	StatusBufferSmall Status = C.GPTQ_ERR_BUFFER_SMALL
	StatusContextFull Status = C.GPTQ_ERR_CONTEXT_FULL
	StatusAborted     Status = C.GPTQ_ERR_ABORTED
	StatusNumeric     Status = C.GPTQ_ERR_NUMERIC
	StatusInternal    Status = C.GPTQ_ERR_INTERNAL
)

// Error returns the library's static text for the code.
func (s Status) Error() string { return C.GoString(C.gptq_status_str(C.gptq_status(s))) }

// Error is a failed library call: its status and the library's message naming the problem.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("gptq: %s (%s)", e.Message, e.Status.Error()) }

// Is makes errors.Is(err, gptq.StatusX) match on the status.
func (e *Error) Is(target error) bool {
	s, ok := target.(Status)
	return ok && s == e.Status
}

// lastError reads gptq_errmsg(); call it on the OS thread that made the failing call.
func lastError(st C.gptq_status) error {
	msg := C.GoString(C.gptq_errmsg())
	if msg == "" {
		msg = Status(st).Error()
	}
	return &Error{Status: Status(st), Message: msg}
}

func invalidArg(format string, args ...interface{}) error {
	return &Error{Status: StatusInvalidArg, Message: fmt.Sprintf(format, args...)}
}

// call runs one C call and turns its status into an error. The goroutine is pinned to its OS
// thread so that gptq_errmsg (thread-local) is read on the thread that failed.
func call(f func() C.gptq_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := f(); st != C.GPTQ_OK {
		return lastError(st)
	}
	return nil
}

// Version is the library's version at run time, e.g. "0.1.0".
func Version() string { return C.GoString(C.gptq_version()) }

// BuildInfo says which optional parts the library has, e.g. "cpu cuda openblas mimalloc".
func BuildInfo() string { return C.GoString(C.gptq_build_info()) }

// CUDAAvailable reports whether the library has the CUDA backend and a usable device.
func CUDAAvailable() bool { return C.gptq_cuda_available() != 0 }

// SetLogCallback routes the library's log messages to f (from any thread); nil silences it.
func SetLogCallback(f func(level LogLevel, message string)) {
	logMu.Lock()
	logFn = f
	logMu.Unlock()
	enable := C.int(0)
	if f != nil {
		enable = 1
	}
	C.gptqgo_set_log_callback(enable)
}

// Backend selects where a model runs.
type Backend int32

const (
	BackendAuto Backend = C.GPTQ_BACKEND_AUTO // CUDA when built and the device is present and supported (Ampere or newer), else CPU
	BackendCPU  Backend = C.GPTQ_BACKEND_CPU
	BackendCUDA Backend = C.GPTQ_BACKEND_CUDA
)

func cbool(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}
