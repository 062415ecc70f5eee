package gptq

/*
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// ContextParams are the options of NewContext. Zero fields take the library's defaults.
type ContextParams struct {
	NCtx     int // positions per sequence; 0 = min(max_position_embeddings, 4096)
	NSeqMax  int // sequences held at once (batched generation)
	NBatch   int // most tokens one eval computes at a time
	NThreads int // 0 = the model's
}

// DefaultContextParams returns the library's defaults.
func DefaultContextParams() ContextParams {
	d := C.gptq_context_params_default()
	return ContextParams{NCtx: int(d.n_ctx), NSeqMax: int(d.n_seq_max), NBatch: int(d.n_batch), NThreads: int(d.n_threads)}
}

// Context holds a KV cache for evaluation and generation. It is not safe for concurrent use:
// give each goroutine its own. It keeps its model alive, so the Model may be closed first.
type Context struct {
	p         *C.gptq_context
	nCtx      int
	nSeqMax   int
	vocabSize int
	maxPiece  int
}

// NewContext makes a context for the model.
func NewContext(m *Model, params ContextParams) (*Context, error) {
	mp, err := m.ptr()
	if err != nil {
		return nil, err
	}
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	maxPiece, err := m.maxPieceBytes()
	if err != nil {
		return nil, err
	}
	raw := C.gptq_context_params_default()
	raw.n_ctx = C.int32_t(params.NCtx)
	if params.NSeqMax > 0 {
		raw.n_seq_max = C.int32_t(params.NSeqMax)
	}
	if params.NBatch > 0 {
		raw.n_batch = C.int32_t(params.NBatch)
	}
	raw.n_threads = C.int32_t(params.NThreads)
	var out *C.gptq_context
	if err := call(func() C.gptq_status { return C.gptq_context_init(mp, &raw, &out) }); err != nil {
		return nil, err
	}
	runtime.KeepAlive(m)
	nCtx := params.NCtx
	if nCtx <= 0 {
		nCtx = info.MaxPositionEmbeddings
		if nCtx > 4096 || nCtx <= 0 {
			nCtx = 4096
		}
	}
	nSeq := int(raw.n_seq_max)
	if nSeq < 1 {
		nSeq = 1
	}
	c := &Context{p: out, nCtx: nCtx, nSeqMax: nSeq, vocabSize: info.VocabSize, maxPiece: maxPiece}
	runtime.SetFinalizer(c, (*Context).Close)
	return c, nil
}

// Close releases the context. Calling it twice is fine.
func (c *Context) Close() error {
	if c.p != nil {
		C.gptq_context_free(c.p)
		c.p = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

func (c *Context) ptr() (*C.gptq_context, error) {
	if c == nil || c.p == nil {
		return nil, invalidArg("gptq: use of a closed Context")
	}
	return c.p, nil
}

// Reset forgets sequence seqID's KV cache.
func (c *Context) Reset(seqID int) error {
	if seqID < 0 {
		return invalidArg("gptq: Reset: seqID must be >= 0 (use ResetAll)")
	}
	return c.reset(seqID)
}

// ResetAll forgets every sequence.
func (c *Context) ResetAll() error { return c.reset(-1) }

func (c *Context) reset(seqID int) error {
	p, err := c.ptr()
	if err != nil {
		return err
	}
	err = call(func() C.gptq_status { return C.gptq_context_reset(p, C.int32_t(seqID)) })
	runtime.KeepAlive(c)
	return err
}

// SeqLen is the number of positions sequence seqID holds (where it continues).
func (c *Context) SeqLen(seqID int) int {
	p, err := c.ptr()
	if err != nil {
		return 0
	}
	n := int(C.gptq_context_seq_len(p, C.int32_t(seqID)))
	runtime.KeepAlive(c)
	return n
}

// Batch is one evaluation's tokens. Pos, SeqID and Logits, when not nil, need one entry per
// token. Nil Pos: each sequence continues where it stopped; nil SeqID: all sequence 0; nil
// Logits: only the last token of each sequence keeps logits.
type Batch struct {
	Tokens []int32
	Pos    []int32
	SeqID  []int32
	Logits []bool
}

// Eval evaluates tokens continuing sequence 0; the last one (index len-1) keeps its logits.
func (c *Context) Eval(tokens []int32) error { return c.EvalBatch(Batch{Tokens: tokens}) }

// EvalBatch evaluates one batch.
func (c *Context) EvalBatch(b Batch) error {
	p, err := c.ptr()
	if err != nil {
		return err
	}
	n := len(b.Tokens)
	for _, f := range []struct {
		name string
		len  int
		set  bool
	}{{"Pos", len(b.Pos), b.Pos != nil}, {"SeqID", len(b.SeqID), b.SeqID != nil}, {"Logits", len(b.Logits), b.Logits != nil}} {
		if f.set && f.len != n {
			return invalidArg("gptq: Batch.%s has %d entries for %d tokens", f.name, f.len, n)
		}
	}
	// Everything C reads is copied into C memory: a Go struct passed to C must not hold Go pointers.
	var raw C.gptq_batch
	raw.n_tokens = C.int32_t(n)
	var flags unsafe.Pointer
	if b.Logits != nil && n > 0 {
		flags = C.malloc(C.size_t(n))
		defer C.free(flags)
		fs := unsafe.Slice((*int8)(flags), n)
		for i, keep := range b.Logits {
			fs[i] = 0
			if keep {
				fs[i] = 1
			}
		}
	}
	copyInts := func(src []int32) *C.int32_t {
		if src == nil || n == 0 {
			return nil
		}
		dst := C.malloc(C.size_t(4 * n))
		copy(unsafe.Slice((*int32)(dst), n), src)
		return (*C.int32_t)(dst)
	}
	raw.tokens = copyInts(b.Tokens)
	raw.pos = copyInts(b.Pos)
	raw.seq_id = copyInts(b.SeqID)
	raw.logits = (*C.int8_t)(flags)
	defer func() {
		C.free(unsafe.Pointer(raw.tokens))
		C.free(unsafe.Pointer(raw.pos))
		C.free(unsafe.Pointer(raw.seq_id))
	}()
	err = call(func() C.gptq_status { return C.gptq_eval(p, &raw) })
	runtime.KeepAlive(c)
	return err
}

// Logits returns a copy of the logits (VocabSize floats) of the i-th token of the last batch.
func (c *Context) Logits(i int) ([]float32, error) {
	p, err := c.ptr()
	if err != nil {
		return nil, err
	}
	var out []float32
	err = call(func() C.gptq_status {
		lp := C.gptq_get_logits(p, C.int32_t(i))
		if lp == nil {
			return C.GPTQ_ERR_INVALID_ARG
		}
		out = make([]float32, c.vocabSize)
		copy(out, unsafe.Slice((*float32)(unsafe.Pointer(lp)), c.vocabSize))
		return C.GPTQ_OK
	})
	runtime.KeepAlive(c)
	return out, err
}

// Perplexity scores text by the protocol of gptq.h (chunks of seqLen-1 targets); maxChunks <= 0
// scores every chunk. progress may be nil; returning false from it cancels.
func (c *Context) Perplexity(text string, seqLen, maxChunks int, progress func(Progress) bool) (ppl float64, nTokens int64, err error) {
	p, err := c.ptr()
	if err != nil {
		return 0, 0, err
	}
	ctext := C.CBytes([]byte(text))
	defer C.free(ctext)
	var h C.uintptr_t
	if progress != nil {
		state := &callbackState{progress: progress}
		handle := state.handle()
		defer state.done(handle)
		h = C.uintptr_t(handle)
	}
	var cppl C.double
	var cn C.int64_t
	err = call(func() C.gptq_status {
		return C.gptqgo_perplexity(p, (*C.char)(ctext), C.size_t(len(text)), C.int32_t(seqLen), C.int32_t(maxChunks), h, &cppl, &cn)
	})
	runtime.KeepAlive(c)
	return float64(cppl), int64(cn), err
}
