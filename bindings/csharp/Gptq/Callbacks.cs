// Callbacks.cs — progress and token callbacks from C into managed code.
//
// An exception must not unwind through the library's frames, so the bridge catches it, asks the
// C call to stop (nonzero return), and rethrows it, stack trace intact, once the call returned.
using System;
using System.Runtime.ExceptionServices;

namespace Gptq
{
    /// <summary>One progress report of long work (loading, quantizing, perplexity).</summary>
    public struct Progress
    {
        /// <summary>"load", "quantize", "perplexity", ...</summary>
        public string Stage;
        public long Done;
        public long Total;
        /// <summary>A short text such as "layer 3/8 mlp.down_proj err 1.2e-3", or "".</summary>
        public string Detail;
    }

    /// <summary>One generated token as it is streamed.</summary>
    public struct Token
    {
        /// <summary>Index of the prompt it continues (0 for Generate).</summary>
        public int Seq;
        public int Id;
        /// <summary>The UTF-8 text it completes; empty while a character is split across tokens.</summary>
        public string Text;
    }

    internal sealed class CallbackBridge
    {
        private readonly Func<Progress, bool> onProgress;
        private readonly Func<Token, bool> onToken;
        private ExceptionDispatchInfo error;
        /// <summary>The managed callback returned false.</summary>
        public bool Stopped { get; private set; }

        // The delegates handed to C; fields keep them alive while C may call them.
        public readonly Native.ProgressCallback ProgressDelegate;
        public readonly Native.TokenCallback TokenDelegate;

        public CallbackBridge(Func<Progress, bool> onProgress, Func<Token, bool> onToken)
        {
            this.onProgress = onProgress;
            this.onToken = onToken;
            ProgressDelegate = ProgressTrampoline;
            TokenDelegate = TokenTrampoline;
        }

        private int Run(Func<bool> f)
        {
            if (Stopped || error != null) return 1;
            try
            {
                if (f()) return 0;
                Stopped = true;
                return 1;
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
                return 1;
            }
        }

        private int ProgressTrampoline(IntPtr stage, long done, long total, IntPtr detail, IntPtr userData)
        {
            if (onProgress == null) return 0;
            var p = new Progress { Stage = Interop.FromUtf8(stage), Done = done, Total = total, Detail = Interop.FromUtf8(detail) };
            return Run(() => onProgress(p));
        }

        private int TokenTrampoline(int seq, int token, IntPtr text, UIntPtr textLen, IntPtr userData)
        {
            if (onToken == null) return 0;
            var t = new Token { Seq = seq, Id = token, Text = Interop.FromUtf8(text, (int)textLen.ToUInt64()) };
            return Run(() => onToken(t));
        }

        /// <summary>After the C call: rethrows a callback's exception, else checks the status.
        /// With allowStop, a stop the callback asked for is a normal end.</summary>
        public void Finish(int status, bool allowStop)
        {
            GptqException failure = status != 0 ? Interop.LastError(status) : null;
            if (error != null) error.Throw();
            if (failure == null) return;
            if (allowStop && Stopped && failure.Status == Status.Aborted) return;
            throw failure;
        }
    }
}
