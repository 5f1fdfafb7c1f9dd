package io.tessera.pattern;

import io.tessera.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntUnaryOperator;

/**
 * A change to each attention score before the softmax: FlexAttention's {@code score_mod}, the
 * sibling of a pattern (its {@code mask_mod}). The built-ins run inside the fused kernel,
 * vectorized, forward and backward; they compose with {@link #then} and with every pattern:
 *
 * <pre>{@code
 * ScoreMod mod = ScoreMod.alibi(ScoreMod.alibiSlopes(heads)).then(ScoreMod.softCap(50f));
 * Attention attn = Attention.sparse(Pattern.causal()).withScoreMod(mod);
 * }</pre>
 *
 * <h2>Units and positions</h2>
 * A modifier sees the <em>scaled</em> score {@code s = scale·q·k} in natural-log units (as
 * FlexAttention's score_mod does) and the softmax runs over the modified scores. Relative
 * positions are the pattern's: key {@code j} is at position {@code j}, query {@code i} at
 * {@code i + offset} with the offset of the pattern's alignment (0 top-left, kvLen − qLen
 * bottom-right; see {@link Pattern}). A modifier takes the alignment of the pattern it runs with
 * unless it names one with {@link #aligned}. A {@link Function} is called with raw indices, as
 * FlexAttention calls a score_mod.
 *
 * <h2>What the kernels compute</h2>
 * The fused kernels work in base 2 with the scale and log2(e) folded into the queries, so a
 * kernel score is {@code s₂ = log2(e)·s}. Biases are therefore converted once per call, in float64,
 * to {@code log2(e)·bias} and rounded to float (one rounding, as the fp32 scores themselves); ALiBi
 * keeps no table: {@code log2(e)·slope} is rounded once and the kernels fma it with the distance
 * {@code j − p}, an int converted to float (exact below 2^24);
 * soft-capping is the same function in base 2 with cap {@code log2(e)·cap}; a {@link Function}
 * gets {@code s₂·ln 2} in float64 and its result is multiplied back by log2(e). tanh is Tessera's
 * own (with y = s/cap: Cephes' odd polynomial below |y| = 0.625, in the score's units
 * s + s·y²·P(y²); exactly ±cap from |y| = 7.9053; Eigen's rational tanh, s·N(y²)/D(y²), between:
 * within 3.5·10^−7·cap of cap·tanh(s/cap), never beyond ±cap), identical in the scalar and SIMD
 * kernels and at every JIT tier.
 *
 * <p>A relative-position table is expanded per call to one float per query head and relative
 * position (H·(qLen + kvLen) floats) so the SIMD kernel loads a key's lanes as one vector.
 *
 * <p>Immutable; the float arrays and tensors given to factories are read at each call, so a
 * learnable table updated in place between steps is seen by the next call.
 */
public final class ScoreMod {

    /**
     * An arbitrary score modifier (the escape hatch): the new score from the batch, query head,
     * raw query index, raw key index and the scaled score, in natural units. Must be pure.
     */
    @FunctionalInterface
    public interface Function {
        double apply(int batch, int head, int q, int kv, double score);
    }

    private final List<Step> steps;
    private final CausalAlignment alignment;   // null: the pattern's

    private ScoreMod(List<Step> steps, CausalAlignment alignment) {
        this.steps = List.copyOf(steps);
        this.alignment = alignment;
    }

    private static ScoreMod of(Step step) { return new ScoreMod(List.of(step), null); }

    // ---------------------------------------------------------------- built-ins

    /**
     * ALiBi (Press et al. 2022): adds {@code slopes[h]·(j − p)} to the score of query head h, query
     * position p and key j (FlexAttention's and BLOOM's sign: ≤ 0 under causal masking).
     */
    public static ScoreMod alibi(float[] slopes) {
        if (slopes == null) throw new NullPointerException("slopes");
        if (slopes.length == 0) throw new IllegalArgumentException("slopes must hold one slope per query head, got none");
        float[] copy = slopes.clone();
        for (int h = 0; h < copy.length; h++) {
            if (!Float.isFinite(copy[h])) throw new IllegalArgumentException("slopes[" + h + "] must be finite, got " + copy[h]);
        }
        return of(new Alibi(copy));
    }

    /**
     * The standard ALiBi slopes for {@code heads} heads: the geometric sequence 2^(−8k/n), k = 1..n,
     * for a power of two n, and for other counts the slopes of the next lower power of two followed
     * by every other slope of twice that (the reference implementation's rule, BLOOM's too).
     */
    public static float[] alibiSlopes(int heads) {
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        int pow2 = Integer.highestOneBit(heads);
        double[] base = geometric(pow2);
        float[] out = new float[heads];
        for (int h = 0; h < pow2; h++) out[h] = (float) base[h];
        if (pow2 < heads) {
            double[] extra = geometric(2 * pow2);
            for (int h = pow2, e = 0; h < heads; h++, e += 2) out[h] = (float) extra[e];
        }
        return out;
    }

    private static double[] geometric(int n) {
        double[] s = new double[n];
        for (int k = 0; k < n; k++) s[k] = Math.pow(2, -8.0 * (k + 1) / n);
        return s;
    }

    /**
     * A learnable relative-position bias: adds {@code table[h, bucket(j − p)]} ({@code table} is
     * {@code [heads, buckets]}) with {@code bucket} mapping a key's position relative to the query,
     * {@code j − p}, to a column of the table. Its gradient comes out of
     * {@code Attention.backward} (in {@link #parameters} order).
     */
    public static ScoreMod relativeBias(Tensor table, IntUnaryOperator bucket) {
        if (table == null) throw new NullPointerException("table");
        if (bucket == null) throw new NullPointerException("bucket");
        if (table.rank() != 2) throw new IllegalArgumentException("table must be rank 2 [heads, buckets], got " + Arrays.toString(table.shape()));
        if (table.size(1) > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("table has too many buckets: " + table.size(1));
        return of(new RelativeBias(table, bucket, (int) table.size(1)));
    }

    /**
     * T5's bucketing of relative positions (Raffel et al. 2020; Hugging Face's
     * {@code _relative_position_bucket}): exact buckets for short distances, logarithmic ones up to
     * {@code maxDistance}, the last bucket beyond; with {@code bidirectional}, half the buckets for
     * keys after the query. Use with {@link #relativeBias}. The logarithm is taken in float64.
     */
    public static IntUnaryOperator t5Buckets(int buckets, boolean bidirectional, int maxDistance) {
        int half = bidirectional ? buckets / 2 : buckets;
        int maxExact = half / 2;
        if (maxExact < 1) throw new IllegalArgumentException("buckets must be >= " + (bidirectional ? 4 : 2) + ", got " + buckets);
        if (maxDistance <= maxExact) {
            throw new IllegalArgumentException("maxDistance must exceed the " + maxExact + " exact buckets, got " + maxDistance);
        }
        double logRange = Math.log((double) maxDistance / maxExact);
        return relative -> {
            long n = -(long) relative;   // query minus key
            int ret = 0;
            if (bidirectional) {
                if (n < 0) ret += half;
                n = Math.abs(n);
            } else {
                n = Math.max(n, 0);
            }
            if (n < maxExact) return ret + (int) n;
            long large = maxExact + (long) (Math.log((double) n / maxExact) / logRange * (half - maxExact));
            return ret + (int) Math.min(large, half - 1);
        };
    }

    /** Soft-capping (Gemma 2): {@code cap·tanh(s / cap)}, cap &gt; 0. */
    public static ScoreMod softCap(float cap) {
        if (!(cap > 0) || !Float.isFinite(cap)) throw new IllegalArgumentException("cap must be finite and > 0, got " + cap);
        return of(new SoftCap(cap));
    }

    /**
     * An additive bias, per query head ({@code bias} {@code [heads]}) or per query head and key
     * ({@code [heads, kvLen]}), with finite values: a key to exclude is a pattern's job.
     */
    public static ScoreMod bias(Tensor bias) {
        if (bias == null) throw new NullPointerException("bias");
        if (bias.rank() != 1 && bias.rank() != 2) {
            throw new IllegalArgumentException("bias must be [heads] or [heads, kvLen], got " + Arrays.toString(bias.shape()));
        }
        return of(new Bias(bias));
    }

    /**
     * Any modifier, run element by element on every backend that takes modifiers (ALiBi written
     * this way measured 1.2–1.5× the unmodified SIMD kernel at D = 64, the built-in 0.9–1.1×; see
     * the README). Forward only: the backward pass rejects it; give its derivative with
     * {@link #of(String, Function, Function)}.
     */
    public static ScoreMod of(String name, Function function) {
        return custom(name, function, null);
    }

    /**
     * Any modifier with its derivative {@code d(new score)/d(score)}, evaluated at the incoming
     * score: the backward pass then gives dq, dk and dv through it.
     */
    public static ScoreMod of(String name, Function function, Function derivative) {
        if (derivative == null) throw new NullPointerException("derivative");
        return custom(name, function, derivative);
    }

    private static ScoreMod custom(String name, Function function, Function derivative) {
        if (name == null) throw new NullPointerException("name");
        if (function == null) throw new NullPointerException("function");
        return of(new Custom(name, function, derivative));
    }

    // ---------------------------------------------------------------- algebra

    /** This modifier, then {@code next} on its result: {@code next(this(s))}. */
    public ScoreMod then(ScoreMod next) {
        if (next == null) throw new NullPointerException("next");
        CausalAlignment a = combine(alignment, next.alignment);
        List<Step> all = new ArrayList<>(steps);
        all.addAll(next.steps);
        return new ScoreMod(all, a);
    }

    /** This modifier with its query positions placed by {@code alignment}; rejected if it already names the other. */
    public ScoreMod aligned(CausalAlignment alignment) {
        if (alignment == null) throw new NullPointerException("alignment");
        return new ScoreMod(steps, combine(this.alignment, alignment));
    }

    /** The alignment this modifier names, or null: then the pattern's (top-left when it names none either). */
    public CausalAlignment alignment() { return alignment; }

    private CausalAlignment combine(CausalAlignment a, CausalAlignment b) {
        if (a != null && b != null && a != b) {
            throw new IllegalArgumentException("score modifier " + this + " is aligned " + a + " but the other is aligned " + b);
        }
        return a != null ? a : b;
    }

    /** The learnable tensors (relative-bias tables), in the order their gradients are returned. */
    public List<Tensor> parameters() {
        List<Tensor> out = new ArrayList<>();
        for (Step s : steps) if (s instanceof RelativeBias r) out.add(r.table);
        return List.copyOf(out);
    }

    /**
     * Whether a {@link Plan} holds tables sized by the key length (a relative-position or an
     * additive bias), so that a decode plan must plan it again at each live length; ALiBi,
     * soft-capping and functions are planned once.
     */
    boolean hasLengthTables() {
        for (Step s : steps) if (s instanceof RelativeBias || s instanceof Bias) return true;
        return false;
    }

    /** Whether the backward pass can differentiate through every step (false with a function that declares no derivative). */
    public boolean differentiable() {
        for (Step s : steps) if (s instanceof Custom c && c.derivative == null) return false;
        return true;
    }

    @Override
    public String toString() {
        StringBuilder body = new StringBuilder(steps.get(0).toString());
        for (int i = 1; i < steps.size(); i++) body.append(".then(").append(steps.get(i)).append(')');
        return alignment == null ? body.toString() : body + ".aligned(" + alignment + ")";
    }

    // ---------------------------------------------------------------- steps

    private sealed interface Step permits Alibi, RelativeBias, SoftCap, Bias, Custom {}

    private record Alibi(float[] slopes) implements Step {
        @Override public String toString() { return "alibi(" + slopes.length + " heads)"; }
    }

    private record RelativeBias(Tensor table, IntUnaryOperator bucket, int buckets) implements Step {
        @Override public String toString() { return "relativeBias(" + table.size(0) + "x" + buckets + ")"; }
    }

    private record SoftCap(float cap) implements Step {
        @Override public String toString() { return "softCap(" + cap + ")"; }
    }

    private record Bias(Tensor bias) implements Step {
        @Override public String toString() { return "bias(" + Arrays.toString(bias.shape()) + ")"; }
    }

    private record Custom(String name, Function function, Function derivative) implements Step {
        @Override public String toString() { return name; }
    }

    // ---------------------------------------------------------------- plan

    /**
     * This modifier at one call's sizes, for backends: the steps in the kernels' base-2 units, and
     * in float64 natural units for the oracle. Validates the sizes, naming the offending parameter.
     * {@code queryPadding} extra rows past qLen may be looked up (a SIMD kernel's padded lanes).
     */
    public Plan plan(int heads, int qLen, int kvLen, int queryPadding) {
        return new Plan(this, heads, qLen, kvLen, queryPadding);
    }

    private static final double LOG2E = 1.4426950408889634;

    /**
     * One call's modifier: for each step its {@link #kind}, and per kind what the kernels read.
     * Distance tables hold, per query head, {@code log2(e)·bias} of raw query index i and key j at
     * index {@code i − j + kvLen − 1}; key tables hold {@code log2(e)·bias} of key j at index j.
     */
    public static final class Plan {
        /**
         * Step kinds: LINEAR adds slope(h)·(j − p) (ALiBi, no table: the kernels compute the
         * distance j − i − offset as an int, convert it to float and fma); DISTANCE adds a table
         * entry per i − j; KEY one per key; SOFT_CAP and FUNCTION are nonlinear.
         */
        public static final int DISTANCE = 0, KEY = 1, SOFT_CAP = 2, FUNCTION = 3, LINEAR = 4;

        private final ScoreMod mod;
        private final int heads, qLen, kvLen;
        private final long offset;
        private final int[] kinds, derivativeSlot, parameter, bucketCount;
        private final float[][][] rows;
        private final int[][] bucketOfIndex;
        private final float[] cap2, inverseCap2;
        private final int derivativeSlots, parameterCount;

        private Plan(ScoreMod mod, int heads, int qLen, int kvLen, int queryPadding) {
            if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
            if (qLen < 1) throw new IllegalArgumentException("qLen must be >= 1, got " + qLen);
            if (kvLen < 1) throw new IllegalArgumentException("kvLen must be >= 1, got " + kvLen);
            if (queryPadding < 0) throw new IllegalArgumentException("queryPadding must be >= 0, got " + queryPadding);
            this.mod = mod;
            this.heads = heads;
            this.qLen = qLen;
            this.kvLen = kvLen;
            this.offset = (mod.alignment == null ? CausalAlignment.TOP_LEFT : mod.alignment).diagonalShift(qLen, kvLen);
            int n = mod.steps.size();
            kinds = new int[n];
            derivativeSlot = new int[n];
            parameter = new int[n];
            bucketCount = new int[n];
            rows = new float[n][][];
            bucketOfIndex = new int[n][];
            cap2 = new float[n];
            inverseCap2 = new float[n];
            long distances = (long) qLen + kvLen - 1 + queryPadding;
            int slots = 0, params = 0;
            for (int st = 0; st < n; st++) {
                Step step = mod.steps.get(st);
                derivativeSlot[st] = -1;
                parameter[st] = -1;
                switch (step) {
                    case Alibi a -> {
                        if (a.slopes.length != heads) {
                            throw new IllegalArgumentException("alibi has " + a.slopes.length + " slopes but the call has " + heads + " query heads");
                        }
                        checkedLength(distances, "ALiBi's relative positions");
                        kinds[st] = LINEAR;
                        rows[st] = new float[][] {new float[heads]};
                        for (int h = 0; h < heads; h++) rows[st][0][h] = (float) (LOG2E * a.slopes[h]);
                    }
                    case RelativeBias r -> {
                        if (r.table.size(0) != heads) {
                            throw new IllegalArgumentException("relativeBias table has " + r.table.size(0) + " heads but the call has " + heads + " query heads");
                        }
                        kinds[st] = DISTANCE;
                        parameter[st] = params++;
                        bucketCount[st] = r.buckets;
                        int len = checkedLength(distances, "the relative-bias distance table");
                        int[] bucketOf = new int[len];
                        for (int idx = 0; idx < len; idx++) {
                            int relative = (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, relative(idx)));
                            int bucket = r.bucket.applyAsInt(relative);
                            if (bucket < 0 || bucket >= r.buckets) {
                                throw new IllegalArgumentException("bucket(" + relative + ") = " + bucket + " is outside the table's " + r.buckets + " buckets");
                            }
                            bucketOf[idx] = bucket;
                        }
                        bucketOfIndex[st] = bucketOf;
                        float[][] values = new float[heads][r.buckets];
                        for (int h = 0; h < heads; h++) {
                            for (int bk = 0; bk < r.buckets; bk++) values[h][bk] = finite("relativeBias table", r.table.get(h, bk), h, bk);
                        }
                        rows[st] = new float[heads][len];
                        for (int h = 0; h < heads; h++) {
                            for (int idx = 0; idx < len; idx++) rows[st][h][idx] = (float) (LOG2E * values[h][bucketOf[idx]]);
                        }
                    }
                    case SoftCap c -> {
                        kinds[st] = SOFT_CAP;
                        derivativeSlot[st] = slots++;
                        cap2[st] = (float) (LOG2E * c.cap);
                        inverseCap2[st] = (float) (1 / (LOG2E * c.cap));
                    }
                    case Bias bias -> {
                        Tensor t = bias.bias;
                        if (t.size(0) != heads) throw new IllegalArgumentException("bias has " + t.size(0) + " heads but the call has " + heads + " query heads");
                        if (t.rank() == 2 && t.size(1) != kvLen) throw new IllegalArgumentException("bias has " + t.size(1) + " keys but the call has kvLen=" + kvLen);
                        kinds[st] = KEY;
                        rows[st] = new float[heads][kvLen];
                        for (int h = 0; h < heads; h++) {
                            for (int j = 0; j < kvLen; j++) {
                                float x = t.rank() == 1 ? finite("bias", t.get(h), h, -1) : finite("bias", t.get(h, j), h, j);
                                rows[st][h][j] = (float) (LOG2E * x);
                            }
                        }
                    }
                    case Custom c -> {
                        kinds[st] = FUNCTION;
                        derivativeSlot[st] = slots++;
                    }
                }
            }
            derivativeSlots = slots;
            parameterCount = params;
        }

        private static int checkedLength(long length, String what) {
            if (length > Integer.MAX_VALUE - 8) throw new IllegalArgumentException(what + " would need " + length + " entries per head");
            return (int) length;
        }

        private static float finite(String what, float x, int h, int j) {
            if (!Float.isFinite(x)) throw new IllegalArgumentException(what + "[" + h + (j >= 0 ? ", " + j : "") + "] must be finite, got " + x);
            return x;
        }

        /** j − p for distance-table index {@code idx} = i − j + kvLen − 1 (p = i + offset). */
        private long relative(int idx) { return (long) kvLen - 1 - idx - offset; }

        public int steps() { return kinds.length; }

        public int kind(int step) { return kinds[step]; }

        /** DISTANCE: head h's table over i − j + kvLen − 1; KEY: head h's biases over keys; base 2. */
        public float[] row(int step, int head) { return rows[step][head]; }

        /** LINEAR: log2(e)·slope of query head {@code head}, rounded once. */
        public float slope(int step, int head) { return rows[step][0][head]; }

        /** Query i sits at position i + queryOffset() (0 top-left, kvLen − qLen bottom-right). */
        public int queryOffset() { return (int) offset; }

        /** SOFT_CAP: log2(e)·cap. */
        public float cap(int step) { return cap2[step]; }

        /** SOFT_CAP: 1 / (log2(e)·cap), rounded once. */
        public float inverseCap(int step) { return inverseCap2[step]; }

        /** FUNCTION: the user's function. */
        public Function function(int step) { return ((Custom) mod.steps.get(step)).function; }

        /** FUNCTION: its declared derivative, or null. */
        public Function derivative(int step) { return ((Custom) mod.steps.get(step)).derivative; }

        /** SOFT_CAP and FUNCTION steps keep a derivative per score for the backward pass: its slot, else −1. */
        public int derivativeSlot(int step) { return derivativeSlot[step]; }

        public int derivativeSlots() { return derivativeSlots; }

        /** The index in {@link ScoreMod#parameters} of a learnable step's table, else −1. */
        public int parameter(int step) { return parameter[step]; }

        public int parameterCount() { return parameterCount; }

        /** A learnable step: the table column of distance-table index i − j + kvLen − 1. */
        public int[] buckets(int step) { return bucketOfIndex[step]; }

        public int bucketCount(int step) { return bucketCount[step]; }

        public boolean differentiable() { return mod.differentiable(); }

        public ScoreMod mod() { return mod; }

        // ------------------------------------------------------------ float64 specification

        /** Step {@code step} applied to the natural-unit score {@code s} of (b, h, i, j), in float64. */
        public double apply(int step, int b, int h, int i, int j, double s) {
            return switch (mod.steps.get(step)) {
                case Alibi a -> s + (double) a.slopes[h] * (j - (i + offset));
                case RelativeBias r -> s + r.table.get(h, bucketOfIndex[step][i - j + kvLen - 1]);
                case SoftCap c -> c.cap * Math.tanh(s / c.cap);
                case Bias bias -> s + (bias.bias.rank() == 1 ? bias.bias.get(h) : bias.bias.get(h, j));
                case Custom c -> c.function.apply(b, h, i, j, s);
            };
        }

        /** d(step's output)/d(its input {@code s}), in float64; throws for a function without a derivative. */
        public double derivative(int step, int b, int h, int i, int j, double s) {
            return switch (mod.steps.get(step)) {
                case SoftCap c -> {
                    double t = Math.tanh(s / c.cap);
                    yield 1 - t * t;
                }
                case Custom c -> {
                    if (c.derivative == null) throw new UnsupportedOperationException("score modifier '" + c.name + "' declares no derivative");
                    yield c.derivative.apply(b, h, i, j, s);
                }
                default -> 1;
            };
        }

        /** A learnable step: the table column (i, j) reads. */
        public int bucket(int step, int i, int j) { return bucketOfIndex[step][i - j + kvLen - 1]; }
    }
}
