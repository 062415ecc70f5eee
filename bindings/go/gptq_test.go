package gptq

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func sharedDir() string {
	if d := os.Getenv("GPTQ_SHARED_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared")
}

func stories(t *testing.T) string {
	t.Helper()
	d := filepath.Join(sharedDir(), "models", "stories260k")
	if _, err := os.Stat(filepath.Join(d, "config.json")); err != nil {
		t.Skipf("shared models not found at %s (set GPTQ_SHARED_DIR)", d)
	}
	return d
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cpuParams loads on the CPU: the goldens are CPU results, and BackendAuto would pick CUDA.
func cpuParams() LoadParams {
	p := DefaultLoadParams()
	p.Backend = BackendCPU
	return p
}

// BOS, then 200 greedy tokens from an empty prompt: the run the golden text was made with
// (llama2.c -n 200; the golden id file lists those 200 tokens).
func goldenParams() GenerateParams {
	p := GreedyParams(200)
	p.AddBOS = BOSYes
	return p
}

func loadStories(t *testing.T) *Model {
	t.Helper()
	m, err := LoadWith(stories(t), cpuParams())
	if err != nil {
		t.Fatalf("load stories260k: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newContext(t *testing.T, m *Model, p ContextParams) *Context {
	t.Helper()
	c, err := NewContext(m, p)
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStructLayoutsMatchTheLibrary(t *testing.T) {
	if err := checkLayouts(); err != nil {
		t.Error(err)
	}
	if Version() != BindingVersion {
		t.Errorf("library version %q, binding %q", Version(), BindingVersion)
	}
}

func TestModelInfo(t *testing.T) {
	info, err := loadStories(t).Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Architecture != "llama" || info.VocabSize != 512 || info.HiddenSize != 64 || info.NLayers != 5 ||
		info.NHeads != 8 || info.NKVHeads != 4 || info.BOSToken != 1 || !info.TiedEmbeddings || info.QuantBits != 0 {
		t.Errorf("unexpected info %+v", info)
	}
}

func goldenIDs(t *testing.T) []int32 {
	var ids []int32
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(stories(t), "golden", "greedy_n200_token_ids.txt"))), "\n") {
		f := strings.Fields(line)
		v, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, int32(v))
	}
	return ids
}

func TestTokenizerRoundTripsTheGoldenText(t *testing.T) {
	m := loadStories(t)
	text := readFile(t, filepath.Join(stories(t), "golden", "expected_greedy_n200.txt"))
	want := goldenIDs(t)
	got, err := m.Tokenize(text, BOSNo)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || !equalInts(got, want) {
		t.Fatalf("tokenize: got %d ids %v...", len(got), got[:min(10, len(got))])
	}
	withBOS, _ := m.Tokenize(text, BOSYes)
	if withBOS[0] != 1 || !equalInts(withBOS[1:], want) {
		t.Errorf("tokenize with BOS: %v...", withBOS[:5])
	}
	back, err := m.Detokenize(want)
	if err != nil || back != text {
		t.Errorf("detokenize: %v %q", err, back)
	}
	if piece, _ := m.TokenPiece(3 + 0x0A); piece != "<0x0A>" {
		t.Errorf("piece of 13: %q", piece)
	}
}

func TestLogitsMatchTheGolden(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, ContextParams{NCtx: 64})
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(stories(t), "golden", "logits_pos0-2.txt"))), "\n")
	if err := c.EvalBatch(Batch{Tokens: []int32{1, 403, 407}, Logits: []bool{true, true, true}}); err != nil {
		t.Fatal(err)
	}
	for i, line := range lines {
		f := strings.Fields(line)[1:]
		got, err := c.Logits(i)
		if err != nil || len(got) != 512 || len(f) != 512 {
			t.Fatalf("position %d: %v, %d logits", i, err, len(got))
		}
		worst := 0.0
		for v := range f {
			want, _ := strconv.ParseFloat(f[v], 64)
			if d := abs(float64(got[v]) - want); d > worst {
				worst = d
			}
		}
		if worst > 1e-4 {
			t.Errorf("position %d: max |diff| %g", i, worst)
		}
	}
	if c.SeqLen(0) != 3 {
		t.Errorf("SeqLen %d", c.SeqLen(0))
	}
	if err := c.EvalBatch(Batch{Tokens: []int32{1, 2}, Pos: []int32{0}}); !errors.Is(err, StatusInvalidArg) {
		t.Errorf("mismatched batch: %v", err)
	}
	c.ResetAll()
	c.Eval([]int32{1, 403})
	if _, err := c.Logits(0); err == nil || err.(*Error).Message == "" {
		t.Errorf("logits of a token that did not keep them: %v", err)
	}
}

func TestGreedy200EqualsTheGoldenText(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, DefaultContextParams())
	want := readFile(t, filepath.Join(stories(t), "golden", "expected_greedy_n200.txt"))
	got, err := c.Generate("", goldenParams())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("greedy text differs:\n got %q\nwant %q", got, want)
	}

	var pieces strings.Builder
	var ids []int32
	streamed, err := c.GenerateStream("", goldenParams(), func(tok Token) bool {
		pieces.WriteString(tok.Text)
		ids = append(ids, tok.ID)
		return true
	})
	if err != nil || streamed != want || pieces.String() != want {
		t.Fatalf("stream: %v; text equal %v, pieces equal %v", err, streamed == want, pieces.String() == want)
	}
	if !equalInts(ids, goldenIDs(t)) {
		t.Errorf("streamed ids differ from the golden ids")
	}

	n := 0
	early, err := c.GenerateStream("", goldenParams(), func(Token) bool { n++; return n < 5 })
	if err != nil || n != 5 || early == "" || !strings.HasPrefix(want, early) || len(early) > 40 {
		t.Errorf("stopping after 5 tokens: err %v, n %d, text %q", err, n, early)
	}
}

func TestCallbackPanicReachesTheCaller(t *testing.T) {
	m := loadStories(t)
	c := newContext(t, m, DefaultContextParams())
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v", r)
		}
		// The context is still usable after the panic.
		if _, err := c.Generate("", GreedyParams(3)); err != nil {
			t.Errorf("after panic: %v", err)
		}
	}()
	c.GenerateStream("", goldenParams(), func(Token) bool { panic("boom") })
	t.Error("no panic")
}

func TestSharedModelAcrossGoroutinesAndCloseOrder(t *testing.T) {
	m, err := LoadWith(stories(t), cpuParams())
	if err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(stories(t), "golden", "expected_greedy_n200.txt"))
	var ctxs []*Context
	for i := 0; i < 3; i++ {
		c, err := NewContext(m, ContextParams{NCtx: 256})
		if err != nil {
			t.Fatal(err)
		}
		ctxs = append(ctxs, c)
	}
	m.Close() // the contexts keep the model alive
	m.Close() // twice is fine
	if _, err := m.Info(); !errors.Is(err, StatusInvalidArg) {
		t.Errorf("closed model: %v", err)
	}
	var wg sync.WaitGroup
	results := make([]string, len(ctxs))
	for i, c := range ctxs {
		wg.Add(1)
		go func(i int, c *Context) {
			defer wg.Done()
			defer c.Close()
			results[i], _ = c.Generate("", goldenParams())
		}(i, c)
	}
	wg.Wait()
	for i, r := range results {
		if r != want {
			t.Errorf("goroutine %d: %q", i, r)
		}
	}
}

func TestBatchAndStopStrings(t *testing.T) {
	m := loadStories(t)
	want := readFile(t, filepath.Join(stories(t), "golden", "expected_greedy_n200.txt"))
	c := newContext(t, m, ContextParams{NCtx: 256, NSeqMax: 2})
	outs, err := c.GenerateBatch([]string{"", ""}, goldenParams())
	if err != nil || len(outs) != 2 || outs[0] != want || outs[1] != want {
		t.Errorf("batch: %v", err)
	}
	if _, err := c.GenerateBatch([]string{"", "", ""}, goldenParams()); err == nil || !strings.Contains(err.Error(), "NSeqMax") {
		t.Errorf("too many prompts: %v", err)
	}
	p := goldenParams()
	p.StopStrings = []string{"Lily"}
	got, err := c.Generate("", p)
	if cut := strings.Index(want, "Lily"); err != nil || got != want[:cut] {
		t.Errorf("stop string: %v %q", err, got)
	}
}

func TestLoadingAMissingDirFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no-such-model")
	_, err := Load(dir)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *gptq.Error, got %v", err)
	}
	if !errors.Is(err, StatusIO) {
		t.Errorf("status %v, want IO", e.Status)
	}
	if !strings.Contains(e.Message, "no-such-model") {
		t.Errorf("message does not name the dir: %q", e.Message)
	}
}

func TestQuantizeDocsLlama8m(t *testing.T) {
	modelDir := filepath.Join("..", "..", "models", "docs-llama-8m")
	calib := filepath.Join(sharedDir(), "data", "docs-heldout.txt")
	if _, err := os.Stat(calib); err != nil {
		t.Skipf("calibration text not found: %v", err)
	}
	out := filepath.Join(t.TempDir(), "quantized")
	p := DefaultQuantizeParams()
	p.CalibNSamples, p.CalibSeqLen, p.CalibTextPath = 4, 64, calib
	reports := 0
	p.Progress = func(pr Progress) bool {
		reports++
		if pr.Total > 0 && pr.Done > pr.Total {
			t.Errorf("progress %+v", pr)
		}
		return true
	}
	if err := Quantize(modelDir, out, p); err != nil {
		t.Fatalf("quantize: %v", err)
	}
	if reports == 0 {
		t.Error("the progress callback was never called")
	}
	m, err := Load(out)
	if err != nil {
		t.Fatalf("load quantized: %v", err)
	}
	defer m.Close()
	info, _ := m.Info()
	if info.QuantBits != 4 || info.QuantGroupSize != 128 || !info.QuantSym {
		t.Errorf("quantized info %+v", info)
	}
	c := newContext(t, m, ContextParams{NCtx: 64})
	if text, err := c.Generate("The", GreedyParams(8)); err != nil || text == "" {
		t.Errorf("generate from quantized: %v %q", err, text)
	}

	// Cancelling from the progress callback is an Aborted error and leaves nothing behind.
	cancelled := filepath.Join(t.TempDir(), "cancelled")
	p.Progress = func(Progress) bool { return false }
	if err := Quantize(modelDir, cancelled, p); !errors.Is(err, StatusAborted) {
		t.Errorf("cancel: %v", err)
	}
	if _, err := os.Stat(cancelled); err == nil {
		t.Errorf("cancelled run left %s", cancelled)
	}
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
