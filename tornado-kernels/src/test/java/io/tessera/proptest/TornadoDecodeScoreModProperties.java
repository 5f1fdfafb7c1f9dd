package io.tessera.proptest;

import static io.tessera.proptest.TornadoAttentionProperties.tornado;
import static io.tessera.proptest.TornadoDecodeProperties.decodedOnDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.pattern.MaskFunction;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.ScoreMod;
import io.tessera.proptest.DecodeScoreModProperties.Filled;
import io.tessera.proptest.DecodeScoreModProperties.ModKind;
import io.tessera.proptest.PagedAttentionProperties.Setup;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import io.tessera.tornado.DeviceRun;
import java.lang.foreign.Arena;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * The built-in score modifiers (ALiBi, relative-position tables, soft-capping, per-head and per-key
 * biases, compositions) in the device decode kernel: a batched step (q-length 1..16, grouped-query
 * heads, pages from 1 token to larger than a sequence, NaN in every pool slot a sequence does not
 * own; F32, F16 and BF16 caches) equals, per sequence, the float64 oracle with the same modifier placed bottom-right (query i
 * at position length − qLen + i), within the EXACT contract; every step ran on the device. The
 * device's split count is its own (on a 2-unit OpenCL CPU device, up to 16 splits for one KV head),
 * so the log-sum-exp merge of splits that saw nothing is exercised too. A user function is rejected
 * by name.
 */
class TornadoDecodeScoreModProperties {

    @Provide
    Arbitrary<Setup> setups() { return new DecodeScoreModProperties().setups(); }

    @Provide
    Arbitrary<Pattern> patterns() { return new DecodeScoreModProperties().patterns(); }

    @Provide
    Arbitrary<ModKind> builtIns() { return Arbitraries.of(ModKind.class).filter(k -> !k.name().contains("FUNCTION")); }

    @Provide
    Arbitrary<ElementType> types() { return Arbitraries.of(ElementType.class); }

    /**
     * Also over caches of every element type (F16 and BF16 pools stay 16-bit on the device and are
     * widened exactly as they are read), with F32 queries or queries of the cache's type; the
     * oracle takes the tokens and queries as stored (rounded).
     */
    @Property(tries = 30)
    void builtInModifiersOnTheDeviceEqualTheOracle(@ForAll("setups") Setup s, @ForAll("patterns") Pattern pattern, @ForAll("builtIns") ModKind kind,
                                                   @ForAll("types") ElementType type, @ForAll boolean halfQueries) {
        try (Arena arena = Arena.ofShared()) {
            Filled f = DecodeScoreModProperties.fill(arena, s, type);
            int batch = s.sequences();
            int[] sequences = new int[batch];
            for (int b = 0; b < batch; b++) sequences[b] = batch - 1 - b;   // any order
            Tensor q = Tensor.randomNormal(arena, s.seed() + 30, 1f, batch, s.heads(), s.qLen(), s.headDim());
            Tensor qStored = halfQueries ? q.to(arena, type) : q;
            q = qStored.to(arena, ElementType.F32);   // the oracle's queries: as stored
            Tensor out = Tensor.zeros(arena, batch, s.heads(), s.qLen(), s.valueDim()), lse = Tensor.zeros(arena, batch, s.heads(), s.qLen());
            PagedAttention[] decodes = new PagedAttention[batch];
            if (kind == ModKind.KEY_BIAS) {
                // A per-key bias is as long as one sequence: one call per sequence.
                for (int b = 0; b < batch; b++) {
                    ScoreMod mod = DecodeScoreModProperties.mod(kind, arena, s.heads(), f.cache().length(sequences[b]), s.seed() + b);
                    decodes[b] = PagedAttention.of(pattern).withScoreMod(mod).on(tornado());
                    decodes[b].forward(f.cache(), sequences[b], qStored.slice(0, b, b + 1), out.slice(0, b, b + 1), lse.slice(0, b, b + 1));
                    decodedOnDevice();
                }
            } else {
                PagedAttention decode = PagedAttention.of(pattern).withScoreMod(DecodeScoreModProperties.mod(kind, arena, s.heads(), 0, s.seed())).on(tornado());
                Arrays.fill(decodes, decode);
                decode.forward(f.cache(), sequences, qStored, out, lse);
                decodedOnDevice();
            }
            for (int b = 0; b < batch; b++) {
                int seq = sequences[b];
                check(q.slice(0, b, b + 1), f.keys()[seq], f.values()[seq], out.slice(0, b, b + 1), lse.slice(0, b, b + 1), decodes[b],
                        f.cache().length(seq), "sequence " + seq);
            }
        }
    }

    static void check(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, PagedAttention decode, int length, String what) {
        int qLen = (int) q.size(2);
        double scale = 1.0 / Math.sqrt(q.size(3));
        MaskFunction mask = decode.pattern().asMask(qLen, length);
        ScoreMod mod = decode.scoreMod();
        DenseReference.Result oracle = DenseReference.attention(q, k, v, mask, scale, mod);
        Tolerance tolerance = Tolerance.exact(q, k, v, scale, DenseReference.naiveFloat32(q, k, v, mask, scale, mod), oracle);
        for (float x : out.toArray()) assertThat(x).as("output of %s", what).isFinite();
        assertThat(Tolerance.maxError(out, oracle.output())).as("output of %s (length %d) under %s", what, length, decode).isLessThanOrEqualTo(tolerance.output());
        assertThat(Tolerance.maxError(lse, oracle.logSumExp())).as("LSE of %s (length %d) under %s", what, length, decode).isLessThanOrEqualTo(tolerance.logSumExp());
    }

    /**
     * A generation loop with a relative-position table (tables sized by the live length) composed
     * with ALiBi and soft-capping under a sliding window with sinks: one plan serves every step,
     * each step uploads only the new token's rows and matches the oracle; the learnable table,
     * written between steps, is seen by the next step.
     */
    @Example
    void aGenerationLoopWithModifiersReusesThePlanAndStaysExact() {
        int kvHeads = 2, group = 3, heads = kvHeads * group, d = 16, pageSize = 8, pages = 40, prompt = 70, steps = 12;
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 1, pages, pageSize, kvHeads, d, d);
            cache.keyStorage().fill(Float.NaN);
            cache.valueStorage().fill(Float.NaN);
            int total = prompt + steps;
            Tensor keys = Tensor.randomNormal(arena, 1, 1f, 1, kvHeads, total, d), values = Tensor.randomNormal(arena, 2, 1f, 1, kvHeads, total, d);
            Tensor table = Tensor.randomNormal(arena, 3, 1f, heads, 9);
            ScoreMod mod = ScoreMod.relativeBias(table, x -> Math.max(-4, Math.min(4, x)) + 4).then(ScoreMod.alibi(ScoreMod.alibiSlopes(heads)))
                    .then(ScoreMod.softCap(4f));
            PagedAttention decode = PagedAttention.of(Pattern.causal().and(Pattern.slidingWindow(40, 0).or(Pattern.keyPrefix(3)))).withScoreMod(mod).on(tornado());
            cache.append(0, keys.slice(2, 0, prompt), values.slice(2, 0, prompt));
            for (int step = 0; step < steps; step++) {
                int length = prompt + step + 1;
                cache.append(0, keys.slice(2, length - 1, length), values.slice(2, length - 1, length));
                Tensor q = Tensor.randomNormal(arena, 100 + step, 1f, 1, heads, 1, d);
                Tensor out = Tensor.zeros(arena, 1, heads, 1, d), lse = Tensor.zeros(arena, 1, heads, 1);
                decode.forward(cache, 0, q, out, lse);
                DeviceRun run = decodedOnDevice();
                assertThat(run.firstExecution()).as("step %d builds the plan", step).isEqualTo(step == 0);
                if (step > 0) assertThat(run.stagedRows()).as("rows uploaded at step %d", step).isEqualTo(kvHeads);
                check(q, keys.slice(2, 0, length), values.slice(2, 0, length), out, lse, decode, length, "step " + step);
                for (int h = 0; h < heads; h++) for (int x = 0; x < 9; x++) table.set(table.get(h, x) * -1.5f + 0.25f, h, x);
            }
        }
    }

    /** A user function cannot run on the device: the decode step is rejected up front, naming it and the alternatives. */
    @Example
    void aUserFunctionIsRejectedByName() {
        try (Arena arena = Arena.ofShared()) {
            KvCache cache = KvCache.allocate(arena, 1, 8, 8, 2, 16, 16);
            cache.append(0, Tensor.randomNormal(arena, 1, 1f, 1, 2, 45, 16), Tensor.randomNormal(arena, 2, 1f, 1, 2, 45, 16));
            ScoreMod wiggle = ScoreMod.of("wiggle", (b, h, i, j, s) -> s + Math.sin(s));
            PagedAttention decode = PagedAttention.of(Pattern.causal()).withScoreMod(ScoreMod.softCap(30f).then(wiggle)).on(tornado());
            Tensor q = Tensor.randomNormal(arena, 3, 1f, 1, 4, 2, 16), out = Tensor.zeros(arena, 1, 4, 2, 16);
            assertThatThrownBy(() -> decode.forward(cache, 0, q, out, null))
                    .isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("backend 'tornado' cannot run the score function")
                    .hasMessageContaining("wiggle").hasMessageContaining("'simd'");
        }
    }
}
