package io.tessera.backend;

import io.tessera.layout.HeadLayouts;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * The forward geometry of an attention call plus element offsets and strides of the backward
 * pass's tensors: the loss gradient {@code dOut} (shaped like {@code out}) and the gradients
 * {@code dq}, {@code dk}, {@code dv} (shaped like q, k, v). Public so that backends in other modules
 * validate exactly as the CPU backends do.
 */
public record GradientGeometry(
        AttentionGeometry forward,
        long dOOff, long dOB, long dOH, long dORow,
        long dqOff, long dqB, long dqH, long dqRow,
        long dkOff, long dkB, long dkH, long dkRow,
        long dvOff, long dvB, long dvH, long dvRow) {

    /**
     * Validates every argument of {@link Backend#attentionBackward}, naming the offending one: the
     * forward's checks, {@code lse} required, gradient shapes, unit inner strides, and gradients that
     * share no memory with each other or with any input (they are written while inputs are read).
     * q, k, v, out and dOut may be stored in any {@link ElementType}; lse and the gradients dq, dk,
     * dv must be F32 (dq is summed tile by tile in its own memory, which must not be half precision).
     */
    public static GradientGeometry checked(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse,
                                           Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (lse == null) throw new NullPointerException("lse (the backward pass recomputes probabilities from it)");
        AttentionGeometry g = AttentionGeometry.checkedHalfStorage(q, k, v, layouts, scale, out, lse);
        AttentionShape s = g.shape();
        if (dOut == null) throw new NullPointerException("dOut");
        if (dq == null) throw new NullPointerException("dq");
        if (dk == null) throw new NullPointerException("dk");
        if (dv == null) throw new NullPointerException("dv");
        s.checkOutput("dOut", dOut, s.outputShape());
        Tensor[] gradients = {dq, dk, dv};
        String[] gradientNames = {"dq", "dk", "dv"};
        for (int i = 0; i < gradients.length; i++) {
            if (gradients[i].type() != ElementType.F32) {
                throw new IllegalArgumentException(gradientNames[i] + " has element type " + gradients[i].type() + " but gradients are written as F32"
                        + " (dq is accumulated tile by tile in place; half precision there would drift): pass an F32 tensor and convert with to(arena, type)");
            }
        }
        s.checkOutput("dq", dq, q.shape());
        s.checkOutput("dk", dk, k.shape());
        s.checkOutput("dv", dv, v.shape());
        Tensor[] written = {dq, dk, dv};
        String[] writtenNames = {"dq", "dk", "dv"};
        Tensor[] read = {q, k, v, out, lse, dOut};
        String[] readNames = {"q", "k", "v", "out", "lse", "dOut"};
        for (int i = 0; i < written.length; i++) {
            for (int j = i + 1; j < written.length; j++) AttentionGeometry.requireDisjoint(writtenNames[i], written[i], writtenNames[j], written[j]);
            for (int j = 0; j < read.length; j++) AttentionGeometry.requireDisjoint(writtenNames[i], written[i], readNames[j], read[j]);
        }
        return new GradientGeometry(g,
                dOut.offset(), dOut.stride(0), dOut.stride(1), dOut.stride(2),
                dq.offset(), dq.stride(0), dq.stride(1), dq.stride(2),
                dk.offset(), dk.stride(0), dk.stride(1), dk.stride(2),
                dv.offset(), dv.stride(0), dv.stride(1), dv.stride(2));
    }

    public AttentionShape shape() { return forward.shape(); }

    /**
     * Validates the learnable tables' gradients of {@link Backend#attentionBackward(Tensor, Tensor,
     * Tensor, HeadLayouts, float, ScoreMod, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, List)},
     * naming the offending one: none (null or empty) without a modifier; otherwise one tensor per
     * {@link ScoreMod#parameters()} entry, of that table's shape, sharing memory with no input, output,
     * gradient or other table gradient. Public so that every backend checks them alike.
     */
    public static void checkParameterGradients(ScoreMod mod, List<Tensor> dParameters, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                               Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (mod == null) {
            if (dParameters != null && !dParameters.isEmpty()) throw new IllegalArgumentException("dParameters must be empty without a score modifier, got " + dParameters.size());
            return;
        }
        List<Tensor> params = mod.parameters();
        if (dParameters == null) throw new NullPointerException("dParameters");
        if (dParameters.size() != params.size()) {
            throw new IllegalArgumentException("dParameters must hold " + params.size() + " tensors (one per ScoreMod.parameters() entry), got " + dParameters.size());
        }
        Tensor[] touched = {q, k, v, out, lse, dOut, dq, dk, dv};
        String[] names = {"q", "k", "v", "out", "lse", "dOut", "dq", "dk", "dv"};
        for (int p = 0; p < params.size(); p++) {
            Tensor d = dParameters.get(p);
            if (d == null) throw new NullPointerException("dParameters[" + p + "]");
            if (!Arrays.equals(d.shape(), params.get(p).shape())) {
                throw new IllegalArgumentException("dParameters[" + p + "] shape " + Arrays.toString(d.shape()) + " must be the table's " + Arrays.toString(params.get(p).shape()));
            }
            for (int t = 0; t < touched.length; t++) {
                if (d.overlaps(touched[t])) throw new IllegalArgumentException("dParameters[" + p + "] shares memory with " + names[t]);
            }
            for (int o = 0; o < p; o++) {
                if (d.overlaps(dParameters.get(o))) throw new IllegalArgumentException("dParameters[" + p + "] shares memory with dParameters[" + o + "]");
            }
        }
    }

    public long dOBase(int b, int h) { return dOOff + b * dOB + h * dOH; }
    public long dqBase(int b, int h) { return dqOff + b * dqB + h * dqH; }
    public long dkBase(int b, int hk) { return dkOff + b * dkB + hk * dkH; }
    public long dvBase(int b, int hk) { return dvOff + b * dvB + hk * dvH; }
}
