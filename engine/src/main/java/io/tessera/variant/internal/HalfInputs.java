package io.tessera.variant.internal;

import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * Half-precision storage for the variants whose float32 path reads and writes tensor memory as
 * floats (kernelized, low-rank, factorized, content, tensorized, explicit sparse, top-k, the
 * causal convolution), forward and backward: when any tensor of a call is BF16 or F16, each
 * half-precision input is widened once (exactly) into a float32 copy, the variant's unchanged
 * float32 path runs on the copies into float32 outputs (gradients), and each half-precision
 * output is rounded once (to nearest, ties to even) from its float32 value. The arithmetic is the
 * float32 path's, bit for bit, on the rounded inputs; the cost is an O(n·d) float32 copy of each
 * half-precision input (and of each half-precision output) per call, freed on return.
 */
public final class HalfInputs {
    private HalfInputs() {}

    /** A variant's float32 forward, called with float32 q, k, v and out. */
    @FunctionalInterface
    public interface Forward {
        void run(Tensor q, Tensor k, Tensor v, Tensor out);
    }

    /** Whether any of the tensors (null ones ignored) is stored in a half-precision type. */
    public static boolean any(Tensor q, Tensor k, Tensor v, Tensor out) {
        return isHalf(q) || isHalf(k) || isHalf(v) || isHalf(out);
    }

    private static boolean isHalf(Tensor t) {
        return t != null && t.type() != ElementType.F32;
    }

    /**
     * Returns false, doing nothing, when q, k, v and out are all F32 (or an argument is null: the
     * caller's own checks report it): the caller runs its float32 path. Otherwise checks the call as
     * {@link Checks#attentionAnyType} does, runs {@code float32Forward} on float32 copies (see
     * {@link #widened}) and returns true.
     */
    public static boolean forward(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor out, Forward float32Forward) {
        if (!any(q, k, v, out)) return false;
        Checks.attentionAnyType(q, kName, k, vName, v, out);
        widened(q, k, v, out, float32Forward);
        return true;
    }

    /**
     * Runs {@code float32Forward} on float32 copies of the half-precision ones among q, k, v (F32
     * ones are passed as they are) into out, or, when out is half-precision, into a float32
     * temporary rounded once into out. The caller has checked the call (shapes, and that out shares
     * no memory with the inputs).
     */
    public static void widened(Tensor q, Tensor k, Tensor v, Tensor out, Forward float32Forward) {
        // Shared, not confined: the float32 paths read their inputs from worker threads.
        try (Arena arena = Arena.ofShared()) {
            Tensor q32 = float32(arena, q), k32 = float32(arena, k), v32 = float32(arena, v);
            Tensor out32 = isHalf(out) ? Tensor.zeros(arena, out.shape()) : out;
            float32Forward.run(q32, k32, v32, out32);
            if (out32 != out) out.copyFrom(out32);
        }
    }

    private static Tensor float32(Arena arena, Tensor t) {
        return isHalf(t) ? t.to(arena, ElementType.F32) : t;
    }

    /** A variant's float32 backward pass, called with float32 q, k, v, dOut and gradients. */
    @FunctionalInterface
    public interface Backward {
        void run(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv);
    }

    /**
     * A float32 computation over tensors: {@code inputs} (read) and {@code outputs} (written),
     * each F32, in the order they were given.
     */
    @FunctionalInterface
    public interface Body {
        void run(Tensor[] inputs, Tensor[] outputs);
    }

    /**
     * Returns false, doing nothing, when q, k, v, dOut and the three gradients are all F32 (or an
     * argument is null: the caller's own checks report it): the caller runs its float32 path.
     * Otherwise checks the call as {@link Checks#backwardAnyType} does (inputs of any type; each
     * gradient F32 or its input's type), runs {@code float32Backward} on float32 copies of the
     * half-precision inputs into float32 gradients, rounds each half-precision gradient once into
     * the caller's tensor and returns true.
     */
    public static boolean backward(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv,
                                   Backward float32Backward) {
        if (!any(q, k, v, dOut) && !any(dq, dk, dv, null)) return false;
        Checks.backwardAnyType(q, kName, k, vName, v, dOut, dq, dk, dv);
        widened(new Tensor[] {q, k, v, dOut}, new Tensor[] {dq, dk, dv},
                (in, out) -> float32Backward.run(in[0], in[1], in[2], in[3], out[0], out[1], out[2]));
        return true;
    }

    /**
     * Runs {@code body} on float32 copies of the half-precision {@code inputs} (F32 ones and nulls
     * are passed as they are) and, for each half-precision tensor of {@code outputs}, a zeroed
     * float32 temporary of its shape that is rounded once (to nearest, ties to even) into it after
     * {@code body} returns (F32 outputs and nulls are passed as they are). The caller has checked
     * the call. The copies live in a shared arena freed on return (the float32 paths read them
     * from worker threads).
     */
    public static void widened(Tensor[] inputs, Tensor[] outputs, Body body) {
        try (Arena arena = Arena.ofShared()) {
            Tensor[] in32 = new Tensor[inputs.length], out32 = new Tensor[outputs.length];
            for (int i = 0; i < inputs.length; i++) in32[i] = float32(arena, inputs[i]);
            for (int i = 0; i < outputs.length; i++) out32[i] = isHalf(outputs[i]) ? Tensor.zeros(arena, outputs[i].shape()) : outputs[i];
            body.run(in32, out32);
            for (int i = 0; i < outputs.length; i++) if (out32[i] != outputs[i]) outputs[i].copyFrom(out32[i]);
        }
    }
}
