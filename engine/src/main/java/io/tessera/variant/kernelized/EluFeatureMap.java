package io.tessera.variant.kernelized;

import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** φ(x) = elu(x) + 1, element-wise (Katharopoulos et al. 2020): m = D, always positive. */
final class EluFeatureMap implements FeatureMap {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    @Override public int features(int headDim) { return headDim; }

    @Override
    public void apply(Backend backend, Tensor x, boolean query, float keyShift, Tensor dst) {
        int rows = (int) x.size(0), d = (int) x.size(1);
        MemorySegment src = x.segment(), out = dst.segment();
        for (int r = 0; r < rows; r++) {
            long s = x.offset() + r * x.stride(0), o = dst.offset() + (long) r * d;
            for (int c = 0; c < d; c++) out.setAtIndex(FLOAT, o + c, elu1(src.getAtIndex(FLOAT, s + c)));
        }
    }

    static float elu1(float v) { return v > 0 ? v + 1f : (float) Math.exp(v); }
}
