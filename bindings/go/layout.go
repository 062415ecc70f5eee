package gptq

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// checkLayouts compares cgo's struct sizes with the library's (each *_params_default() stores
// the C sizeof in struct_size): a mismatch means the header and the library disagree.
func checkLayouts() error {
	if d := C.gptq_load_params_default(); uintptr(d.struct_size) != unsafe.Sizeof(d) {
		return fmt.Errorf("gptq_load_params: library %d bytes, header %d", d.struct_size, unsafe.Sizeof(d))
	}
	if d := C.gptq_context_params_default(); uintptr(d.struct_size) != unsafe.Sizeof(d) {
		return fmt.Errorf("gptq_context_params: library %d bytes, header %d", d.struct_size, unsafe.Sizeof(d))
	}
	if d := C.gptq_generate_params_default(); uintptr(d.struct_size) != unsafe.Sizeof(d) {
		return fmt.Errorf("gptq_generate_params: library %d bytes, header %d", d.struct_size, unsafe.Sizeof(d))
	}
	if d := C.gptq_quantize_params_default(); uintptr(d.struct_size) != unsafe.Sizeof(d) {
		return fmt.Errorf("gptq_quantize_params: library %d bytes, header %d", d.struct_size, unsafe.Sizeof(d))
	}
	return nil
}
