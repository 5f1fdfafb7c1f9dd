package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import io.tessera.variant.AttentionOperator;
import java.lang.foreign.Arena;

/**
 * What the variants' gradient properties share: float64 gradients checked against central
 * differences, the EXACT gradient rule, thread-count bit identity and the argument checks of
 * {@link AttentionOperator.Differentiable#backward}.
 */
final class GradientOracles {
    private GradientOracles() {}

    /** Gradients with respect to q, k, v (row-major, shaped like them). */
    record Gradients(double[] dq, double[] dk, double[] dv) {}

    /** A float64 forward pass over the current contents of its input tensors (row-major output). */
    @FunctionalInterface
    interface Forward {
        double[] output();
    }

    static Tensor dOut(Arena arena, AttentionCase c) {
        return Tensor.randomNormal(arena, c.seed() + 3, 1f, c.batch(), c.heads(), c.qLen(), c.valueDim());
    }

    /**
     * Central differences of L = Σ dOut ∘ forward in float64, on float32 inputs (so the step actually
     * taken is the one divided by): agree with the analytic gradient to O(h²) + O(ε/h).
     */
    static void checkFiniteDifferences(String what, Tensor x, double[] analytic, Forward forward, Tensor dOut) {
        float[] values = x.toArray(), g = dOut.toArray();
        for (int i = 0; i < values.length; i++) {
            long[] index = unravel(x.shape(), i);
            float original = values[i];
            float plus = original + 0x1p-10f, minus = original - 0x1p-10f;
            x.set(plus, index);
            double lossPlus = loss(forward.output(), g);
            x.set(minus, index);
            double lossMinus = loss(forward.output(), g);
            x.set(original, index);
            double numeric = (lossPlus - lossMinus) / ((double) plus - minus);
            assertThat(analytic[i]).as("%s element %d", what, i).isCloseTo(numeric, org.assertj.core.data.Offset.offset(1e-3 * (1 + Math.abs(numeric))));
        }
    }

    private static double loss(double[] out, float[] g) {
        double sum = 0;
        for (int i = 0; i < g.length; i++) sum += g[i] * out[i];
        return sum;
    }

    static long[] unravel(long[] shape, long flat) {
        long[] index = new long[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            index[d] = flat % shape[d];
            flat /= shape[d];
        }
        return index;
    }

    /** Each gradient within 10× the naive fp32 gradient's error against float64, + the floor relative to its size. */
    static void assertWithinExactRule(String what, Tensor dq, Tensor dk, Tensor dv, Gradients oracle, Gradients naive) {
        assertThat(Tolerance.maxError(dq, oracle.dq())).as("dq error of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dq(), oracle.dq()));
        assertThat(Tolerance.maxError(dk, oracle.dk())).as("dk error of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dk(), oracle.dk()));
        assertThat(Tolerance.maxError(dv, oracle.dv())).as("dv error of %s", what).isLessThanOrEqualTo(Tolerance.gradient(naive.dv(), oracle.dv()));
    }

    /** The same gradient bits for 1, 2 and 3 threads of {@code backend}. */
    static void assertBitIdenticalForThreads(Arena arena, AttentionOperator.Differentiable op, Backend backend, Tensor q, Tensor k, Tensor v, Tensor dOut) {
        float[][] expected = null;
        for (int threads : new int[] {1, 2, 3}) {
            Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
            ((AttentionOperator.Differentiable) op.on(backend.withThreads(threads))).backward(q, k, v, dOut, dq, dk, dv);
            float[][] got = {dq.toArray(), dk.toArray(), dv.toArray()};
            if (expected == null) expected = got;
            else for (int t = 0; t < 3; t++) assertThat(got[t]).as("%s gradient %d, %d threads vs 1", op, t, threads).containsExactly(expected[t]);
        }
    }

    /** Nulls, shapes, strides and aliasing of a backward call are rejected by name before any work. */
    static void assertRejectsBadGradientArguments(Arena arena, AttentionOperator.Differentiable op, Tensor q, Tensor k, Tensor v, Tensor dOut,
                                                  Tensor dq, Tensor dk, Tensor dv) {
        assertThatThrownBy(() -> op.backward(q, k, v, null, dq, dk, dv)).isInstanceOf(NullPointerException.class).hasMessage("dOut");
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, null, dk, dv)).isInstanceOf(NullPointerException.class).hasMessage("dq");
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, dq, dk, null)).isInstanceOf(NullPointerException.class).hasMessageStartingWith("dv");
        long[] bad = dOut.shape();
        bad[3] += 1;
        assertThatThrownBy(() -> op.backward(q, k, v, Tensor.zeros(arena, bad), dq, dk, dv))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dOut shape");
        long[] badK = dk.shape();
        badK[2] += 1;
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, dq, Tensor.zeros(arena, badK), dv))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shape");
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, q, dk, dv)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dq shares memory with q");
        long kCount = dk.elementCount(), vCount = dv.elementCount();
        Tensor both = Tensor.zeros(arena, Math.max(kCount, vCount));
        Tensor dkView = both.slice(0, 0, kCount).reshape(dk.shape()), dvView = both.slice(0, 0, vCount).reshape(dv.shape());
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, dq, dkView, dvView))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("shares memory with");
        Tensor wide = Tensor.zeros(arena, q.size(0), q.size(1), q.size(2), 2 * q.size(3));
        Tensor strided = wide.reshape(q.size(0), q.size(1), q.size(2), q.size(3), 2).select(4, 0);
        assertThatThrownBy(() -> op.backward(q, k, v, dOut, strided, dk, dv))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dq must have a unit-stride last dimension");
    }
}
