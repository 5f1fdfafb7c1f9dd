package io.tessera.backend;

import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * Whether two tensors may share memory: their address spans (first to last element, whatever the
 * strides) intersect. Conservative for interleaved views of one buffer (two column slices of a
 * packed tensor have intersecting spans although no element is shared), exact otherwise.
 */
final class Overlap {
    private Overlap() {}

    static void requireDisjoint(String writtenName, Tensor written, String readName, Tensor read) {
        if (spansIntersect(written, read)) {
            throw new IllegalArgumentException(writtenName + " shares memory with " + readName + " (" + written + " and " + read
                    + "): outputs must not overlap inputs or other outputs; write into a separate tensor");
        }
    }

    static boolean spansIntersect(Tensor a, Tensor b) {
        MemorySegment sa = a.segment(), sb = b.segment();
        long a0 = sa.address() + a.offset() * Float.BYTES, a1 = a0 + spanElements(a) * Float.BYTES;
        long b0 = sb.address() + b.offset() * Float.BYTES, b1 = b0 + spanElements(b) * Float.BYTES;
        return a0 < b1 && b0 < a1;
    }

    /** Elements from the first to one past the last element (0 for an empty tensor). */
    private static long spanElements(Tensor t) {
        long[] shape = t.shape(), strides = t.strides();
        long last = 0;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] == 0) return 0;
            last += (shape[i] - 1) * Math.abs(strides[i]);
        }
        return last + 1;
    }
}
