package gptq

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"unsafe"
)

// GenerateParams are the sampling and stopping options. Start from DefaultGenerateParams or
// GreedyParams.
type GenerateParams struct {
	MaxTokens     int     // new tokens at most
	Temperature   float32 // 0 = greedy
	TopK          int     // 0 = off
	TopP          float32 // 1 = off
	MinP          float32 // 0 = off
	RepeatPenalty float32 // 1 = off
	RepeatLastN   int
	Seed          uint64
	AddBOS        AddBOS
	StopAtEOS     bool
	StopStrings   []string // generation stops once the output ends with one; the text ends before it
}

// DefaultGenerateParams returns the library's defaults.
func DefaultGenerateParams() GenerateParams {
	d := C.gptq_generate_params_default()
	return GenerateParams{
		MaxTokens: int(d.max_tokens), Temperature: float32(d.temperature), TopK: int(d.top_k),
		TopP: float32(d.top_p), MinP: float32(d.min_p), RepeatPenalty: float32(d.repeat_penalty),
		RepeatLastN: int(d.repeat_last_n), Seed: uint64(d.seed), AddBOS: AddBOS(d.add_bos),
		StopAtEOS: d.stop_at_eos != 0,
	}
}

// GreedyParams is greedy decoding (temperature 0, no repetition penalty) of maxTokens tokens.
func GreedyParams(maxTokens int) GenerateParams {
	p := DefaultGenerateParams()
	p.MaxTokens, p.Temperature, p.RepeatPenalty = maxTokens, 0, 1
	return p
}

// cStrings is an array of C strings in C memory.
type cStrings struct {
	arr **C.char
	n   int
}

func newCStrings(ss []string) cStrings {
	if len(ss) == 0 {
		return cStrings{}
	}
	arr := (**C.char)(C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	items := unsafe.Slice(arr, len(ss))
	for i, s := range ss {
		items[i] = C.CString(s)
	}
	return cStrings{arr, len(ss)}
}

func (c cStrings) free() {
	if c.arr == nil {
		return
	}
	for _, p := range unsafe.Slice(c.arr, c.n) {
		C.free(unsafe.Pointer(p))
	}
	C.free(unsafe.Pointer(c.arr))
}

func (p GenerateParams) toC(stops cStrings) C.gptq_generate_params {
	r := C.gptq_generate_params_default()
	r.max_tokens = C.int32_t(p.MaxTokens)
	r.temperature = C.float(p.Temperature)
	r.top_k = C.int32_t(p.TopK)
	r.top_p = C.float(p.TopP)
	r.min_p = C.float(p.MinP)
	r.repeat_penalty = C.float(p.RepeatPenalty)
	r.repeat_last_n = C.int32_t(p.RepeatLastN)
	r.seed = C.uint64_t(p.Seed)
	r.add_bos = C.int32_t(p.AddBOS)
	r.stop_at_eos = cbool(p.StopAtEOS)
	r.stop_strings = stops.arr
	r.n_stop_strings = C.int32_t(stops.n)
	return r
}

// Generate returns a continuation of prompt (sequence 0, reset first).
func (c *Context) Generate(prompt string, params GenerateParams) (string, error) {
	return c.GenerateStream(prompt, params, nil)
}

// GenerateStream is Generate calling onToken with each new token as it is made. Returning
// false from onToken stops generation; the text so far is then returned without error.
func (c *Context) GenerateStream(prompt string, params GenerateParams, onToken func(Token) bool) (string, error) {
	outs, err := c.generate([]string{prompt}, params, onToken)
	if err != nil {
		return "", err
	}
	return outs[0], nil
}

// GenerateBatch generates for several prompts at once (the context needs NSeqMax >=
// len(prompts)); sequence i samples with Seed+i.
func (c *Context) GenerateBatch(prompts []string, params GenerateParams) ([]string, error) {
	return c.generate(prompts, params, nil)
}

// GenerateBatchStream is GenerateBatch with streaming; Token.Seq says which prompt.
func (c *Context) GenerateBatchStream(prompts []string, params GenerateParams, onToken func(Token) bool) ([]string, error) {
	return c.generate(prompts, params, onToken)
}

func (c *Context) generate(prompts []string, params GenerateParams, onToken func(Token) bool) ([]string, error) {
	p, err := c.ptr()
	if err != nil {
		return nil, err
	}
	if len(prompts) > c.nSeqMax {
		return nil, invalidArg("gptq: %d prompts but the context holds %d sequences (ContextParams.NSeqMax)", len(prompts), c.nSeqMax)
	}
	cprompts := newCStrings(prompts)
	defer cprompts.free()
	stops := newCStrings(params.StopStrings)
	defer stops.free()
	raw := params.toC(stops)

	// Output buffers in C memory, each large enough for the whole text: no token decodes to more
	// bytes than the longest piece, and no sequence outgrows the context.
	n := len(prompts)
	capacity := c.outputCapacity(params.MaxTokens)
	ptrSize := C.size_t(unsafe.Sizeof((*C.char)(nil)))
	outs := (**C.char)(C.malloc(C.size_t(n) * ptrSize))
	defer C.free(unsafe.Pointer(outs))
	sizes := (*C.size_t)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.size_t(0)))))
	defer C.free(unsafe.Pointer(sizes))
	lens := (*C.size_t)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.size_t(0)))))
	defer C.free(unsafe.Pointer(lens))
	outItems, sizeItems, lenItems := unsafe.Slice(outs, n), unsafe.Slice(sizes, n), unsafe.Slice(lens, n)
	for i := range outItems {
		outItems[i] = (*C.char)(C.malloc(C.size_t(capacity)))
		sizeItems[i] = C.size_t(capacity)
	}
	defer func() {
		for _, o := range outItems {
			C.free(unsafe.Pointer(o))
		}
	}()

	var state *callbackState
	var h C.uintptr_t
	if onToken != nil {
		state = &callbackState{token: onToken}
		handle := state.handle()
		defer state.done(handle)
		h = C.uintptr_t(handle)
	}
	err = call(func() C.gptq_status {
		return C.gptqgo_generate_batch(p, cprompts.arr, C.int32_t(n), &raw, h, outs, sizes, lens)
	})
	runtime.KeepAlive(c)
	// A stop the callback asked for is a normal end of generation.
	if err != nil && state != nil && state.stopped && !state.panicked && errors.Is(err, StatusAborted) {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	texts := make([]string, n)
	for i := range texts {
		l := int(lenItems[i])
		if l > capacity-1 {
			l = capacity - 1
		}
		texts[i] = C.GoStringN(outItems[i], C.int(l))
	}
	return texts, nil
}

func (c *Context) outputCapacity(maxTokens int) int {
	n := c.nCtx
	if maxTokens > 0 && maxTokens < n {
		n = maxTokens
	}
	return n*c.maxPiece + 64
}
