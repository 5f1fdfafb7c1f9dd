package io.tessera.proptest;

import io.tessera.tensor.Tensor;

/**
 * Kernelized attention by its quadratic definition, {@code out_i = Σ_j w_ij v_j / Σ_j w_ij} with
 * {@code w_ij = φ(q_i)·φ(k_j)} (j ≤ i when causal), and its analytic gradients for
 * {@code L = Σ dOut ∘ out}: ∂L/∂w_ij = dOut_i·(v_j − out_i)/den_i, then through φ; ∂L/∂v_j =
 * Σ_i w_ij/den_i · dOut_i. In float64, naively in fp32 (every operation rounded: the error budget),
 * or with every term replaced by its magnitude (what an a-priori rounding bound scales with).
 * Grouped-query heads sum dk and dv over the query heads sharing a key/value head.
 */
final class FeatureAttentionOracle {
    private FeatureAttentionOracle() {}

    /** A positive feature map of one row and the transpose of its derivative. */
    interface FeatureMap {
        double[] features(double[] x, boolean float32);

        /** dx = (∂φ/∂x)ᵀ dφ at x, φ = features(x); {@code absolute}: the sum of the terms' magnitudes. */
        double[] backward(double[] x, double[] phi, double[] dPhi, boolean float32, boolean absolute);
    }

    private static double round(boolean float32, double x) { return float32 ? (float) x : x; }

    /** φ(x) = elu(x) + 1, element-wise. */
    static final FeatureMap ELU = new FeatureMap() {
        @Override public double[] features(double[] x, boolean float32) {
            double[] p = new double[x.length];
            for (int c = 0; c < x.length; c++) p[c] = round(float32, x[c] > 0 ? x[c] + 1 : Math.exp(x[c]));
            return p;
        }

        @Override public double[] backward(double[] x, double[] phi, double[] dPhi, boolean float32, boolean absolute) {
            double[] dx = new double[x.length];
            for (int c = 0; c < x.length; c++) dx[c] = round(float32, (absolute ? Math.abs(dPhi[c]) : dPhi[c]) * round(float32, x[c] > 0 ? 1 : Math.exp(x[c])));
            return dx;
        }
    };

    /** FAVOR+: φ_f(x) = exp(ω_f·x − ‖x‖²/(2√D)), ω the Performer's projection (rows pre-scaled by D^(−1/4)); 1/√m cancels. */
    static FeatureMap favor(double[][] omega) {
        return new FeatureMap() {
            @Override public double[] features(double[] x, boolean float32) {
                int d = x.length;
                double sq = 0;
                for (double c : x) sq = round(float32, sq + round(float32, c * c));
                double half = round(float32, sq / (2 * Math.sqrt(d)));
                double[] p = new double[omega.length];
                for (int f = 0; f < omega.length; f++) {
                    double u = 0;
                    for (int c = 0; c < d; c++) u = round(float32, u + round(float32, omega[f][c] * x[c]));
                    p[f] = round(float32, Math.exp(round(float32, u - half)));
                }
                return p;
            }

            @Override public double[] backward(double[] x, double[] phi, double[] dPhi, boolean float32, boolean absolute) {
                int d = x.length;
                double invSqrtD = 1 / Math.sqrt(d), sum = 0;
                double[] du = new double[omega.length], dx = new double[d];
                for (int f = 0; f < omega.length; f++) {
                    du[f] = round(float32, (absolute ? Math.abs(dPhi[f]) : dPhi[f]) * phi[f]);
                    sum = round(float32, sum + du[f]);
                }
                for (int c = 0; c < d; c++) {
                    double acc = 0;
                    for (int f = 0; f < omega.length; f++) acc = round(float32, acc + round(float32, du[f] * (absolute ? Math.abs(omega[f][c]) : omega[f][c])));
                    double correction = absolute ? sum * Math.abs(x[c]) * invSqrtD : round(float32, round(float32, sum * invSqrtD) * x[c]);
                    dx[c] = absolute ? acc + correction : round(float32, acc - correction);
                }
                return dx;
            }
        };
    }

    /** The float64 output, row-major [B, H, Nq, Dv]. */
    static double[] forward(FeatureMap map, Tensor q, Tensor k, Tensor v, boolean causal) {
        return run(map, q, k, v, null, causal, false, false).dq();
    }

    /** Analytic gradients (with {@code dOut} null: the forward output in dq's place). */
    static GradientOracles.Gradients gradients(FeatureMap map, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean causal, boolean float32, boolean absolute) {
        return run(map, q, k, v, dOut, causal, float32, absolute);
    }

    private static GradientOracles.Gradients run(FeatureMap map, Tensor q, Tensor k, Tensor v, Tensor dOut, boolean causal, boolean float32, boolean absolute) {
        long[] qs = q.shape(), ks = k.shape(), vs = v.shape();
        int bs = (int) qs[0], hs = (int) qs[1], hkv = (int) ks[1], n = (int) qs[2], nk = (int) ks[2], dv = (int) vs[3], group = hs / hkv;
        float[] qa = q.toArray(), ka = k.toArray(), va = v.toArray(), ga = dOut == null ? null : dOut.toArray();
        long[] outShape = {qs[0], qs[1], qs[2], vs[3]};
        double[] out = new double[bs * hs * n * dv], dq = new double[qa.length], dk = new double[ka.length], dvOut = new double[va.length];
        double[] w = new double[nk], o = new double[dv];
        for (int b = 0; b < bs; b++) for (int hk = 0; hk < hkv; hk++) {
            double[][] kh = GradientOracles.head(ka, ks, b, hk), vh = GradientOracles.head(va, vs, b, hk);
            double[][] pk = new double[nk][];
            for (int j = 0; j < nk; j++) pk[j] = map.features(kh[j], float32);
            int m = pk[0].length;
            double[][] dpk = new double[nk][m], dvh = new double[nk][dv], dqh = new double[n][];
            for (int h = hk * group; h < (hk + 1) * group; h++) {
                double[][] qh = GradientOracles.head(qa, qs, b, h), gh = ga == null ? null : GradientOracles.head(ga, outShape, b, h), oh = new double[n][];
                for (int i = 0; i < n; i++) {
                    int keys = causal ? i + 1 : nk;
                    double[] pq = map.features(qh[i], float32);
                    double den = 0;
                    java.util.Arrays.fill(o, 0);
                    for (int j = 0; j < keys; j++) {
                        double dot = 0;
                        for (int f = 0; f < m; f++) dot = round(float32, dot + round(float32, pq[f] * pk[j][f]));
                        w[j] = dot;
                        den = round(float32, den + dot);
                        for (int c = 0; c < dv; c++) o[c] = round(float32, o[c] + round(float32, dot * vh[j][c]));
                    }
                    for (int c = 0; c < dv; c++) o[c] = round(float32, o[c] / den);
                    oh[i] = o.clone();
                    if (gh == null) continue;
                    double[] g = gh[i], dpq = new double[m];
                    double gOut = 0;
                    for (int c = 0; c < dv; c++) gOut = round(float32, gOut + round(float32, g[c] * o[c]));
                    for (int j = 0; j < keys; j++) {
                        double gv = 0;
                        for (int c = 0; c < dv; c++) gv = absolute ? gv + Math.abs(g[c] * vh[j][c]) + Math.abs(g[c] * o[c]) : round(float32, gv + round(float32, g[c] * vh[j][c]));
                        double dw = absolute ? gv / den : round(float32, round(float32, gv - gOut) / den);
                        for (int f = 0; f < m; f++) {
                            dpq[f] = round(float32, dpq[f] + round(float32, dw * pk[j][f]));
                            dpk[j][f] = round(float32, dpk[j][f] + round(float32, dw * pq[f]));
                        }
                        double p = round(float32, w[j] / den);
                        for (int c = 0; c < dv; c++) dvh[j][c] = round(float32, dvh[j][c] + round(float32, p * (absolute ? Math.abs(g[c]) : g[c])));
                    }
                    dqh[i] = map.backward(qh[i], pq, dpq, float32, absolute);
                }
                if (gh == null) {
                    GradientOracles.addHead(out, outShape, b, h, oh);
                    continue;
                }
                GradientOracles.addHead(dq, qs, b, h, dqh);
            }
            if (ga == null) continue;
            double[][] dkh = new double[nk][];
            for (int j = 0; j < nk; j++) dkh[j] = map.backward(kh[j], pk[j], dpk[j], float32, absolute);
            GradientOracles.addHead(dk, ks, b, hk, dkh);
            GradientOracles.addHead(dvOut, vs, b, hk, dvh);
        }
        return ga == null ? new GradientOracles.Gradients(out, null, null) : new GradientOracles.Gradients(dq, dk, dvOut);
    }
}
