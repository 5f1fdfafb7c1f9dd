package io.tessera.proptest;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;

/**
 * The geometry of one random attention input, shared by every property: small but covering
 * n = 1, d = 1, odd sizes, Nq ≠ Nkv and grouped-query heads.
 */
record AttentionCase(int batch, int heads, int kvHeads, int qLen, int kvLen, int headDim, int valueDim, long seed) {

    static Arbitrary<AttentionCase> small() {
        return cases(24, 24, 9);
    }

    static Arbitrary<AttentionCase> cases(int maxLen, int maxKvLen, int maxDim) {
        Arbitrary<int[]> heads = Arbitraries.of(new int[] {1, 1}, new int[] {2, 1}, new int[] {2, 2}, new int[] {3, 1}, new int[] {4, 2});
        return Combinators.combine(
                Arbitraries.integers().between(1, 2),
                heads,
                Arbitraries.integers().between(1, maxLen).edgeCases(c -> c.includeOnly(1, maxLen)),
                Arbitraries.integers().between(1, maxKvLen).edgeCases(c -> c.includeOnly(1, maxKvLen)),
                Arbitraries.integers().between(1, maxDim).edgeCases(c -> c.includeOnly(1)),
                Arbitraries.integers().between(1, maxDim),
                Arbitraries.longs())
            .as((b, h, nq, nkv, d, dv, seed) -> new AttentionCase(b, h[0], h[1], nq, nkv, d, dv, seed));
    }

    Tensor q(Arena arena) { return Tensor.randomNormal(arena, seed, 1f, batch, heads, qLen, headDim); }

    Tensor k(Arena arena) { return Tensor.randomNormal(arena, seed + 1, 1f, batch, kvHeads, kvLen, headDim); }

    Tensor v(Arena arena) { return Tensor.randomNormal(arena, seed + 2, 1f, batch, kvHeads, kvLen, valueDim); }
}
