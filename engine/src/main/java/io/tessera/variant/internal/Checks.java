package io.tessera.variant.internal;

import io.tessera.backend.AttentionShape;
import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;

/**
 * Argument checks shared by the variant entry points (not exported): every bad argument is
 * reported by its parameter name before any work starts, never as a JVM-made exception from the
 * inside of a kernel.
 */
public final class Checks {
    private Checks() {}

    /** Throws {@code NullPointerException(name)} when {@code value} is null. */
    public static <T> T notNull(String name, T value) {
        if (value == null) throw new NullPointerException(name);
        return value;
    }

    /** The variants read rows as contiguous runs: a view whose last dimension is strided is rejected by name. */
    public static void unitInnerStride(String name, Tensor t) {
        if (!t.hasUnitInnerStride()) {
            throw new IllegalArgumentException(name + " must have a unit-stride last dimension, got " + t + "; call contiguous(arena) first");
        }
    }

    /** An output may not share memory with an input: the variants read inputs after writing outputs. */
    public static void disjoint(String outName, Tensor out, String inName, Tensor in) {
        if (out.overlaps(in)) {
            throw new IllegalArgumentException(outName + " shares memory with " + inName + " (" + outName + " " + out + ", " + inName + " " + in
                    + "); writing " + outName + " would change " + inName + " while it is read: pass a separate output tensor");
        }
    }

    /** What the variants tell a caller who passes a half-precision tensor. */
    public static final String FLOAT32_ONLY = "this attention variant (half-precision storage runs in Attention and Backend.attention/gemm)";

    /** What the variants whose forward takes half-precision tensors ({@link HalfInputs}) tell a caller who passes one to their backward pass. */
    public static final String BACKWARD_FLOAT32_ONLY = "the backward pass of this attention variant (its forward takes BF16 and F16 q, k, v and out; gradients are computed from F32 tensors)";

    /** The variants read and write their tensors' memory as floats: a BF16 or F16 tensor is rejected by name. */
    public static void float32(String name, Tensor t) {
        Shapes.requireF32(name, t, FLOAT32_ONLY);
    }

    /**
     * The checks of a q/k/v → out call, in order: nulls by name, element types (F32) by name,
     * unit-stride rows by name, the shapes ({@link AttentionShape#of}), the output's shape, and that
     * out shares no memory with any input.
     */
    public static AttentionShape attention(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor out) {
        notNull("q", q);
        notNull(kName, k);
        notNull(vName, v);
        notNull("out", out);
        float32("q", q);
        float32(kName, k);
        float32(vName, v);
        float32("out", out);
        return attentionLayout(q, kName, k, vName, v, out);
    }

    /**
     * {@link #attention} for a call that takes any element type (F32, BF16, F16) for q, k, v and out
     * ({@link HalfInputs}): the same checks and messages, but no element-type check.
     */
    public static AttentionShape attentionAnyType(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor out) {
        notNull("q", q);
        notNull(kName, k);
        notNull(vName, v);
        notNull("out", out);
        return attentionLayout(q, kName, k, vName, v, out);
    }

    private static AttentionShape attentionLayout(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor out) {
        for (int i = 0; i < 3; i++) {
            Tensor t = i == 0 ? q : i == 1 ? k : v;
            if (t.rank() == 4) unitInnerStride(i == 0 ? "q" : i == 1 ? kName : vName, t);
        }
        AttentionShape s = AttentionShape.of(q, k, v);
        s.checkOutput("out", out, s.outputShape());
        disjoint("out", out, "q", q);
        disjoint("out", out, kName, k);
        disjoint("out", out, vName, v);
        return s;
    }

    /**
     * The checks of a backward call, in order: nulls by name, element types (F32) by name, unit-stride rows by name, the forward
     * shapes, {@code dOut} shaped like the output and each gradient like its input, and that no
     * gradient shares memory with another or with any input (gradients are written while the
     * inputs are still read).
     */
    public static AttentionShape backward(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        String[] names = {"q", kName, vName, "dOut", "dq", "d" + kName, "d" + vName};
        Tensor[] all = {q, k, v, dOut, dq, dk, dv};
        for (int i = 0; i < all.length; i++) notNull(names[i], all[i]);
        for (int i = 0; i < all.length; i++) Shapes.requireF32(names[i], all[i], BACKWARD_FLOAT32_ONLY);
        for (int i = 0; i < all.length; i++) if (all[i].rank() == 4) unitInnerStride(names[i], all[i]);
        AttentionShape s = AttentionShape.of(q, k, v);
        s.checkOutput("dOut", dOut, s.outputShape());
        s.checkOutput("dq", dq, q.shape());
        s.checkOutput(names[5], dk, k.shape());
        s.checkOutput(names[6], dv, v.shape());
        for (int w = 4; w < all.length; w++) {
            for (int other = 0; other < all.length; other++) {
                if (other != w && (other < 4 || other > w)) disjoint(names[w], all[w], names[other], all[other]);
            }
        }
        return s;
    }

    /** {@code a · b} for sizes, or an exception naming both factors when it does not fit an int array. */
    public static int intProduct(String what, long a, long b) {
        long p;
        try {
            p = Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            p = Long.MAX_VALUE;
        }
        if (p > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(what + " = " + a + "·" + b + " entries exceeds what a Java array holds (" + (Integer.MAX_VALUE - 8) + ")");
        }
        return (int) p;
    }
}
