package io.tessera.variant.factorized;

import io.tessera.attention.Attention;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import io.tessera.variant.AttentionOperator;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Factorized attention as chained calls of the fused kernel: step 1 attends with the first
 * pattern, each further step attends with the same queries and keys over the previous step's
 * output as values: {@code Y₁ = A₁V, Y₂ = A₂Y₁, …}. Two hops of two sparse patterns connect every
 * pair a dense pattern would (Child et al. 2019, Sparse Transformer factorized heads; Ho et al.
 * 2019, axial attention: rows, then columns), at the cost of the sparse ones.
 * Needs qLen = kvLen and H = Hkv (a step's output becomes the next step's values).
 * {@link #backward} chains the fused kernel's backward pass through the steps in reverse.
 */
public final class ChainedAttention implements AttentionOperator.Scaled, AttentionOperator.Differentiable {
    private final List<Pattern> steps;
    private final Backend backend;
    private final int axialRows, axialCols;   // 0 unless built by axial()
    private final float scale;                // NaN: 1/√D

    private ChainedAttention(List<Pattern> steps, Backend backend, int axialRows, int axialCols) {
        this(steps, backend, axialRows, axialCols, Float.NaN);
    }

    private ChainedAttention(List<Pattern> steps, Backend backend, int axialRows, int axialCols, float scale) {
        if (steps == null) throw new NullPointerException("steps");
        if (steps.isEmpty()) throw new IllegalArgumentException("steps must list at least one pattern");
        for (int i = 0; i < steps.size(); i++) if (steps.get(i) == null) throw new NullPointerException("steps[" + i + "]");
        this.steps = List.copyOf(steps);
        this.backend = backend;
        this.axialRows = axialRows;
        this.axialCols = axialCols;
        this.scale = scale;
    }

    public static ChainedAttention of(List<Pattern> steps) { return new ChainedAttention(steps, null, 0, 0); }

    /** Sparse Transformer factorized heads: local band of {@code stride}, then strided. */
    public static ChainedAttention sparseTransformer(int stride, boolean causal) {
        return of(Pattern.sparseTransformerFactorized(stride, causal));
    }

    /** Axial attention over a rows × cols layout: within each row, then within each column. */
    public static ChainedAttention axial(int rows, int cols) {
        if (rows < 1) throw new IllegalArgumentException("rows must be >= 1, got " + rows);
        if (cols < 1) throw new IllegalArgumentException("cols must be >= 1, got " + cols);
        return new ChainedAttention(List.of(Pattern.blockLocal(cols), Pattern.stride(cols)), null, rows, cols);
    }

    @Override
    public ChainedAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new ChainedAttention(steps, backend, axialRows, axialCols, scale);
    }

    /** The same chain with softmax scale {@code scale} in every step instead of 1/√D. */
    @Override
    public ChainedAttention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new ChainedAttention(steps, backend, axialRows, axialCols, scale);
    }

    public List<Pattern> steps() { return steps; }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        if (HalfInputs.forward(q, "k", k, "v", v, out, this::forward)) return;
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        checkCall(s);
        Backend be = backend != null ? backend : Backend.best();
        try (Arena arena = Arena.ofShared()) {
            Tensor values = v, next = steps.size() > 1 ? Tensor.zeros(arena, out.shape()) : out, spare = steps.size() > 2 ? Tensor.zeros(arena, out.shape()) : null;
            for (int step = 0; step < steps.size(); step++) {
                Tensor target = step == steps.size() - 1 ? out : next;
                step(step, be).forward(q, k, values, target);
                values = target;
                if (spare != null) { Tensor t = next; next = spare; spare = t; }
            }
        }
    }

    /**
     * The gradients of {@link #forward}: the steps run forward once more, keeping each output
     * Y_s and log-sum-exp; then, from the last step down, the fused kernel's backward pass of step s
     * (values Y_{s−1}, loss gradient dY_s) gives dY_{s−1} and this step's share of dq and dk, summed
     * over the steps in one order (last step first); dv = dY_0. Rows a step's pattern leaves empty
     * get zero gradients from that step. Bit-identical for any thread count (the fused backward is,
     * and every sum has one order). Extra memory: every step's output and log-sum-exp, and two
     * gradient buffers of q's and one of the output's shape.
     */
    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (HalfInputs.backward(q, "k", k, "v", v, dOut, dq, dk, dv, this::backward)) return;
        AttentionShape s = Checks.backward(q, "k", k, "v", v, dOut, dq, dk, dv);
        checkCall(s);
        Backend be = backend != null ? backend : Backend.best();
        int count = steps.size();
        try (Arena arena = Arena.ofShared()) {
            Tensor[] outputs = new Tensor[count], lses = new Tensor[count];
            Tensor values = v;
            for (int step = 0; step < count; step++) {
                outputs[step] = Tensor.zeros(arena, s.outputShape());
                lses[step] = Tensor.zeros(arena, s.lseShape());
                step(step, be).forwardWithLse(q, k, values, outputs[step], lses[step]);
                values = outputs[step];
            }
            Tensor stepDq = count > 1 ? Tensor.zeros(arena, q.shape()) : null, stepDk = count > 1 ? Tensor.zeros(arena, k.shape()) : null;
            Tensor dValues = count > 1 ? Tensor.zeros(arena, s.outputShape()) : null, spare = count > 2 ? Tensor.zeros(arena, s.outputShape()) : null;
            Tensor dOutputs = dOut;
            for (int step = count - 1; step >= 0; step--) {
                boolean last = step == count - 1;
                Tensor target = step == 0 ? dv : dValues;
                step(step, be).backward(q, k, step == 0 ? v : outputs[step - 1], outputs[step], lses[step], dOutputs,
                        last ? dq : stepDq, last ? dk : stepDk, target);
                if (!last) {
                    add(dq, stepDq);
                    add(dk, stepDk);
                }
                dOutputs = target;
                if (spare != null) { Tensor t = dValues; dValues = spare; spare = t; }
            }
        }
    }

    private void checkCall(AttentionShape s) {
        if (s.qLen() != s.kvLen()) throw new IllegalArgumentException("chained attention needs qLen == kvLen, got qLen=" + s.qLen() + ", kvLen=" + s.kvLen());
        if (s.heads() != s.kvHeads()) throw new IllegalArgumentException("chained attention needs heads == kvHeads, got heads=" + s.heads() + ", kvHeads=" + s.kvHeads());
        if (axialRows > 0 && (long) axialRows * axialCols != s.qLen()) {
            throw new IllegalArgumentException("axial " + axialRows + "x" + axialCols + " needs sequence length " + (long) axialRows * axialCols + ", got " + s.qLen());
        }
    }

    private Attention step(int step, Backend be) {
        Attention attention = Attention.sparse(steps.get(step)).on(be);
        return Float.isNaN(scale) ? attention : attention.withScale(scale);
    }

    /** sum += term, element by element (both [B, H, N, D] with unit-stride rows). */
    private static void add(Tensor sum, Tensor term) {
        MemorySegment dst = sum.segment(), src = term.segment();
        long[] shape = sum.shape();
        for (int b = 0; b < shape[0]; b++) for (int h = 0; h < shape[1]; h++) for (int i = 0; i < shape[2]; i++) {
            long o = sum.offset() + b * sum.stride(0) + h * sum.stride(1) + i * sum.stride(2);
            long t = term.offset() + b * term.stride(0) + h * term.stride(1) + i * term.stride(2);
            for (int x = 0; x < shape[3]; x++) dst.setAtIndex(FLOAT, o + x, dst.getAtIndex(FLOAT, o + x) + src.getAtIndex(FLOAT, t + x));
        }
    }

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
}
