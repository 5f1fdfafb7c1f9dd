package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** φ(x) = elu(x) + 1, element-wise (Katharopoulos et al. 2020): m = D, always positive; the pre-activation is x itself. */
final class EluFeatureMap implements FeatureMap {
    @Override public int features(int headDim) { return headDim; }

    @Override public boolean exponential() { return false; }

    @Override public boolean identity() { return true; }

    @Override
    public void preActivations(Backend backend, Tensor x, Tensor dst) {
        dst.copyFrom(x);
    }

    /** Each row of x copied into dst (one bulk copy when the rows are contiguous). */
    @Override
    public void preActivations(Backend backend, Tensor x, Tensor scratch, float[] dst) {
        FeatureKernels.copyRows(x, (int) x.size(0), (int) x.size(1), dst);
    }

    /** u = x: dx = du. */
    @Override
    public void preActivationsBackward(Backend backend, Tensor x, Tensor du, Tensor dx, boolean accumulate) {
        if (!accumulate) {
            dx.copyFrom(du);
            return;
        }
        MemorySegment src = du.segment(), dst = dx.segment();
        int rows = (int) du.size(0), m = (int) du.size(1);
        for (int r = 0; r < rows; r++) {
            long i = du.offset() + r * du.stride(0), o = dx.offset() + r * dx.stride(0);
            for (int f = 0; f < m; f++) dst.setAtIndex(FLOAT, o + f, dst.getAtIndex(FLOAT, o + f) + src.getAtIndex(FLOAT, i + f));
        }
    }

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
}
