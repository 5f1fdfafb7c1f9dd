package io.tessera.bench.variants;

/**
 * Float64 definitions of the linear-time variants a {@link LinearVariantPeer} implements, on inputs
 * {@code [heads, n, d]} (row-major, Dv = d, scale 1/√d), parameters as in
 * {@link LinearVariantPeer#prepare}: what both Tessera and a peer are checked against at a small n.
 */
public final class VariantOracles {
    private VariantOracles() {}

    public static double[] output(String variant, int heads, int n, int d, float[] q, float[] k, float[] v, float[][] parameters) {
        double[] out = new double[heads * n * d];
        for (int h = 0; h < heads; h++) {
            double[][] qh = rows(q, h, n, d), kh = rows(k, h, n, d), vh = rows(v, h, n, d), o;
            switch (variant) {
                case "linformer" -> {
                    int kp = parameters[0].length / (heads * n);
                    double[][] e = rows(parameters[0], h, kp, n), f = rows(parameters[1], h, kp, n);
                    o = softmaxAttention(qh, mul(e, kh), mul(f, vh), 1 / Math.sqrt(d));
                }
                case "performer" -> {
                    int m = parameters[0].length / d;
                    double[][] omega = rows(parameters[0], 0, m, d);
                    o = kernelized(performerFeatures(qh, omega), performerFeatures(kh, omega), vh);
                }
                case "linear-attention" -> o = kernelized(elu1(qh), elu1(kh), vh);
                case "nystrom" -> o = nystrom(qh, kh, vh, (int) parameters[0][0], 1 / Math.sqrt(d));
                default -> throw new IllegalArgumentException("unknown variant " + variant);
            }
            for (int i = 0; i < n; i++) System.arraycopy(o[i], 0, out, (h * n + i) * d, d);
        }
        return out;
    }

    private static double[][] rows(float[] x, int h, int n, int d) {
        double[][] r = new double[n][d];
        for (int i = 0; i < n; i++) for (int c = 0; c < d; c++) r[i][c] = x[(h * n + i) * d + c];
        return r;
    }

    static double[][] mul(double[][] a, double[][] b) {
        double[][] c = new double[a.length][b[0].length];
        for (int i = 0; i < a.length; i++) for (int p = 0; p < b.length; p++) for (int j = 0; j < b[0].length; j++) c[i][j] += a[i][p] * b[p][j];
        return c;
    }

    private static double[][] transpose(double[][] a) {
        double[][] t = new double[a[0].length][a.length];
        for (int i = 0; i < a.length; i++) for (int j = 0; j < a[0].length; j++) t[j][i] = a[i][j];
        return t;
    }

    private static double[][] softmaxRows(double[][] s) {
        for (double[] row : s) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (double x : row) max = Math.max(max, x);
            for (int j = 0; j < row.length; j++) sum += row[j] = Math.exp(row[j] - max);
            for (int j = 0; j < row.length; j++) row[j] /= sum;
        }
        return s;
    }

    private static double[][] scores(double[][] q, double[][] k, double scale) {
        double[][] s = mul(q, transpose(k));
        for (double[] row : s) for (int j = 0; j < row.length; j++) row[j] *= scale;
        return s;
    }

    private static double[][] softmaxAttention(double[][] q, double[][] k, double[][] v, double scale) {
        return mul(softmaxRows(scores(q, k, scale)), v);
    }

    /** FAVOR+ features exp(ω·x − ‖x‖²/(2√D)) (ω pre-multiplied by D^(−1/4); the 1/√m cancels). */
    private static double[][] performerFeatures(double[][] x, double[][] omega) {
        double[][] u = mul(x, transpose(omega));
        double root = Math.sqrt(x[0].length);
        for (int i = 0; i < x.length; i++) {
            double sq = 0;
            for (double c : x[i]) sq += c * c;
            for (int f = 0; f < u[i].length; f++) u[i][f] = Math.exp(u[i][f] - sq / (2 * root));
        }
        return u;
    }

    private static double[][] elu1(double[][] x) {
        double[][] r = new double[x.length][x[0].length];
        for (int i = 0; i < x.length; i++) for (int c = 0; c < x[0].length; c++) r[i][c] = x[i][c] > 0 ? x[i][c] + 1 : Math.exp(x[i][c]);
        return r;
    }

    /** out_i = Σ_j (φq_i·φk_j) v_j / Σ_j φq_i·φk_j. */
    private static double[][] kernelized(double[][] fq, double[][] fk, double[][] v) {
        double[][] w = mul(fq, transpose(fk));
        for (double[] row : w) {
            double sum = 0;
            for (double x : row) sum += x;
            for (int j = 0; j < row.length; j++) row[j] /= sum;
        }
        return mul(w, v);
    }

    private static double[][] segmentMeans(double[][] x, int m) {
        int n = x.length, d = x[0].length;
        double[][] r = new double[m][d];
        for (int s = 0; s < m; s++) {
            int from = (int) ((long) s * n / m), to = (int) ((long) (s + 1) * n / m);
            for (int i = from; i < to; i++) for (int c = 0; c < d; c++) r[s][c] += x[i][c] / (to - from);
        }
        return r;
    }

    /** Nyström with the paper's iterative pseudo-inverse, six iterations from Aᵀ/(‖A‖₁‖A‖∞). */
    private static double[][] nystrom(double[][] q, double[][] k, double[][] v, int m, double scale) {
        double[][] ql = segmentMeans(q, m), kl = segmentMeans(k, m);
        double[][] f = softmaxRows(scores(q, kl, scale)), a = softmaxRows(scores(ql, kl, scale)), b = softmaxRows(scores(ql, k, scale));
        double norm1 = 0, normInf = 0;
        for (int j = 0; j < m; j++) { double s = 0; for (int i = 0; i < m; i++) s += Math.abs(a[i][j]); norm1 = Math.max(norm1, s); }
        for (int i = 0; i < m; i++) { double s = 0; for (int j = 0; j < m; j++) s += Math.abs(a[i][j]); normInf = Math.max(normInf, s); }
        double[][] z = transpose(a);
        for (double[] row : z) for (int j = 0; j < m; j++) row[j] /= norm1 * normInf;
        for (int it = 0; it < 6; it++) {
            double[][] az = mul(a, z);
            double[][] t = minusFromIdentity(7, az);
            t = minusFromIdentity(15, mul(az, t));
            t = minusFromIdentity(13, mul(az, t));
            z = mul(z, t);
            for (double[] row : z) for (int j = 0; j < m; j++) row[j] *= 0.25;
        }
        return mul(f, mul(z, mul(b, v)));
    }

    private static double[][] minusFromIdentity(double c, double[][] x) {
        double[][] r = new double[x.length][x.length];
        for (int i = 0; i < x.length; i++) for (int j = 0; j < x.length; j++) r[i][j] = (i == j ? c : 0) - x[i][j];
        return r;
    }
}
