package io.tessera.tensor;

import java.util.Arrays;

/** Shape arithmetic with every overflow and bad dimension reported by parameter name. */
public final class Shapes {
    private Shapes() {}

    /** Validates a shape (rank ≥ 1, every dimension ≥ 1) and returns a private copy. */
    public static long[] checkShape(String name, long[] shape) {
        if (shape == null) throw new NullPointerException(name);
        if (shape.length == 0) throw new IllegalArgumentException(name + " must have at least one dimension");
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] < 1) {
                throw new IllegalArgumentException(name + "[" + d + "]=" + shape[d] + " must be >= 1 in " + Arrays.toString(shape));
            }
        }
        return shape.clone();
    }

    /** Product of the dimensions; throws naming the shape when it overflows {@code long}. */
    public static long elementCount(String name, long[] shape) {
        long n = 1;
        try {
            for (long d : shape) n = Math.multiplyExact(n, d);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(name + " " + Arrays.toString(shape) + " has more elements than a long can count");
        }
        return n;
    }

    static long bytes(String name, long[] shape, long count, int elementBytes) {
        if (count > (Long.MAX_VALUE - Tensor.ALIGNMENT) / elementBytes) {
            throw new IllegalArgumentException(name + " " + Arrays.toString(shape) + " needs more bytes than a long can count");
        }
        return count * elementBytes;
    }

    /**
     * Checks that {@code t} stores float32, for an operation ({@code operation}, e.g. "Linformer")
     * that reads or writes its memory as floats: a half-precision tensor is rejected naming the
     * parameter, its type and the conversion that helps, never read as the wrong bits.
     */
    public static void requireF32(String name, Tensor t, String operation) {
        if (t != null && t.type() != ElementType.F32) {
            throw new IllegalArgumentException(name + " has element type " + t.type() + " but " + operation
                    + " supports only F32 tensors; convert it with " + name + ".to(arena, ElementType.F32)");
        }
    }

    /** Row-major element strides for {@code shape}. */
    public static long[] rowMajorStrides(long[] shape) {
        long[] strides = new long[shape.length];
        long s = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            strides[d] = s;
            s *= shape[d];
        }
        return strides;
    }

    /** Narrows a length to {@code int}, the index type of the attention kernels, or throws naming it. */
    public static int checkedInt(String name, long value) {
        if (value < 0 || value > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + "=" + value + " does not fit the kernels' int indexing (max " + Integer.MAX_VALUE + ")");
        }
        return (int) value;
    }
}
