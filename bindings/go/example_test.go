package gptq_test

import (
	"errors"
	"fmt"
	"os"

	"gptq"
)

// The README's example: quantize, run the result with streaming, and handle an error. It is
// compiled with the tests (not run: it has no Output comment).
func Example() {
	q := gptq.DefaultQuantizeParams()
	q.CalibTextPath = "../shared/data/docs-heldout.txt"
	q.CalibNSamples, q.CalibSeqLen = 32, 256
	q.Progress = func(p gptq.Progress) bool {
		fmt.Fprintf(os.Stderr, "%s %d/%d %s\n", p.Stage, p.Done, p.Total, p.Detail)
		return true // false cancels
	}
	if err := gptq.Quantize("models/docs-llama-8m", "/tmp/docs-8m-w4g128", q); err != nil {
		fmt.Println(err)
		return
	}

	model, err := gptq.Load("/tmp/docs-8m-w4g128")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer model.Close()
	ctx, err := gptq.NewContext(model, gptq.ContextParams{NCtx: 512})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ctx.Close()
	text, err := ctx.GenerateStream("The library", gptq.GreedyParams(48), func(t gptq.Token) bool {
		fmt.Print(t.Text)
		return true // false stops generation
	})
	fmt.Println()
	_ = text

	if _, err := gptq.Load("/no/such/model"); errors.Is(err, gptq.StatusIO) {
		var e *gptq.Error
		errors.As(err, &e)
		fmt.Println("load failed:", e.Message)
	}
}
