package io.tessera.variant.conv;

/** Iterative radix-2 complex FFT in double precision, in place on split real/imaginary arrays. */
final class Fft {
    private Fft() {}

    /** Largest transform length: arrays of doubles of this length are still allocatable. */
    static final int MAX_LENGTH = 1 << 30;

    /** The smallest power of two ≥ {@code minimum}; throws (instead of doubling past int) above {@link #MAX_LENGTH}. */
    static int paddedLength(long minimum) {
        if (minimum > MAX_LENGTH) throw new IllegalArgumentException("an FFT of length " + minimum + " exceeds the largest supported length " + MAX_LENGTH);
        int p = 1;
        while (p < minimum) p <<= 1;
        return p;
    }

    /** In-place transform of length re.length (a power of two); inverse scales by 1/n. */
    static void transform(double[] re, double[] im, boolean inverse) {
        int n = re.length;
        for (int i = 1, j = 0; i < n; i++) {   // bit-reversal permutation
            int bit = n >> 1;
            for (; (j & bit) != 0; bit >>= 1) j ^= bit;
            j ^= bit;
            if (i < j) {
                double t = re[i]; re[i] = re[j]; re[j] = t;
                t = im[i]; im[i] = im[j]; im[j] = t;
            }
        }
        for (int len = 2; len <= n; len <<= 1) {
            double angle = 2 * Math.PI / len * (inverse ? 1 : -1);
            double wr = Math.cos(angle), wi = Math.sin(angle);
            for (int start = 0; start < n; start += len) {
                double cr = 1, ci = 0;
                for (int k = 0; k < len / 2; k++) {
                    int a = start + k, b = a + len / 2;
                    double xr = re[b] * cr - im[b] * ci, xi = re[b] * ci + im[b] * cr;
                    re[b] = re[a] - xr; im[b] = im[a] - xi;
                    re[a] += xr; im[a] += xi;
                    double nr = cr * wr - ci * wi;
                    ci = cr * wi + ci * wr;
                    cr = nr;
                }
            }
        }
        if (inverse) {
            for (int i = 0; i < n; i++) { re[i] /= n; im[i] /= n; }
        }
    }
}
