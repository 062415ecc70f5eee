package gptq

/*
#include "shim.h"
*/
import "C"

import "unsafe"

// CheckpointFormat is the GPTQ checkpoint format Quantize writes.
type CheckpointFormat int32

const (
	FormatAuto CheckpointFormat = C.GPTQ_FORMAT_AUTO // v1 unless an asymmetric zero would overflow, then v2
	FormatV1   CheckpointFormat = C.GPTQ_FORMAT_V1
	FormatV2   CheckpointFormat = C.GPTQ_FORMAT_V2
)

// QuantizeParams are the options of Quantize. Start from DefaultQuantizeParams (4 bits, group
// 128, sym, act-order, static groups, true-sequential, damp 0.01, 128 windows of 512 tokens).
type QuantizeParams struct {
	Bits              int
	GroupSize         int // -1 = per output column, or a divisor of every K
	Sym               bool
	DescAct           bool
	StaticGroups      bool
	TrueSequential    bool
	DampPercent       float32 // fraction of the mean Hessian diagonal
	DampAutoIncrement float32 // added on each Cholesky failure (0 = no retry)
	BlockSize         int
	FP16ScalesInSolve bool
	CheckpointFormat  CheckpointFormat
	CalibTokensPath   string // int32 little-endian rows of CalibSeqLen tokens; wins over CalibTextPath
	CalibTextPath     string // UTF-8 text; random windows are sampled from it. Neither = self-generated
	CalibNSamples     int
	CalibSeqLen       int
	Seed              uint64
	Backend           Backend
	NThreads          int
	MaxShardBytes     int64 // 0 = one file
	ClipSearch        int   // per-group clipping search: 0 none, 1 MSE (default), 2 Hessian-weighted
	// Progress, if set, is called as layers are quantized; returning false cancels (StatusAborted).
	Progress func(Progress) bool
}

// DefaultQuantizeParams returns the library's defaults.
func DefaultQuantizeParams() QuantizeParams {
	d := C.gptq_quantize_params_default()
	return QuantizeParams{
		Bits: int(d.bits), GroupSize: int(d.group_size), Sym: d.sym != 0, DescAct: d.desc_act != 0,
		StaticGroups: d.static_groups != 0, TrueSequential: d.true_sequential != 0,
		DampPercent: float32(d.damp_percent), DampAutoIncrement: float32(d.damp_auto_increment),
		BlockSize: int(d.block_size), FP16ScalesInSolve: d.fp16_scales_in_solve != 0,
		CheckpointFormat: CheckpointFormat(d.checkpoint_format), CalibNSamples: int(d.calib_n_samples),
		CalibSeqLen: int(d.calib_seq_len), Seed: uint64(d.seed), Backend: Backend(d.backend),
		NThreads: int(d.n_threads), MaxShardBytes: int64(d.max_shard_bytes), ClipSearch: int(d.clip_search),
	}
}

func optCString(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// Quantize quantizes the model in modelDir layer by layer and writes a GPTQ checkpoint to
// outDir (written to a temporary directory and renamed into place only when complete).
func Quantize(modelDir, outDir string, p QuantizeParams) error {
	src, dst := C.CString(modelDir), C.CString(outDir)
	defer C.free(unsafe.Pointer(src))
	defer C.free(unsafe.Pointer(dst))
	tokens, text := optCString(p.CalibTokensPath), optCString(p.CalibTextPath)
	defer C.free(unsafe.Pointer(tokens))
	defer C.free(unsafe.Pointer(text))

	r := C.gptq_quantize_params_default()
	r.bits = C.int32_t(p.Bits)
	r.group_size = C.int32_t(p.GroupSize)
	r.sym = cbool(p.Sym)
	r.desc_act = cbool(p.DescAct)
	r.static_groups = cbool(p.StaticGroups)
	r.true_sequential = cbool(p.TrueSequential)
	r.damp_percent = C.float(p.DampPercent)
	r.damp_auto_increment = C.float(p.DampAutoIncrement)
	r.block_size = C.int32_t(p.BlockSize)
	r.fp16_scales_in_solve = cbool(p.FP16ScalesInSolve)
	r.checkpoint_format = C.int32_t(p.CheckpointFormat)
	r.calib_tokens_path = tokens
	r.calib_text_path = text
	r.calib_n_samples = C.int32_t(p.CalibNSamples)
	r.calib_seq_len = C.int32_t(p.CalibSeqLen)
	r.seed = C.uint64_t(p.Seed)
	r.backend = C.int32_t(p.Backend)
	r.n_threads = C.int32_t(p.NThreads)
	r.max_shard_bytes = C.int64_t(p.MaxShardBytes)
	r.clip_search = C.int32_t(p.ClipSearch)

	var h C.uintptr_t
	if p.Progress != nil {
		state := &callbackState{progress: p.Progress}
		handle := state.handle()
		defer state.done(handle)
		h = C.uintptr_t(handle)
	}
	return call(func() C.gptq_status { return C.gptqgo_quantize(src, dst, &r, h) })
}
