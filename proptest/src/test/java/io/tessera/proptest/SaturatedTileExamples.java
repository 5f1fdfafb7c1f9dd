package io.tessera.proptest;

import io.tessera.attention.Attention;
import io.tessera.backend.Backend;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Example;

/**
 * ALiBi then soft-capping: the SIMD forward fills a lane group's scores with ±cap without computing
 * QKᵀ when a bound on |q·k| proves every score of the tile saturates (SimdAttentionKernel.fillSaturated);
 * soft-capping first: it skips the per-key range tests when the bound puts every score on the
 * polynomial (capsOnPolynomial). These cases make most tiles such tiles (steep slopes, a small cap, keys far on both sides of
 * the diagonal, and a tile straddling the bound) and check the floats against the scalar twin,
 * which computes every score, bit for bit, at 1 and 2 threads, in F32 and BF16; with NaN and
 * infinities in a far key and a query too, which must not be hidden by the shortcut.
 */
class SaturatedTileExamples {

    @Example
    void saturatedTilesGiveTheTwinsFloats() {
        try (Arena arena = Arena.ofShared()) {
            Tensor[] qkv = inputs(arena, 21, 3, 300, 16, 1f, 1f);
            Tensor q = qkv[0], k = qkv[1], v = qkv[2];
            // Head 0 saturates beyond a few keys, head 1 near the bound (the test decides tile by tile), head 2 never (slope 0).
            ScoreMod mod = ScoreMod.alibi(new float[] {1f, 0.07f, 0f}).then(ScoreMod.softCap(1f));
            for (Pattern pattern : new Pattern[] {Pattern.full(), Pattern.causal(), Pattern.slidingWindow(100)}) {
                check(arena, "clean " + pattern, Attention.sparse(pattern).withScoreMod(mod), q, k, v);
            }
            // Garbage in a far key and in one query's row: NaN rows in both twins, never ±cap.
            k.set(Float.NaN, 0, 0, 280, 3);
            k.set(Float.POSITIVE_INFINITY, 0, 1, 250, 0);
            q.set(Float.NEGATIVE_INFINITY, 0, 0, 5, 7);
            check(arena, "garbage", Attention.sparse(Pattern.full()).withScoreMod(mod), q, k, v);
        }
    }

    @Example
    void tilesBoundedOnThePolynomialGiveTheTwinsFloats() {
        try (Arena arena = Arena.ofShared()) {
            // Soft-capping first: with cap 50 every tile's bound is on the polynomial, with cap 3 some are and some not.
            Tensor[] qkv = inputs(arena, 41, 2, 300, 16, 1f, 1.5f);
            Tensor q = qkv[0], k = qkv[1], v = qkv[2];
            Tensor keyBias = Tensor.randomNormal(arena, 44, 1f, 2, 300);
            for (float cap : new float[] {50f, 3f}) {
                check(arena, "cap " + cap, Attention.sparse(Pattern.full()).withScoreMod(ScoreMod.softCap(cap)), q, k, v);
                check(arena, "cap " + cap + " then a bias", Attention.sparse(Pattern.causal()).withScoreMod(ScoreMod.softCap(cap).then(ScoreMod.bias(keyBias))), q, k, v);
            }
            k.set(Float.NaN, 0, 1, 200, 2);
            check(arena, "cap 50, NaN key", Attention.sparse(Pattern.full()).withScoreMod(ScoreMod.softCap(50f)), q, k, v);
        }
    }

    @Example
    void largeScoresAreNotMistakenForSaturated() {
        try (Arena arena = Arena.ofShared()) {
            // |q·k·scale| reaches hundreds: the ALiBi term alone would saturate far keys, the score pulls some back.
            Tensor[] qkv = inputs(arena, 31, 1, 200, 8, 30f, 30f);
            Tensor q = qkv[0], k = qkv[1], v = qkv[2];
            ScoreMod mod = ScoreMod.alibi(new float[] {2f}).then(ScoreMod.softCap(20f));
            check(arena, "large scores", Attention.sparse(Pattern.full()).withScoreMod(mod), q, k, v);
        }
    }

    /** Random q, k, v [1, heads, n, d] from seeds seed, seed+1, seed+2; v has scale 1. */
    private static Tensor[] inputs(Arena arena, long seed, int heads, int n, int d, float qScale, float kScale) {
        return new Tensor[] {Tensor.randomNormal(arena, seed, qScale, 1, heads, n, d), Tensor.randomNormal(arena, seed + 1, kScale, 1, heads, n, d),
                Tensor.randomNormal(arena, seed + 2, 1f, 1, heads, n, d)};
    }

    private static void check(Arena arena, String what, Attention attention, Tensor q, Tensor k, Tensor v) {
        for (ElementType type : new ElementType[] {ElementType.F32, ElementType.BF16}) {
            Tensor kt = k.to(arena, type), vt = v.to(arena, type);
            float[] expected = run(arena, attention.on(Backend.named("scalar")), q, kt, vt);
            for (int threads : new int[] {1, 2}) {
                float[] actual = run(arena, attention.on(Backend.named("simd").withThreads(threads)), q, kt, vt);
                for (int i = 0; i < expected.length; i++) {
                    if (!(expected[i] == actual[i] || (Float.isNaN(expected[i]) && Float.isNaN(actual[i])))) {
                        throw new AssertionError(what + ", " + type + ", " + threads + " threads, output/LSE[" + i + "]: scalar " + expected[i] + " vs simd " + actual[i]);
                    }
                }
            }
        }
    }

    /** The output rows then the LSE, as one array. */
    private static float[] run(Arena arena, Attention attention, Tensor q, Tensor k, Tensor v) {
        var r = attention.forwardWithLse(arena, q, k, v);
        float[] out = r.output().toArray(), lse = r.logSumExp().toArray();
        float[] all = java.util.Arrays.copyOf(out, out.length + lse.length);
        System.arraycopy(lse, 0, all, out.length, lse.length);
        return all;
    }
}
