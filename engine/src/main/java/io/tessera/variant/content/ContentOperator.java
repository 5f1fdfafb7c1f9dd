package io.tessera.variant.content;

import io.tessera.attention.AttentionGradients;
import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Shapes;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import io.tessera.variant.internal.Checks;
import io.tessera.variant.internal.HalfInputs;
import java.lang.foreign.Arena;

/**
 * What LSH and routing attention share once the data has decided who sees whom ({@link #induce}):
 * the forward through the fused kernel over the induced slot layouts, and the three backward entry
 * points through the fused backward on the same layouts. The decision itself (hashing, clustering) is
 * recomputed from q and k at each call and, as in the papers, not differentiated.
 */
abstract sealed class ContentOperator implements AttentionOperator.Scaled, AttentionOperator.WithLse, AttentionOperator.Differentiable
        permits LshAttention, RoutingAttention {
    final Backend backend;   // null: Backend.best()
    final float scale;       // NaN: 1/√D

    ContentOperator(Backend backend, float scale) {
        this.backend = backend;
        this.scale = scale;
    }

    /** What the data decides for this input, without running attention: the permuted order, the layouts and the induced element mask. */
    public abstract InducedSparsity induce(Tensor q, Tensor k);

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out) {
        run(q, k, v, out, null);
    }

    @Override
    public void forwardWithLse(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        if (lse == null) throw new NullPointerException("lse");
        run(q, k, v, out, lse);
    }

    private void run(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        if (HalfInputs.any(q, k, v, out)) {
            // Half-precision storage: the induced sparsity and the attention both from float32 copies.
            ContentAttention.check(q, k, v, out, lse, true);
            HalfInputs.widened(q, k, v, out, (q32, k32, v32, out32) -> run(q32, k32, v32, out32, lse));
            return;
        }
        AttentionShape s = ContentAttention.check(q, k, v, out, lse);
        InducedSparsity seen = induce(q, k);
        ContentAttention.forward(seen, backend(), Float.isNaN(scale) ? s.defaultScale() : scale, q, k, v, out, lse);
    }

    /**
     * The gradients with respect to q, k and v of {@link #forwardWithLse} (given its {@code out} and
     * {@code lse} and the loss gradient {@code dOut}), in new tensors of {@code arena}: exact for
     * the induced element mask, through the fused kernel's backward pass on the same slot layouts.
     * The induced sparsity is recomputed from q and k (routing: with the centroids as they are now,
     * so call it before {@link RoutingCentroids#update}).
     */
    public AttentionGradients backward(Arena arena, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut) {
        Checks.notNull("arena", arena);
        AttentionShape.of(q, k, v);
        Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
        backward(q, k, v, out, lse, dOut, dq, dk, dv);
        return new AttentionGradients(dq, dk, dv);
    }

    /**
     * {@link #backward(Arena, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)} into caller tensors
     * (overwritten; they must not share memory with each other or any input). q, k, v, out and dOut
     * may each be F32, BF16 or F16 (widened exactly; the induced sparsity comes from the widened q
     * and k), lse is F32, and each gradient F32 or its input's type, rounded once from float32.
     */
    public void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (halfBackward(q, k, v, out, lse, dOut, dq, dk, dv)) return;
        requireFloat32Backward(q, k, v, out, lse, dOut, dq, dk, dv);
        AttentionShape s = AttentionShape.of(q, k, v);
        float sc = Float.isNaN(scale) ? s.defaultScale() : scale;
        ContentAttention.backward(induce(q, k), backend(), sc, q, k, v, out, lse, dOut, dq, dk, dv);
    }

    /**
     * Half-precision storage in the backward pass given out and lse: when any of q, k, v, out, dOut
     * or a gradient is BF16 or F16, checks the call up front (each gradient F32 or its input's type,
     * lse F32, shapes, no gradient sharing memory with another or with an input), runs the float32
     * backward on float32 copies of the half-precision inputs and rounds each half-precision
     * gradient once; returns whether it did.
     */
    private boolean halfBackward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (!HalfInputs.any(q, k, v, out) && !HalfInputs.any(dOut, dq, dk, dv)) return false;
        AttentionShape s = Checks.backwardAnyType(q, "k", k, "v", v, dOut, dq, dk, dv);
        Checks.notNull("out", out);
        Checks.notNull("lse", lse);
        s.checkOutput("out", out, s.outputShape());
        Checks.float32("lse", lse);
        s.checkOutput("lse", lse, s.lseShape());
        String[] names = {"dq", "dk", "dv"};
        Tensor[] gradients = {dq, dk, dv};
        for (int i = 0; i < 3; i++) {
            Checks.disjoint(names[i], gradients[i], "out", out);
            Checks.disjoint(names[i], gradients[i], "lse", lse);
        }
        HalfInputs.widened(new Tensor[] {q, k, v, out, dOut}, gradients,
                (in, grad) -> backward(in[0], in[1], in[2], in[3], lse, in[4], grad[0], grad[1], grad[2]));
        return true;
    }

    /** The backward pass reads its tensors as floats: a BF16 or F16 one (the forward takes them) is rejected by name. */
    private static void requireFloat32Backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        String[] names = {"q", "k", "v", "out", "lse", "dOut", "dq", "dk", "dv"};
        Tensor[] all = {q, k, v, out, lse, dOut, dq, dk, dv};
        for (int i = 0; i < all.length; i++) Shapes.requireF32(names[i], all[i], Checks.BACKWARD_FLOAT32_ONLY);
    }

    /**
     * {@link AttentionOperator.Differentiable}: recomputes the forward's output and LSE (in an arena
     * of its own, freed on return) and runs the backward above into the caller's tensors.
     */
    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        if (HalfInputs.backward(q, "k", k, "v", v, dOut, dq, dk, dv, this::backward)) return;
        requireFloat32Backward(q, k, v, null, null, dOut, dq, dk, dv);
        AttentionShape s = AttentionShape.of(q, k, v);
        try (Arena arena = Arena.ofShared()) {
            Tensor out = Tensor.zeros(arena, s.batch(), s.heads(), s.qLen(), s.valueDim());
            Tensor lse = Tensor.zeros(arena, s.batch(), s.heads(), s.qLen());
            forwardWithLse(q, k, v, out, lse);
            backward(q, k, v, out, lse, dOut, dq, dk, dv);
        }
    }

    Backend backend() { return backend != null ? backend : Backend.best(); }
}
