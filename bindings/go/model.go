package gptq

/*
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// LoadParams are the options of LoadWith. Start from DefaultLoadParams.
type LoadParams struct {
	Backend  Backend
	Device   int // CUDA device ordinal
	NThreads int // CPU threads; 0 = all cores
	// Progress, if set, is called during loading; returning false cancels (StatusAborted).
	Progress func(Progress) bool
}

// DefaultLoadParams returns the library's defaults.
func DefaultLoadParams() LoadParams {
	d := C.gptq_load_params_default()
	return LoadParams{Backend: Backend(d.backend), Device: int(d.device), NThreads: int(d.n_threads)}
}

// ModelInfo describes a loaded model.
type ModelInfo struct {
	Architecture          string
	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NLayers               int
	NHeads                int
	NKVHeads              int
	HeadDim               int
	MaxPositionEmbeddings int
	BOSToken              int32 // -1 if none
	EOSToken              int32 // -1 if none
	AddBOS                bool
	TiedEmbeddings        bool
	RopeTheta             float32
	RMSNormEps            float32
	NParams               int64
	WeightBytes           int64
	QuantBits             int // 0 for a float model
	QuantGroupSize        int
	QuantSym              bool
	QuantDescAct          bool
	Backend               Backend // as chosen at load
}

// Model is a loaded model. It is immutable and safe for concurrent use by many goroutines.
type Model struct {
	p *C.gptq_model

	pieceOnce sync.Once
	maxPiece  int
	pieceErr  error
}

// Load loads a model directory (config.json, *.safetensors, tokenizer.model or tokenizer.json)
// with defaults.
func Load(dir string) (*Model, error) {
	return LoadWith(dir, DefaultLoadParams())
}

// LoadWith loads a model directory with the given options.
func LoadWith(dir string, params LoadParams) (*Model, error) {
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	raw := C.gptq_load_params_default()
	raw.backend = C.int32_t(params.Backend)
	raw.device = C.int32_t(params.Device)
	raw.n_threads = C.int32_t(params.NThreads)
	var out *C.gptq_model
	var state *callbackState
	var h C.uintptr_t
	if params.Progress != nil {
		state = &callbackState{progress: params.Progress}
		handle := state.handle()
		defer state.done(handle)
		h = C.uintptr_t(handle)
	}
	err := call(func() C.gptq_status { return C.gptqgo_load(cdir, &raw, h, &out) })
	if err != nil {
		return nil, err
	}
	m := &Model{p: out}
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close releases the model. Contexts made from it stay usable. Calling Close twice is fine.
func (m *Model) Close() error {
	if m.p != nil {
		C.gptq_model_free(m.p)
		m.p = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

func (m *Model) ptr() (*C.gptq_model, error) {
	if m == nil || m.p == nil {
		return nil, invalidArg("gptq: use of a closed Model")
	}
	return m.p, nil
}

// Info reports the model's shape, tokens and quantization.
func (m *Model) Info() (ModelInfo, error) {
	p, err := m.ptr()
	if err != nil {
		return ModelInfo{}, err
	}
	var i C.gptq_model_info
	i.struct_size = C.size_t(unsafe.Sizeof(i))
	if err := call(func() C.gptq_status { return C.gptq_model_get_info(p, &i) }); err != nil {
		return ModelInfo{}, err
	}
	runtime.KeepAlive(m)
	return ModelInfo{
		Architecture:          C.GoString(&i.architecture[0]),
		VocabSize:             int(i.vocab_size),
		HiddenSize:            int(i.hidden_size),
		IntermediateSize:      int(i.intermediate_size),
		NLayers:               int(i.n_layers),
		NHeads:                int(i.n_heads),
		NKVHeads:              int(i.n_kv_heads),
		HeadDim:               int(i.head_dim),
		MaxPositionEmbeddings: int(i.max_position_embeddings),
		BOSToken:              int32(i.bos_token),
		EOSToken:              int32(i.eos_token),
		AddBOS:                i.add_bos != 0,
		TiedEmbeddings:        i.tied_embeddings != 0,
		RopeTheta:             float32(i.rope_theta),
		RMSNormEps:            float32(i.rms_norm_eps),
		NParams:               int64(i.n_params),
		WeightBytes:           int64(i.weight_bytes),
		QuantBits:             int(i.quant_bits),
		QuantGroupSize:        int(i.quant_group_size),
		QuantSym:              i.quant_sym != 0,
		QuantDescAct:          i.quant_desc_act != 0,
		Backend:               Backend(i.backend),
	}, nil
}

// AddBOS says whether tokenizing or generating puts BOS first.
type AddBOS int32

const (
	BOSDefault AddBOS = -1 // as the model's configs say
	BOSNo      AddBOS = 0
	BOSYes     AddBOS = 1
)

// Tokenize encodes UTF-8 text to token ids.
func (m *Model) Tokenize(text string, addBOS AddBOS) ([]int32, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	// C must not keep Go memory, and it does not: the text is only read during the call.
	ctext := C.CBytes([]byte(text))
	defer C.free(ctext)
	tokens := make([]int32, len(text)+4) // byte fallback: at most one token per byte, + BOS
	for {
		var n C.size_t
		var st C.gptq_status
		err := call(func() C.gptq_status {
			st = C.gptq_tokenize(p, (*C.char)(ctext), C.size_t(len(text)), C.int32_t(addBOS),
				(*C.int32_t)(unsafe.Pointer(&tokens[0])), C.size_t(len(tokens)), &n)
			return st
		})
		if st == C.GPTQ_ERR_BUFFER_SMALL && int(n) > len(tokens) {
			tokens = make([]int32, int(n))
			continue
		}
		runtime.KeepAlive(m)
		if err != nil {
			return nil, err
		}
		return tokens[:int(n)], nil
	}
}

// Detokenize decodes ids to text as SentencePiece does.
func (m *Model) Detokenize(tokens []int32) (string, error) {
	p, err := m.ptr()
	if err != nil {
		return "", err
	}
	var ptr *C.int32_t
	if len(tokens) > 0 {
		ptr = (*C.int32_t)(unsafe.Pointer(&tokens[0]))
	}
	s, err := readString(len(tokens)*8+16, func(buf *C.char, size C.size_t, n *C.size_t) C.gptq_status {
		return C.gptq_detokenize(p, ptr, C.size_t(len(tokens)), buf, size, n)
	})
	runtime.KeepAlive(m)
	return s, err
}

// TokenPiece is the raw piece of one id, e.g. "▁the" or "<0x0A>".
func (m *Model) TokenPiece(token int32) (string, error) {
	p, err := m.ptr()
	if err != nil {
		return "", err
	}
	s, err := readString(32, func(buf *C.char, size C.size_t, n *C.size_t) C.gptq_status {
		return C.gptq_token_piece(p, C.int32_t(token), buf, size, n)
	})
	runtime.KeepAlive(m)
	return s, err
}

// maxPieceBytes bounds the text one token can produce (the longest piece), to size the
// buffers of generation. Computed once per model.
func (m *Model) maxPieceBytes() (int, error) {
	m.pieceOnce.Do(func() {
		info, err := m.Info()
		if err != nil {
			m.pieceErr = err
			return
		}
		longest := 8
		for t := 0; t < info.VocabSize; t++ {
			s, err := m.TokenPiece(int32(t))
			if err != nil {
				m.pieceErr = err
				return
			}
			if len(s)+1 > longest {
				longest = len(s) + 1
			}
		}
		m.maxPiece = longest
	})
	return m.maxPiece, m.pieceErr
}

// readString calls a C function that writes a NUL-terminated string into a sized buffer,
// growing the buffer when it answers BUFFER_SMALL with the size needed. The buffer is C memory.
func readString(initial int, f func(buf *C.char, size C.size_t, n *C.size_t) C.gptq_status) (string, error) {
	size := initial
	if size < 1 {
		size = 1
	}
	for {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		var n C.size_t
		var st C.gptq_status
		err := call(func() C.gptq_status { st = f(buf, C.size_t(size), &n); return st })
		if st == C.GPTQ_ERR_BUFFER_SMALL && int(n) > size {
			C.free(unsafe.Pointer(buf))
			size = int(n)
			continue
		}
		var s string
		if err == nil {
			s = C.GoStringN(buf, C.int(n))
		}
		C.free(unsafe.Pointer(buf))
		return s, err
	}
}
