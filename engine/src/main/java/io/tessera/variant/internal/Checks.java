package io.tessera.variant.internal;

import io.tessera.backend.AttentionShape;
import io.tessera.tensor.ElementType;
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

    /**
     * What a variant's float32 path tells a caller who passes a half-precision tensor where only F32
     * is taken (a log-sum-exp; the half-precision q, k, v and out are widened by {@link HalfInputs}
     * before the float32 path runs).
     */
    public static final String FLOAT32_ONLY = "this attention variant (log-sum-exps are always F32; q, k, v and out may be BF16 or F16)";

    /** What a backward pass's float32 path tells a caller who passes a half-precision tensor there (the public entry points widen them first: {@link HalfInputs#backward}). */
    public static final String BACKWARD_FLOAT32_ONLY = "the float32 path of this backward pass (half-precision inputs are widened and half-precision gradients rounded by its public entry point)";

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
        return backward(q, kName, k, vName, v, dOut, dq, dk, dv, false);
    }

    /**
     * {@link #backward} for a call that takes half-precision storage ({@link HalfInputs#backward}):
     * q, k, v and dOut of any element type, each gradient F32 or its input's type (dq: F32 or q's
     * type, and so on); any other gradient type is rejected by name with both types. The other
     * checks and messages are {@link #backward}'s.
     */
    public static AttentionShape backwardAnyType(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        return backward(q, kName, k, vName, v, dOut, dq, dk, dv, true);
    }

    /** A gradient is stored in F32 or in the type of the tensor it is the gradient of: anything else is rejected by name. */
    public static void gradientType(String gradientName, Tensor gradient, String inputName, Tensor input) {
        ElementType type = gradient.type();
        if (type != ElementType.F32 && type != input.type()) {
            throw new IllegalArgumentException(gradientName + " has element type " + type + " but " + inputName + " has element type " + input.type()
                    + ": a gradient is stored in F32 or in its input's type (" + ElementType.F32 + " or " + input.type() + ")");
        }
    }

    private static AttentionShape backward(Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv,
                                           boolean anyType) {
        String[] names = {"q", kName, vName, "dOut", "dq", "d" + kName, "d" + vName};
        Tensor[] all = {q, k, v, dOut, dq, dk, dv};
        for (int i = 0; i < all.length; i++) notNull(names[i], all[i]);
        if (anyType) {
            for (int i = 4; i < all.length; i++) gradientType(names[i], all[i], names[i - 4], all[i - 4]);
        } else {
            for (int i = 0; i < all.length; i++) Shapes.requireF32(names[i], all[i], BACKWARD_FLOAT32_ONLY);
        }
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

    /**
     * The log-sum-exp output of a call whose q, k, v and out may be half-precision: F32 whatever
     * the other types (rejected by name otherwise), shaped {@code [B, H, Nq]}, sharing no memory
     * with q, k, v or out. Null (not wanted) passes.
     */
    public static void logSumExp(AttentionShape s, Tensor lse, Tensor q, String kName, Tensor k, String vName, Tensor v, Tensor out) {
        if (lse == null) return;
        if (lse.type() != ElementType.F32) {
            throw new IllegalArgumentException("lse has element type " + lse.type() + " but the log-sum-exp is always F32, whatever the types of q, k, v"
                    + " and out; pass an F32 tensor");
        }
        s.checkOutput("lse", lse, s.lseShape());
        disjoint("lse", lse, "q", q);
        disjoint("lse", lse, kName, k);
        disjoint("lse", lse, vName, v);
        disjoint("lse", lse, "out", out);
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
